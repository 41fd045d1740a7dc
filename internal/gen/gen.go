// Package gen is the generator behind cmd/proxygen: it loads a Go package,
// checks that the interfaces it is asked for can be served by Trellis, and
// writes their proxies, server handlers and descriptions for package
// runtime. Generated code uses package runtime for what applications see
// too (Node, NodeID, ProxyOption, NewProxy) and package runtime/codegen
// for the rest.
//
// For an interface Foo the generated file declares FooService (the
// *codegen.ServiceDesc), RegisterFoo (to serve an implementation on a
// node), FooProxy and NewFooProxy (a Foo whose methods run on another node),
// and unexported per-method descriptions, wire types and handlers.
//
// Refusals are reported all at once as a Problems error, one
// "file:line:col: message" per problem, and nothing is written.
package gen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultOutput is the name of the generated file when Config.Output is
// empty.
const DefaultOutput = "trellis_gen.go"

// Config says what to generate.
type Config struct {
	// Dir is the directory of the package; empty means the current one.
	Dir string
	// Types are the names of the interfaces to serve, all of the package.
	Types []string
	// Output is the file to write, relative to Dir unless absolute; empty
	// means DefaultOutput.
	Output string
	// Transformed names types that cross through a marshal transformer
	// (runtime.RegisterTransformer), as "Name" for the package's own or
	// "import/path.Name": they are accepted without being looked into.
	Transformed []string
	// BuildFlags are passed to the go command that lists the package (for
	// instance "-tags=foo").
	BuildFlags []string
	// Env is the environment of the go command; nil means the current one.
	Env []string
	// NoClusterProxy leaves out the cluster proxies (FooClusterProxy), and
	// with them the generated code's import of package cluster: a package
	// that cluster itself imports needs this.
	NoClusterProxy bool
}

// An Output is a generated file.
type Output struct {
	// Path is the absolute path of the file.
	Path string
	// Source is its content, gofmt'd.
	Source []byte
}

// Generate loads the package, validates the interfaces and returns the
// generated file without writing it. When an interface breaks the rules, the
// error is a Problems listing every problem found; other errors (the package
// cannot be listed or parsed, the output file is not proxygen's) say what
// failed.
func Generate(ctx context.Context, cfg Config) (*Output, error) {
	if len(cfg.Types) == 0 {
		return nil, errors.New("no interfaces to generate: give at least one -type")
	}
	for _, t := range cfg.Types {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("empty name in -type")
		}
	}
	dir, err := filepath.Abs(cmp.Or(cfg.Dir, "."))
	if err != nil {
		return nil, fmt.Errorf("finding the package directory: %w", err)
	}
	out := cmp.Or(cfg.Output, DefaultOutput)
	if !filepath.IsAbs(out) {
		out = filepath.Join(dir, out)
	}
	l, err := load(ctx, dir, out, cfg.BuildFlags, cfg.Env)
	if err != nil {
		return nil, err
	}
	services, err := analyze(l, dir, cfg.Types, cfg.Transformed, cfg.NoClusterProxy)
	if err != nil {
		return nil, err
	}
	src, err := generate(l.pkg.Types, services)
	if err != nil {
		return nil, err
	}
	return &Output{Path: out, Source: src}, nil
}

// Run generates the file as Generate does and writes it, atomically, unless
// it already has that content. On error nothing is written.
func Run(ctx context.Context, cfg Config) (*Output, error) {
	o, err := Generate(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := writeFile(o.Path, o.Source); err != nil {
		return nil, err
	}
	return o, nil
}

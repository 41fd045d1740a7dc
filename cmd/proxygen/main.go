// Command proxygen generates the Trellis code that serves Go interfaces on a
// node and calls them from others.
//
// It runs in the directory of a package, usually from go generate:
//
//	//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Store,Watcher
//
// and writes, for each interface Foo, FooService, RegisterFoo, FooProxy and
// NewFooProxy, and FooClusterProxy and NewFooClusterProxy (a Foo whose calls
// go to a member of a cluster serving Foo; -cluster=false leaves them out),
// into one file (trellis_gen.go unless -output says otherwise). A method
// whose doc comment has the line "//trellis:idempotent" may be retried by
// cluster proxies even after it may have run.
// The arguments and results of a method whose types are all booleans,
// numbers, strings, []byte, slices, maps with string or integer keys,
// pointers and named structs of those (no embedded fields, no field tags
// but `cbor:"-"`), references and streams also get a CBOR encoder and
// decoder of their own (codegen.WireCodec, package runtime/wire), which
// write the reflective codec's bytes without its cost; other methods use
// the reflective codec.
// An interface that breaks the rules of a Trellis service is refused: every
// problem is printed on standard error as "file:line:col: message", the exit
// status is 1 and no file is written.
//
// A type that cannot cross as it is (unexported fields, channels,
// functions) may still cross through a marshal transformer that replaces
// it on the way out and restores it on the way in: name it with
// -transformed (Name, or import/path.Name, comma-separated) and register
// the transformer on every node that sends or receives it
// (runtime.RegisterTransformer). The desc of each method whose arguments
// or results hold such a type, at any depth, lists it
// (codegen.MethodDesc.Transformed), and a node without a transformer for
// it refuses the method's calls instead of sending or accepting a broken
// value: the caller's node before sending, the server's before decoding,
// with runtime.ErrNoTransformer naming the type, the method and the node
// to register the transformer on. A type that cannot cross and is not
// listed in -transformed is refused by proxygen itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/trellisrpc/trellis/internal/gen"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], ".", os.Stderr))
}

// run runs proxygen with the command-line arguments args in the package
// directory dir, reports to stderr and returns the exit status: 0 on
// success, 1 when generation fails, 2 for bad usage.
func run(ctx context.Context, args []string, dir string, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	typeList := fs.String("type", "", "comma-separated names of the interfaces to serve (required)")
	output := fs.String("output", "", "output file name (default "+gen.DefaultOutput+" in the package directory)")
	tags := fs.String("tags", "", "comma-separated build tags to load the package with")
	transformed := fs.String("transformed", "", "comma-separated types that cross through a marshal transformer (Name, or import/path.Name)")
	clusterProxies := fs.Bool("cluster", true, "also generate cluster proxies (NewFooClusterProxy), which import package cluster")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: proxygen -type A,B [-output file] [-tags tags] [-transformed T,U] [-cluster=false]\n\n")
		fmt.Fprintf(stderr, "Run in a package directory (as go generate does) to generate Trellis\nproxies and handlers for the named interfaces.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "proxygen: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	var types []string
	for _, t := range strings.Split(*typeList, ",") {
		if t = strings.TrimSpace(t); t != "" {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		fmt.Fprintln(stderr, "proxygen: -type is required")
		fs.Usage()
		return 2
	}
	cfg := gen.Config{Dir: dir, Types: types, Output: *output, NoClusterProxy: !*clusterProxies}
	for _, t := range strings.Split(*transformed, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Transformed = append(cfg.Transformed, t)
		}
	}
	if *tags != "" {
		cfg.BuildFlags = []string{"-tags=" + *tags}
	}
	if _, err := gen.Run(ctx, cfg); err != nil {
		var ps gen.Problems
		if errors.As(err, &ps) {
			crossing := false
			for _, p := range ps {
				fmt.Fprintln(stderr, p)
				crossing = crossing || p.CannotCross
			}
			fmt.Fprintf(stderr, "proxygen: %d problem(s), no file written\n", len(ps))
			if crossing {
				fmt.Fprintln(stderr, "proxygen: a named type that cannot cross may still cross through a marshal transformer: list it in -transformed and register the transformer on every node (runtime.RegisterTransformer)")
			}
		} else {
			fmt.Fprintf(stderr, "proxygen: %v\n", err)
		}
		return 1
	}
	return 0
}

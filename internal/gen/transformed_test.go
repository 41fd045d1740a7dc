package gen

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// transformedSrc is a service whose methods hold -transformed types
// (Secret, and other.Token of another package) at several depths, and one
// that holds none.
const transformedSrc = `package svc

import (
	"context"

	"example.com/m/other"
)

// Secret cannot cross as it is.
type Secret struct{ key []byte }

type Box struct {
	S    Secret
	P    *Secret
	Skip *Secret ` + "`cbor:\"-\"`" + `
}

type S interface {
	Put(ctx context.Context, s *Secret) error
	Nested(ctx context.Context, boxes []Box, n int) (map[string][]**Secret, error)
	Foreign(ctx context.Context, t other.Holder) (*other.Token, error)
	Plain(ctx context.Context, n int, tags []string) (int, error)
}
`

// otherTransformedSrc holds a -transformed type of another package.
const otherTransformedSrc = `package other

// Token cannot cross as it is.
type Token struct{ secret string }

// Holder holds a Token by value.
type Holder struct{ T Token }
`

// TestTransformedInDesc checks that the desc of a method whose arguments or
// results hold a -transformed type lists it, as it is held (T or *T), once,
// that the desc of a method that holds none has no Transformed, and that
// the generated code builds.
func TestTransformedInDesc(t *testing.T) {
	mod := newModule(t, map[string]string{"svc/svc.go": transformedSrc, "other/other.go": otherTransformedSrc})
	o, err := Run(context.Background(), Config{
		Dir: filepath.Join(mod, "svc"), Types: []string{"S"}, Env: goEnv(),
		Transformed: []string{"Secret", "example.com/m/other.Token"},
	})
	if err != nil {
		t.Fatal(err)
	}
	src := string(o.Source)
	tests := []struct {
		desc string
		want string // the Transformed line, "" for none
	}{
		{"sPutMethod", "Transformed: []reflect.Type{reflect.TypeFor[*Secret]()},"},
		{"sNestedMethod", "Transformed: []reflect.Type{reflect.TypeFor[Secret](), reflect.TypeFor[*Secret](), reflect.TypeFor[**Secret]()},"},
		{"sForeignMethod", "Transformed: []reflect.Type{reflect.TypeFor[other.Token](), reflect.TypeFor[*other.Token]()},"},
		{"sPlainMethod", ""},
	}
	for _, tt := range tests {
		m := regexp.MustCompile(`(?s)\nvar ` + tt.desc + ` = &codegen\.MethodDesc\{\n(.*?)\n\}\n`).FindStringSubmatch(src)
		if m == nil {
			t.Errorf("no desc %s in the generated code:\n%s", tt.desc, src)
			continue
		}
		got := ""
		for _, line := range strings.Split(m[1], "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "Transformed:" {
				got = strings.Join(f, " ")
			}
		}
		if got != tt.want {
			t.Errorf("%s: Transformed line %q, want %q", tt.desc, got, tt.want)
		}
	}
	runGo(t, mod, "build", "./...")
	runGo(t, mod, "vet", "./...")
}

// TestTransformedNotInDesc checks that a package whose services hold no
// -transformed type gets no Transformed field and no reflect import.
func TestTransformedNotInDesc(t *testing.T) {
	dir := newModule(t, map[string]string{"svc/svc.go": `package svc

import "context"

type Secret struct{ key []byte }

type S interface {
	Plain(ctx context.Context, n int) (int, error)
}
`})
	o, err := Generate(context.Background(), Config{Dir: filepath.Join(dir, "svc"), Types: []string{"S"}, Env: goEnv(), Transformed: []string{"Secret"}})
	if err != nil {
		t.Fatal(err)
	}
	if src := string(o.Source); strings.Contains(src, "Transformed") || strings.Contains(src, `"reflect"`) {
		t.Errorf("a service that holds no -transformed type has Transformed or imports reflect:\n%s", src)
	}
}

// TestTransformedUnnamable checks that a -transformed type that generated
// code cannot name (so cannot list in the desc) is refused with a message
// that says why, rather than left unchecked.
func TestTransformedUnnamable(t *testing.T) {
	dir := newModule(t, map[string]string{
		"other/other.go": `package other

type token struct{ secret string }

// Holder holds an unexported token.
type Holder struct{ T token }
`,
		"svc/svc.go": `package svc

import (
	"context"

	"example.com/m/other"
)

type S interface {
	Use(ctx context.Context, h other.Holder) error
}
`})
	_, err := Generate(context.Background(), Config{Dir: filepath.Join(dir, "svc"), Types: []string{"S"}, Env: goEnv(), Transformed: []string{"example.com/m/other.token"}})
	ps := problemsOf(t, err)
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, "method Use: parameter h: -transformed type other.token is held inside the value, but generated code must name it") ||
		!strings.Contains(ps[0].Msg, "token is not exported by package example.com/m/other") {
		t.Errorf("problems %v", ps)
	}
}

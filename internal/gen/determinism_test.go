package gen

import (
	"bytes"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/trellisrpc/trellis/runtime/codegen"
)

const orderA = `package svc

import "context"

type S interface {
	Get(ctx context.Context, key string) (string, error)
	Put(ctx context.Context, key, value string) error
	Del(ctx context.Context, key string) error
	W
}

type W interface {
	Watch(ctx context.Context, s S) error
	Alpha(ctx context.Context) error
}
`

// orderB is orderA with its declarations and methods reordered.
const orderB = `package svc

import "context"

type W interface {
	Alpha(ctx context.Context) error
	Watch(ctx context.Context, s S) error
}

type S interface {
	W
	Del(ctx context.Context, key string) error
	Put(ctx context.Context, key, value string) error
	Get(ctx context.Context, key string) (string, error)
}
`

// changedGet is orderA with another signature for Get.
const changedGet = `package svc

import "context"

type S interface {
	Get(ctx context.Context, key int64) (string, error)
	Put(ctx context.Context, key, value string) error
	Del(ctx context.Context, key string) error
	W
}

type W interface {
	Watch(ctx context.Context, s S) error
	Alpha(ctx context.Context) error
}
`

var methodIDs = regexp.MustCompile(`var (\w+Method) = &codegen\.MethodDesc\{[^}]*?ID:\s+(0x[0-9a-f]+)`)

// ids returns the method IDs in generated source, by desc name.
func ids(t *testing.T, src []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, sub := range methodIDs.FindAllSubmatch(src, -1) {
		m[string(sub[1])] = string(sub[2])
	}
	if len(m) == 0 {
		t.Fatalf("no method IDs in:\n%s", src)
	}
	return m
}

// TestDeterminism checks that reordering methods, declarations and -type
// names yields byte-identical output, and that changing a signature changes
// that method's ID (and only that one).
func TestDeterminism(t *testing.T) {
	// Each version lives in a module of its own, under the same package
	// path, since IDs depend on the path.
	gen := func(src string, types ...string) []byte {
		t.Helper()
		mod := newModule(t, map[string]string{"svc/svc.go": src})
		o, err := generateIn(t, filepath.Join(mod, "svc"), types...)
		if err != nil {
			t.Fatal(err)
		}
		return o.Source
	}
	a, b := gen(orderA, "S", "W"), gen(orderB, "W", "S")
	if !bytes.Equal(a, b) {
		t.Errorf("reordering the source changed the output:\n%s", diff(string(a), string(b)))
	}
	if again := gen(orderA, "W", "S", "W"); !bytes.Equal(a, again) {
		t.Errorf("a second run differs from the first:\n%s", diff(string(a), string(again)))
	}

	idA, idC := ids(t, a), ids(t, gen(changedGet, "S", "W"))
	want := codegen.MethodID("example.com/m/svc.S", "Get", "func(context.Context, string) (string, error)")
	if got := idA["sGetMethod"]; got != hexID(want) {
		t.Errorf("ID of S.Get = %s, want codegen.MethodID(...) = %s", got, hexID(want))
	}
	if idA["sGetMethod"] == idC["sGetMethod"] {
		t.Errorf("changing the signature of Get left its ID at %s", idA["sGetMethod"])
	}
	for _, m := range []string{"sPutMethod", "sDelMethod", "sAlphaMethod", "sWatchMethod", "wWatchMethod"} {
		if idA[m] != idC[m] {
			t.Errorf("ID of %s changed from %s to %s although its signature did not", m, idA[m], idC[m])
		}
	}
}

// hexID formats an ID as generated code does.
func hexID(id uint64) string {
	var b bytes.Buffer
	hex(id).Render(&b)
	return b.String()
}

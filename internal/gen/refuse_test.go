package gen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refuseOther is the other package of the refusal tests.
const refuseOther = `package other

import "context"

// Filter has a channel: it cannot cross.
type Filter struct {
	Name string
	Ch   chan int
}

// Query holds filters.
type Query struct {
	Limit   int
	Filters []Filter
}

type hidden struct{ A int }

// Hidden is exported, its type is not.
type Hidden = hidden

// Sealed has an unexported method, and one that uses an unexported type.
type Sealed interface {
	Open(ctx context.Context) error
	Use(ctx context.Context, h hidden) error
	seal()
}
`

// A want is one expected problem: its message, and the text whose first
// occurrence in the service file (or in package other, if other is set) it
// points at ("" for no position; see positionOf for "^").
type want struct {
	at    string
	msg   string
	other bool
}

// refusalCases are services proxygen must refuse, each with every problem
// it must report.
var refusalCases = []struct {
	name  string
	types string
	src   string
	want  []want
}{
	{"chan", "S", `
import "context"

type S interface {
	Send(ctx context.Context, ch chan int) error
}
`, []want{{at: "ch chan", msg: "method Send: parameter ch: type chan int cannot cross a network: a channel only works within one process"}}},

	{"func", "S", `
import "context"

type S interface {
	Do(ctx context.Context, n int, f func(int) int) error
}
`, []want{{at: "f func", msg: "method Do: parameter f: type func(int) int cannot cross a network: a function only runs within one process"}}},

	{"generic", "S", `
import "context"

type S[T any] interface {
	Get(ctx context.Context) (T, error)
}
`, []want{{at: "S[T any]", msg: "interface S: generic interfaces cannot be served"}}},

	{"missing-ctx", "S", `
type S interface {
	Get(key string) (string, error)
}
`, []want{{at: "Get(", msg: "method Get: first parameter must be context.Context"}}},

	{"missing-error", "S", `
import "context"

type S interface {
	Get(ctx context.Context, key string) string
	Put(ctx context.Context, key string)
}
`, []want{
		{at: "Get(", msg: "method Get: last result must be error"},
		{at: "Put(", msg: "method Put: last result must be error"},
	}},

	{"any", "S", `
import "context"

type S interface {
	Put(ctx context.Context, v any) error
	Get(ctx context.Context) (interface{}, error)
}
`, []want{
		{at: "v any", msg: "method Put: parameter v: type any cannot cross a network: an interface value carries no static type to decode into"},
		{at: "interface{}", msg: "method Get: result 0: type interface{} cannot cross a network: an interface value carries no static type to decode into"},
	}},

	{"nested-chan", "S", `
import (
	"context"

	"example.com/m/other"
)

type Batch struct {
	Queries []other.Query
}

type S interface {
	Query(ctx context.Context, q other.Query) error
	Run(ctx context.Context, b *Batch) (map[string][]other.Query, error)
}
`, []want{
		{at: "q other.Query", msg: "method Query: parameter q: q.Filters[0].Ch, of type chan int, cannot cross a network: a channel only works within one process"},
		{at: "b *Batch", msg: "method Run: parameter b: b.Queries[0].Filters[0].Ch, of type chan int, cannot cross a network: a channel only works within one process"},
		{at: "map[string][]other.Query", msg: "method Run: result 0: R0[value][0].Filters[0].Ch, of type chan int, cannot cross a network: a channel only works within one process"},
	}},

	{"unexported-field", "S", `
import "context"

type Entry struct {
	Name   string
	secret int
	Inner  struct{ n int }
}

type S interface {
	Put(ctx context.Context, e Entry) error
}
`, []want{
		{at: ", ^e Entry", msg: "method Put: parameter e: type Entry cannot cross a network: unexported field secret is not sent (tag it `cbor:\"-\"` to leave it out on purpose)"},
		{at: ", ^e Entry", msg: "method Put: parameter e: e.Inner, of type struct{n int}, cannot cross a network: unexported field n is not sent (tag it `cbor:\"-\"` to leave it out on purpose)"},
	}},

	{"addresses-and-complex", "S", `
import (
	"context"
	"unsafe"
)

type S interface {
	Put(ctx context.Context, u uintptr, p unsafe.Pointer, c complex128) error
}
`, []want{
		{at: "u uintptr", msg: "method Put: parameter u: type uintptr cannot cross a network: it is a memory address, which means nothing on another node"},
		{at: "p unsafe", msg: "method Put: parameter p: type unsafe.Pointer cannot cross a network: it is a memory address, which means nothing on another node"},
		{at: "c complex128", msg: "method Put: parameter c: type complex128 cannot cross a network: CBOR has no complex numbers"},
	}},

	{"interfaces", "S,W", `
import (
	"context"
	"fmt"
	"io"
)

type Key struct{ A, B int }

type W interface {
	Write(ctx context.Context, p []byte) error
}

type S interface {
	Err(ctx context.Context, e error) (error, error)
	Str(ctx context.Context, s fmt.Stringer) error
	Nested(ctx context.Context, rs []io.Reader, ws map[string]W) error
	Ctx(ctx context.Context, c context.Context) error
	Keys(ctx context.Context, m map[Key]int, n map[*int]string) error
	Ptr(ctx context.Context, w *W) error
}
`, []want{
		{at: "e error", msg: "method Err: parameter e: type error cannot cross a network: an error crosses only as the last result"},
		{at: "error, error)", msg: "method Err: result 0: type error cannot cross a network: an error crosses only as the last result"},
		{at: "s fmt", msg: "method Str: parameter s: type fmt.Stringer cannot cross a network: an interface crosses only if it is in the -type set (by reference) or is io.Reader or io.ReadCloser (as a stream)"},
		{at: "rs []io", msg: "method Nested: parameter rs: rs[0], of type io.Reader, cannot cross a network: a stream (io.Reader, io.ReadCloser) crosses only as a parameter or result of its own, not inside another value"},
		{at: "ws map", msg: "method Nested: parameter ws: ws[value], of type W, cannot cross a network: a service crosses by reference only as a parameter or result of its own, not inside another value"},
		{at: "c context", msg: "method Ctx: parameter c: type context.Context cannot cross a network: a context crosses only as the first parameter"},
		{at: "m map", msg: "method Keys: parameter m: m[key], of type Key, cannot cross a network: map keys must be booleans, numbers or strings"},
		{at: "n map", msg: "method Keys: parameter n: n[key], of type *int, cannot cross a network: map keys must be booleans, numbers or strings"},
		{at: "w *W", msg: "method Ptr: parameter w: type W cannot cross a network: a service crosses by reference only as a parameter or result of its own, not inside another value"},
	}},

	{"inside-values", "S", `
import (
	"bytes"
	"context"
	"fmt"
)

type Other interface {
	M(ctx context.Context) error
}

type Holder struct {
	S fmt.Stringer
	O Other
}

type Pair struct {
	a, b int
	C    int
}

type S interface {
	Hold(ctx context.Context, h Holder) error
	Buf(ctx context.Context, b *bytes.Buffer) error
	Pair(ctx context.Context, p Pair) error
}
`, []want{
		{at: "h Holder", msg: "method Hold: parameter h: h.S, of type fmt.Stringer, cannot cross a network: an interface does not cross inside another value: a service (in the -type set) crosses by reference, and io.Reader or io.ReadCloser as a stream, only as a parameter or result of its own"},
		{at: "h Holder", msg: "method Hold: parameter h: h.O, of type Other, cannot cross a network: an interface does not cross inside another value: a service (in the -type set) crosses by reference, and io.Reader or io.ReadCloser as a stream, only as a parameter or result of its own"},
		{at: "b *bytes", msg: "method Buf: parameter b: type bytes.Buffer cannot cross a network: its unexported fields (buf, off, lastRead) are not sent, and a type of the standard library cannot be tagged: send what it stands for (a name, a number) instead, or give it a marshal transformer (-transformed)"},
		{at: "p Pair", msg: "method Pair: parameter p: type Pair cannot cross a network: unexported fields a, b are not sent (tag them `cbor:\"-\"` to leave them out on purpose)"},
	}},

	{"other-package", "S", `
import (
	"context"

	"example.com/m/other"
)

type S interface {
	other.Sealed
	Get(ctx context.Context, h other.Hidden) error
}
`, []want{
		{other: true, at: "^Use(", msg: "method Use: parameter h: type other.hidden cannot cross a network: hidden is not exported by package example.com/m/other, so generated code cannot name it"},
		{other: true, at: "^seal()", msg: "method seal: it is unexported in package example.com/m/other, so no other package can implement it"},
	}},

	{"everything-at-once", "S,Missing,T,C,A", `
import "context"

type T struct{}

type C interface{ ~int }

type A = S

// SProxy is in the way of the generated proxy of S.
type SProxy struct{}

type S interface {
	NoCtx(n int) error
	NoErr(ctx context.Context)
	Chan(ctx context.Context, _ chan string) error
	TrellisClient(ctx context.Context) error
}
`, []want{
		{at: "", msg: "-type Missing: no such interface in package svc"},
		{at: "T struct", msg: "-type T: T is not an interface (it is struct{})"},
		{at: "C interface", msg: "interface C: it has type constraints, so it can only constrain type parameters and cannot be served"},
		{at: "A = S", msg: "-type A: A is an alias: serve the interface it stands for from its own package"},
		{at: "NoCtx(", msg: "method NoCtx: first parameter must be context.Context"},
		{at: "NoErr(", msg: "method NoErr: last result must be error"},
		{at: "^_ chan string", msg: "method Chan: parameter #2: type chan string cannot cross a network: a channel only works within one process"},
		{at: "TrellisClient(", msg: "method TrellisClient: the generated proxy has a method TrellisClient of its own"},
		{at: "SProxy struct", msg: "interface S: SProxy is declared here, but the generated code for S declares it too: rename it"},
	}},

	{"name-clash", "S", `
import "context"

// SProxy is in the way of the generated proxy of S.
type SProxy struct{}

func sGetHandler() {}

type S interface {
	Get(ctx context.Context) error
}
`, []want{
		{at: "SProxy struct", msg: "interface S: SProxy is declared here, but the generated code for S declares it too: rename it"},
		{at: "sGetHandler()", msg: "interface S: sGetHandler is declared here, but the generated code for S declares it too: rename it"},
	}},

	{"type-error", "S", `
import "context"

type S interface {
	Get(ctx context.Context, k Undefined) error
}
`, []want{
		{at: "Undefined)", msg: "undefined: Undefined"},
		{at: "k Undefined", msg: "method Get: parameter k: type invalid type cannot cross a network: it does not type-check"},
	}},
}

// TestRefusals checks that proxygen refuses each service of refusalCases
// with exactly the expected problems, in one run, each naming
// file:line:col, the method, the parameter and the type path, and that it
// writes no file.
func TestRefusals(t *testing.T) {
	files := map[string]string{"other/other.go": refuseOther}
	for _, c := range refusalCases {
		files[filepath.Join(c.name, "svc.go")] = "package svc\n" + c.src
	}
	mod := newModule(t, files)
	for _, c := range refusalCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(mod, c.name)
			src := "package svc\n" + c.src
			_, err := Run(t.Context(), Config{Dir: dir, Types: strings.Split(c.types, ","), Env: goEnv()})
			if err == nil {
				t.Fatal("Run succeeded, want a refusal")
			}
			ps := problemsOf(t, err)
			otherFile := filepath.Join(mod, "other", "other.go")
			var got, wantLines []string
			for _, p := range ps {
				if p.Pos.Filename == otherFile {
					// Positions in other packages come from export data,
					// which holds lines but not always columns.
					p.Pos.Column = 0
				}
				got = append(got, p.String())
			}
			for _, w := range c.want {
				line := w.msg
				switch {
				case w.other:
					pos := positionOf(t, otherFile, refuseOther, w.at)
					line = pos[:strings.LastIndexByte(pos, ':')] + ": " + w.msg
				case w.at != "":
					line = positionOf(t, "svc.go", src, w.at) + ": " + w.msg
				}
				wantLines = append(wantLines, line)
			}
			if g, w := strings.Join(got, "\n"), strings.Join(sortedLike(wantLines, got), "\n"); g != w {
				t.Errorf("problems:\n%s\nwant:\n%s", g, w)
			}
			if _, err := os.Stat(filepath.Join(dir, DefaultOutput)); !os.IsNotExist(err) {
				t.Errorf("a refusal wrote %s (stat: %v)", DefaultOutput, err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("a refusal left files behind: %v", entries)
			}
		})
	}
}

// sortedLike returns want in the order of got where their elements match,
// so that a comparison shows missing and unexpected lines rather than an
// ordering difference; the order of got itself is checked by
// TestProblemsSorted.
func sortedLike(want, got []string) []string {
	left := map[string]int{}
	for _, w := range want {
		left[w]++
	}
	var out []string
	for _, g := range got {
		if left[g] > 0 {
			left[g]--
			out = append(out, g)
		}
	}
	for _, w := range want {
		if left[w] > 0 {
			left[w]--
			out = append(out, w)
		}
	}
	return out
}

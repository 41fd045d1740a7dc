package gen

import (
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// otherPkg is a package of the compile tests' module that services use
// types from.
const otherPkg = `// Package other holds types that services of the compile tests use from
// another package.
package other

import (
	"context"
	"time"
)

// Item is a struct of another package.
type Item struct {
	Name  string
	Tags  []string
	Attrs map[string]int
	When  time.Time
	Next  *Item
}

// Region is a named basic type of another package.
type Region string

// Pair is a generic struct.
type Pair[K comparable, V any] struct {
	Key   K
	Value V
}

// Deep nests other types.
type Deep struct {
	Items  map[Region][]Item
	Matrix [2][3]float64
	Ptrs   []*Item
	Pair   Pair[Region, []Item]
}

// Pinger is an interface that services embed.
type Pinger interface {
	Ping(ctx context.Context, n int) (Item, error)
}
`

// compileCases are the services of the compile tests: each is the body of
// a package (after its package clause) and the interfaces to generate.
var compileCases = []struct {
	name  string
	types string
	src   string
}{
	{"basics", "Basics", `
import (
	"context"
	"time"
)

type Level int8
type Name string
type Ratio float32
type Flag bool

type Basics interface {
	Ints(ctx context.Context, a int, b int8, c int16, d int32, e int64) (int, int8, int16, int32, int64, error)
	Uints(ctx context.Context, a uint, b uint8, c uint16, d uint32, e uint64) (uint, uint8, uint16, uint32, uint64, error)
	Floats(ctx context.Context, a float32, b float64) (float32, float64, error)
	Strings(ctx context.Context, s string, b []byte, r rune, y byte) (string, []byte, rune, byte, error)
	Bool(ctx context.Context, b bool) (bool, error)
	Named(ctx context.Context, l Level, n Name, r Ratio, f Flag) (Level, Name, Ratio, Flag, error)
	Times(ctx context.Context, t time.Time, d time.Duration) (time.Time, time.Duration, error)
}
`},
	{"containers", "Containers", `
import "context"

type Point struct{ X, Y float64 }
type Level int

type Containers interface {
	Pointers(ctx context.Context, p *int, pp **Point, s []*Point) (*Point, **int, error)
	Arrays(ctx context.Context, a [4]int, m [2][3]Point, b [16]byte) ([4]int, [2][3]Point, error)
	Maps(ctx context.Context, m map[string][]*Point, n map[Level]string, o map[int64]map[string]bool) (map[string][]*Point, map[bool]float64, error)
	Slices(ctx context.Context, s [][]string, t []map[string]Point) ([][]Point, error)
}
`},
	{"otherpkg", "Remote", `
import (
	"context"

	"example.com/m/other"
)

type Remote interface {
	Items(ctx context.Context, m map[string][]other.Item) (map[other.Region][]other.Item, error)
	Deep(ctx context.Context, d other.Deep, p *other.Deep) ([]other.Deep, error)
	Pair(ctx context.Context, p other.Pair[int, other.Item]) (other.Pair[other.Region, []*other.Item], error)
	Region(ctx context.Context, r other.Region) (other.Region, other.Item, error)
}
`},
	{"variadic", "Variadic", `
import (
	"context"

	"example.com/m/other"
)

type Variadic interface {
	Sum(ctx context.Context, xs ...int) (int, error)
	Join(ctx context.Context, sep string, parts ...other.Item) error
	Ptrs(ctx context.Context, ps ...*other.Item) error
	Bytes(ctx context.Context, bs ...[]byte) ([]byte, error)
}
`},
	{"embedded", "Outer", `
import (
	"context"

	"example.com/m/other"
)

type Inner interface {
	Hello(ctx context.Context, name string) (string, error)
}

type Outer interface {
	Inner
	other.Pinger
	Bye(ctx context.Context) error
}
`},
	{"unnamed", "Unnamed", `
import (
	"context"
	"time"
)

type Point struct{ X, Y int }

type Unnamed interface {
	All(context.Context, string, int, time.Time) (string, error)
	Blank(ctx context.Context, _ int, _ string) error
	Clash(ctx context.Context, a1 string, _ int, A2 bool) error
	Upper(ctx context.Context, Key string, key int) error
	Unicode(ctx context.Context, größe int, 名前 string, _x bool) error
}
`},
	{"shadowing", "Shadow", `
import (
	"context"
	"time"
)

type Point struct{ X, Y int }

// runtime is a local name that the import of Trellis's runtime must avoid.
type runtime struct{ A int }

type Shadow interface {
	Locals(ctx context.Context, p, args, res, err, impl, call, r0 int) (int, error)
	Packages(ctx context.Context, context string, time time.Duration, runtime runtime) (time.Time, error)
	Types(ctx context.Context, Point Point, nil int, string string) (Point, string, error)
	Local(ctx context.Context, x runtime) (runtime, error)
}
`},
	{"recursive", "Trees", `
import "context"

type Node struct {
	Name  string
	Next  *Node
	Kids  []Node
	Index map[string]*Node
}

type A struct {
	B  *B
	Bs []B
}

type B struct{ A *A }

type Trees interface {
	Walk(ctx context.Context, root *Node) (Node, error)
	Mutual(ctx context.Context, a A) (*B, error)
}
`},
	{"references", "Tree,Visitor,Factory", `
import (
	"context"
	"io"
)

type Tree interface {
	Child(ctx context.Context, name string) (Tree, error)
	Accept(ctx context.Context, v Visitor) error
	Both(ctx context.Context, v Visitor, w Visitor) (Tree, Visitor, error)
}

type Visitor interface {
	Visit(ctx context.Context, t Tree) (bool, error)
}

type Factory interface {
	New(ctx context.Context) (Visitor, error)
	Mixed(ctx context.Context, r io.Reader, v Visitor) (io.ReadCloser, Tree, int, error)
}
`},
	{"streams", "Files", `
import (
	"context"
	"io"
)

type Files interface {
	Upload(ctx context.Context, name string, r io.Reader) (int64, error)
	Download(ctx context.Context, name string) (io.ReadCloser, error)
	Copy(ctx context.Context, in io.ReadCloser) (io.Reader, error)
	Two(ctx context.Context, a, b io.Reader) (io.Reader, io.Reader, error)
}
`},
	{"minimal", "Minimal", `
import "context"

type Minimal interface {
	Ping(ctx context.Context) error
	Count(ctx context.Context) (int, error)
	Set(ctx context.Context, n int) error
}
`},
	{"unexported", "store", `
import "context"

type entry struct{ Key, Value string }

type store interface {
	get(ctx context.Context, k string) (string, error)
	Put(ctx context.Context, e entry) error
}
`},
	{"aliases", "Aliased", `
import (
	"context"

	"example.com/m/other"
)

type Point struct{ X, Y int }
type P = Point
type Items = []other.Item
type Ctx = context.Context
type Err = error
type R = other.Region

type Aliased interface {
	Get(ctx Ctx, p P, items Items) (P, Items, Err)
	Region(ctx context.Context, r R) (R, error)
}
`},
	{"structs", "Structs", `
import (
	"context"
	"encoding/json"
	"math/big"
	"net/netip"
)

type Tagged struct {
	Name    string ` + "`json:\"name\" cbor:\"n\"`" + `
	Skipped int    ` + "`cbor:\"-\"`" + `
	hidden  int    ` + "`cbor:\"-\"`" + `
	_       int
	Raw     json.RawMessage
	Embedded
}

type Embedded struct{ E int }

// Opaque has unexported fields but marshals itself.
type Opaque struct{ secret []byte }

func (o Opaque) MarshalBinary() ([]byte, error)      { return o.secret, nil }
func (o *Opaque) UnmarshalBinary(b []byte) error    { o.secret = b; return nil }

type Structs interface {
	Anon(ctx context.Context, v struct{ A int; B string ` + "`json:\"b\"`" + ` }) (struct{ C []int }, error)
	Tagged(ctx context.Context, t Tagged) (*Tagged, error)
	Opaque(ctx context.Context, o Opaque, a netip.Addr, n *big.Int) (Opaque, error)
}
`},
	{"empty", "Empty,Tiny", `
import "context"

type Empty interface{}

type Tiny interface {
	Empty
	Ping(context.Context) error
}
`},
	{"acronyms", "HTTPStore,URL", `
import "context"

type HTTPStore interface {
	Get(ctx context.Context, url string) (string, error)
}

type URL interface {
	Parse(ctx context.Context, s string) (URL, error)
}
`},
}

// TestCompile generates the code for every service of compileCases into a
// temporary module that depends on this repository, then builds and vets
// the module: the generated code must compile and pass vet for every
// supported signature.
func TestCompile(t *testing.T) {
	files := map[string]string{"other/other.go": otherPkg}
	for _, c := range compileCases {
		files[filepath.Join("svc", c.name, "svc.go")] = "// Package " + c.name + " is a compile test of proxygen.\npackage " + c.name + "\n" + c.src
	}
	mod := newModule(t, files)
	var wg sync.WaitGroup
	for _, c := range compileCases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(mod, "svc", c.name)
			o, err := Run(t.Context(), Config{Dir: dir, Types: strings.Split(c.types, ","), Env: goEnv()})
			if err != nil {
				t.Errorf("%s: generating %s: %v", c.name, c.types, err)
				return
			}
			if !strings.HasPrefix(string(o.Source), "// Code generated by proxygen. DO NOT EDIT.\n") {
				t.Errorf("%s: generated file does not start with the generated-code header", c.name)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	runGo(t, mod, "build", "./...")
	runGo(t, mod, "vet", "./...")
}

// TestCompileInitCycle checks that services which pass each other by
// reference set their methods in init, where Go sees no initialization
// cycle, and the others in their declaration as the contract shows.
func TestCompileInitCycle(t *testing.T) {
	var in string
	for _, c := range compileCases {
		if c.name == "references" {
			in = c.src
		}
	}
	dir := newModule(t, map[string]string{"svc/svc.go": "package svc\n" + in})
	o, err := generateIn(t, filepath.Join(dir, "svc"), "Tree", "Visitor", "Factory")
	if err != nil {
		t.Fatal(err)
	}
	src := string(o.Source)
	for _, name := range []string{"TreeService", "VisitorService"} {
		if !regexp.MustCompile(`(?m)^\t` + name + `\.Methods = `).MatchString(src) {
			t.Errorf("%s is on a reference cycle but its methods are not set in init", name)
		}
	}
	if !strings.Contains(src, "var FactoryService = &codegen.ServiceDesc{\n\tName: \"example.com/m/svc.Factory\",\n\tID:   0x") ||
		!strings.Contains(src, "\tMethods: []*codegen.MethodDesc{\n\t\tfactoryMixedMethod,\n\t\tfactoryNewMethod,\n\t},") {
		t.Errorf("FactoryService is on no cycle and should list its methods in its declaration:\n%s", src)
	}
}

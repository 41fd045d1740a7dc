// Package testsvc holds services used by the runtime's end-to-end tests:
// every kind of value that can cross the network, and methods that block,
// panic or fail on request.
package testsvc

import (
	"context"
	"errors"
	"fmt"
	"time"
)

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Kitchen,Control -output kitchen_trellis.go

// Level is a named basic type.
type Level int8

// Point is a small struct.
type Point struct {
	X, Y float64
}

// Tree is a recursive struct.
type Tree struct {
	Label string
	Kids  []*Tree
}

// Everything holds one of each supported kind of value.
type Everything struct {
	B      bool
	I      int
	I8     int8
	I16    int16
	I32    int32
	I64    int64
	U      uint
	U8     uint8
	U16    uint16
	U32    uint32
	U64    uint64
	F32    float32
	F64    float64
	S      string
	Bytes  []byte
	Ints   []int
	Arr    [3]uint16
	Map    map[string][]Point
	IntMap map[int64]string
	Ptr    *Point
	NilPtr *Point
	Level  Level
	When   time.Time
	Wait   time.Duration
	Tree   *Tree
	Nested [][]string
	Empty  []string
	NilMap map[string]int
}

// Kitchen exercises values and behaviours.
type Kitchen interface {
	// RoundTrip returns its argument unchanged.
	RoundTrip(ctx context.Context, e Everything) (Everything, error)
	// Echo returns its arguments.
	Echo(ctx context.Context, s string, n int) (string, int, error)
	// Sum adds its variadic arguments.
	Sum(ctx context.Context, xs ...int) (int, error)
	// Block waits for ctx to be done and reports why through Control.
	Block(ctx context.Context, tag string) error
	// Sleep sleeps d or until ctx is done, returning ctx.Err() then.
	Sleep(ctx context.Context, d time.Duration) error
	// Panic panics with msg.
	Panic(ctx context.Context, msg string) error
	// Fail returns an error chosen by kind: "notfound", "conflict", "plain".
	Fail(ctx context.Context, kind string) error
	// Nothing takes and returns nothing but an error.
	Nothing(ctx context.Context) error
	// EchoReq returns its argument: the benchmark's call shape.
	EchoReq(ctx context.Context, r Req) (Req, error)
	// RoundTripPlain returns its arguments unchanged: every kind that the
	// generated codecs encode without reflection.
	RoundTripPlain(ctx context.Context, p Plain, ps []*Plain, m map[Name]Plain) (Plain, []*Plain, map[Name]Plain, error)
}

// Name is a named string.
type Name string

// Tags is a named slice.
type Tags []Name

// Plain holds one of each kind that generated codecs encode without
// reflection (package runtime/wire), so that tests compare them with the
// reflective codec.
type Plain struct {
	B      bool
	I      int
	I8     int8
	I16    int16
	I32    int32
	I64    int64
	U      uint
	U8     uint8
	U16    uint16
	U32    uint32
	U64    uint64
	F32    float32
	F64    float64
	S      string
	Bytes  []byte
	Ints   []int
	Map    map[string][]Point
	IntMap map[int64]string
	U8Map  map[uint8]bool
	Ptr    *Point
	PtrPtr **int
	Level  Level
	Wait   time.Duration
	Tree   *Tree
	Nested [][]string
	Tags   Tags
	Name   Name
	//lint:ignore U1000 the field is there to be left out by both codecs.
	hidden int `cbor:"-"` // not encoded, by either codec
}

// Req is the benchmark's message: the shape of bench/'s Echo.
type Req struct {
	ID      int64
	Name    string
	Tags    []string
	Payload []byte
}

// Control lets a test observe a Kitchen from the outside.
type Control interface {
	// Started waits until a Block call with tag has started, at most until
	// ctx is done.
	Started(ctx context.Context, tag string) error
	// Blocked returns the error that ended the Block call with tag, waiting
	// at most until ctx is done.
	Blocked(ctx context.Context, tag string) (string, error)
	// Mallocs returns the serving process's cumulative heap allocation count.
	Mallocs(ctx context.Context) (uint64, error)
}

// ErrNotFound is a sentinel error that tests register.
var ErrNotFound = errors.New("testsvc: not found")

// ConflictError is an error type that tests register.
type ConflictError struct {
	Key     string
	Version int
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("testsvc: conflict on %s at version %d", e.Key, e.Version)
}

package wire

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// reflective is the reflective encoder with the runtime's options
// (codegen.CBOREncOptions, which this package cannot import).
var reflective, _ = cbor.EncOptions{Sort: cbor.SortNone, NilContainers: cbor.NilContainerAsNull}.EncMode()

func TestAppendMatchesReflectiveEncoder(t *testing.T) {
	ints := []int64{0, 1, 23, 24, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -24, -25, -256, -257, -65536, -65537, math.MinInt32, math.MinInt64}
	for _, v := range ints {
		check(t, AppendInt(nil, v), v)
		if v >= 0 {
			check(t, AppendUint(nil, uint64(v)), uint64(v))
		}
	}
	check(t, AppendUint(nil, math.MaxUint64), uint64(math.MaxUint64))
	for _, f := range []float64{0, math.Copysign(0, -1), 1.5, -2.25, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1), math.NaN()} {
		check(t, AppendFloat64(nil, f), f)
		check(t, AppendFloat32(nil, float32(f)), float32(f))
	}
	for _, n := range []int{0, 23, 24, 255, 256, 65535, 65536} {
		s := strings.Repeat("x", n)
		check(t, AppendString(nil, s), s)
		check(t, AppendBytes(nil, []byte(s)), []byte(s))
	}
	check(t, AppendBytes(nil, nil), []byte(nil))
	check(t, AppendBool(nil, true), true)
	check(t, AppendBool(nil, false), false)
	check(t, AppendNull(nil), nil)
	for _, n := range []int{0, 23, 24, 256, 70000} {
		full, _ := reflective.Marshal(make([]bool, n))
		if got := AppendArrayHeader(nil, n); !bytes.HasPrefix(full, got) || len(full)-len(got) != n {
			t.Errorf("array head of %d items: %x", n, got)
		}
		full, _ = reflective.Marshal(make(map[int]bool, n))
		if got := AppendMapHeader(nil, 0); n == 0 && !bytes.Equal(full, got) {
			t.Errorf("map head of 0 pairs: %x, want %x", got, full)
		}
	}
}

// check compares got with the reflective encoding of v.
func check(t *testing.T, got []byte, v any) {
	t.Helper()
	want, err := reflective.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%T %v: %x, want %x", v, v, got, want)
	}
}

func TestTypedReads(t *testing.T) {
	dec := func(b []byte) *Decoder {
		var d Decoder
		d.Reset(b, Limits{})
		return &d
	}
	enc := func(v any) []byte { b, _ := reflective.Marshal(v); return b }
	tests := []struct {
		name string
		read func(d *Decoder) (any, error)
		in   []byte
		want any
		err  string
	}{
		{"int8 min", func(d *Decoder) (any, error) { return Int[int8](d) }, enc(-128), int8(-128), ""},
		{"int8 below", func(d *Decoder) (any, error) { return Int[int8](d) }, enc(-129), nil, "overflows a 8-bit integer"},
		{"int8 above", func(d *Decoder) (any, error) { return Int[int8](d) }, enc(128), nil, "overflows a 8-bit integer"},
		{"int64 min", func(d *Decoder) (any, error) { return Int[int64](d) }, enc(int64(math.MinInt64)), int64(math.MinInt64), ""},
		{"int64 from a too large uint", func(d *Decoder) (any, error) { return Int[int64](d) }, enc(uint64(math.MaxUint64)), nil, "overflows a 64-bit integer"},
		{"uint16 max", func(d *Decoder) (any, error) { return Uint[uint16](d) }, enc(65535), uint16(65535), ""},
		{"uint16 above", func(d *Decoder) (any, error) { return Uint[uint16](d) }, enc(65536), nil, "overflows a 16-bit unsigned"},
		{"uint from a negative", func(d *Decoder) (any, error) { return Uint[uint](d) }, enc(-1), nil, "expected an unsigned integer, found a negative integer"},
		{"null as zero", func(d *Decoder) (any, error) { return Int[int](d) }, []byte{0xf6}, 0, ""},
		{"undefined as zero", func(d *Decoder) (any, error) { return String[string](d) }, []byte{0xf7}, "", ""},
		{"half float", func(d *Decoder) (any, error) { return Float[float64](d) }, []byte{0xf9, 0x3e, 0x00}, 1.5, ""},
		{"float64 into float32", func(d *Decoder) (any, error) { return Float[float32](d) }, enc(0.5), float32(0.5), ""},
		{"float64 overflowing float32", func(d *Decoder) (any, error) { return Float[float32](d) }, enc(1e300), nil, "overflows a float32"},
		{"truncated float", func(d *Decoder) (any, error) { return Float[float64](d) }, []byte{0xfb, 0, 0}, nil, "truncated float"},
		{"an int for a float", func(d *Decoder) (any, error) { return Float[float64](d) }, enc(1), nil, "expected a float"},
		{"bool", func(d *Decoder) (any, error) { return Bool[bool](d) }, enc(true), true, ""},
		{"a string for a bool", func(d *Decoder) (any, error) { return Bool[bool](d) }, enc("x"), nil, "expected a boolean, found a text string"},
		{"invalid UTF-8 kept", func(d *Decoder) (any, error) { return String[string](d) }, enc("\xff"), "\xff", ""},
		{"string beyond the input", func(d *Decoder) (any, error) { return String[string](d) }, []byte{0x7a, 0xff, 0xff, 0xff, 0xff, 'x'}, nil, "beyond the end of the input"},
		{"reserved length", func(d *Decoder) (any, error) { return Uint[uint64](d) }, []byte{0x1c}, nil, "reserved or indefinite"},
		{"truncated head", func(d *Decoder) (any, error) { return Uint[uint64](d) }, []byte{0x1b, 1, 2}, nil, "truncated"},
		{"empty bytes are not nil", func(d *Decoder) (any, error) { b, err := Bytes[[]byte](d); return b != nil && len(b) == 0, err }, enc([]byte{}), true, ""},
		{"end of input", func(d *Decoder) (any, error) { return Int[int](d) }, nil, nil, "found the end of the input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.read(dec(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.err)
				}
				if _, ok := err.(*SyntaxError); !ok {
					t.Errorf("error %T, want *SyntaxError", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestContainerLimits(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		limits Limits
		read   func(d *Decoder) error
		err    string
	}{
		{"array over the limit", []byte{0x85, 1, 2, 3, 4, 5}, Limits{MaxArrayElements: 4}, func(d *Decoder) error { _, err := d.Array(); return err }, "exceeds the limit of 4"},
		{"array beyond the input", []byte{0x9a, 0x00, 0x10, 0x00, 0x00}, Limits{}, func(d *Decoder) error { _, err := d.Array(); return err }, "beyond the end of the input"},
		{"map over the limit", []byte{0xa3, 1, 1, 2, 2, 3, 3}, Limits{MaxMapPairs: 2}, func(d *Decoder) error { _, err := d.Map(); return err }, "exceeds the limit of 2"},
		{"map beyond the input", []byte{0xa3, 1, 1}, Limits{}, func(d *Decoder) error { _, err := d.Map(); return err }, "beyond the end of the input"},
		{"nesting", []byte{0x81, 0x81, 0x81, 0x80}, Limits{MaxNesting: 3}, func(d *Decoder) error {
			for {
				if _, err := d.Array(); err != nil {
					return err
				}
			}
		}, "nested deeper than 3"},
		{"arity", []byte{0x82, 1, 2}, Limits{}, func(d *Decoder) error { return d.ArrayOf(3, "T") }, "T: an array of 2 items, want 3"},
		{"indefinite array", []byte{0x9f, 0xff}, Limits{}, func(d *Decoder) error { _, err := d.Array(); return err }, "indefinite"},
		{"trailing bytes", []byte{0x80, 0x00}, Limits{}, func(d *Decoder) error {
			if _, err := d.Array(); err != nil {
				return err
			}
			d.Leave()
			return d.Finish()
		}, "1 bytes after the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			d.Reset(tt.in, tt.limits)
			err := tt.read(&d)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.err)
			}
		})
	}
}

// TestBudget checks what the reads charge to the decode budget, and that
// an input beyond its budget is refused with a *BudgetError, where the
// item that exceeds it starts.
func TestBudget(t *testing.T) {
	big := func(head []byte, n int, item byte) []byte {
		b := append([]byte(nil), head...)
		for range n {
			b = append(b, item)
		}
		return b
	}
	const n = 100_000 // beyond the floor: the factor decides
	arr := AppendArrayHeader(nil, n)
	tests := []struct {
		name   string
		data   []byte
		factor int
		read   func(d *Decoder) error
		refuse bool
	}{
		{"small ints into 8-byte slots, factor 10", big(arr, n, 0x00), 10, func(d *Decoder) error { _, err := d.Slice(8); return err }, false},
		{"small ints into 8-byte slots, factor 7", big(arr, n, 0x00), 7, func(d *Decoder) error { _, err := d.Slice(8); return err }, true},
		{"empty strings into string headers", big(arr, n, 0x60), 10, func(d *Decoder) error { _, err := d.Slice(16); return err }, true},
		{"an old decoder's array", big(arr, n, 0x00), 10, func(d *Decoder) error { _, err := d.Array(); return err }, false},
		{"an old decoder's map", big(AppendMapHeader(nil, n/2), n, 0x00), 1, func(d *Decoder) error { _, err := d.Map(); return err }, true},
		{"map entries", big(AppendMapHeader(nil, n/2), n, 0x00), 10, func(d *Decoder) error { _, err := d.MapOf(8, 8); return err }, false},
		{"pointed-to values", []byte{0xf6}, 10, func(d *Decoder) error { return d.Alloc(1 << 20) }, true},
		{"a string is charged its bytes", AppendString(nil, string(make([]byte, 1<<20))), 1, func(d *Decoder) error {
			d.budget = 1<<20 - 1
			_, err := String[string](d)
			return err
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			d.Reset(tt.data, Limits{MaxAmplification: tt.factor})
			err := tt.read(&d)
			var be *BudgetError
			switch {
			case tt.refuse && (!errors.Is(err, ErrBudget) || !errors.As(err, &be)):
				t.Fatalf("error %v, want a *BudgetError", err)
			case tt.refuse && be.Offset != 0:
				t.Fatalf("refused at byte %d, want 0 (where the item starts)", be.Offset)
			case !tt.refuse && err != nil:
				t.Fatalf("error %v, want none", err)
			}
		})
	}
}

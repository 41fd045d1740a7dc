package testsvc

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/wire"
)

// The generated codecs must write the bytes of the runtime's reflective
// encoder and read them back to equal values, and the reflective decoder
// must read what they write: either side of a call may use either.

var (
	reflectEnc, _   = codegen.CBOREncOptions().EncMode()
	reflectDec, _   = codegen.CBORDecOptions(wire.Limits{}).DecMode()
	canonicalEnc, _ = cbor.EncOptions{Sort: cbor.SortCanonical, NilContainers: cbor.NilContainerAsNull}.EncMode()
)

func intPtr(v int) **int { p := &v; return &p }

// plainValues are hand-picked edge cases, then random values.
func plainValues(n int) []Plain {
	var nilInt *int
	vals := []Plain{
		{},
		{B: true, I: -1, I8: math.MinInt8, I16: math.MinInt16, I32: math.MinInt32, I64: math.MinInt64,
			U: math.MaxUint, U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64,
			F32: -1.5, F64: math.MaxFloat64, S: "\xff not UTF-8", Bytes: []byte{}, Ints: []int{}, Tags: Tags{},
			Map: map[string][]Point{}, IntMap: map[int64]string{}, U8Map: map[uint8]bool{}, Nested: [][]string{nil, {}}},
		{F64: math.Inf(1), F32: float32(math.Inf(-1)), I: 23, I64: 24, U: 255, U16: 256, U32: 65535, U64: 65536, I32: -25, I16: -256, S: string(make([]byte, 300))},
		{F64: math.Copysign(0, -1), F32: math.SmallestNonzeroFloat32, PtrPtr: &nilInt, Ptr: &Point{X: 1, Y: -2}},
		{PtrPtr: intPtr(-7), Level: -3, Wait: -time.Second, Name: "n", Tags: Tags{"a", ""},
			Tree: &Tree{Label: "root", Kids: []*Tree{{Label: "a"}, nil, {Label: "b", Kids: []*Tree{{}}}}}},
		{Map: map[string][]Point{"a": {{1, 2}}, "": nil, "c": {}}, IntMap: map[int64]string{-1: "x", 1 << 40: ""}, U8Map: map[uint8]bool{0: true, 255: false}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range n {
		vals = append(vals, randomPlain(rng, 3))
	}
	return vals
}

func randomPlain(rng *rand.Rand, depth int) Plain {
	str := func() string {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return string(b)
	}
	p := Plain{
		B: rng.IntN(2) == 0, I: int(rng.Int64()) >> rng.IntN(64), I8: int8(rng.Uint32()), I16: int16(rng.Uint32()),
		I32: int32(rng.Uint32()), I64: rng.Int64() >> rng.IntN(64) * int64(1-2*rng.IntN(2)), U: uint(rng.Uint64() >> rng.IntN(64)),
		U8: uint8(rng.Uint32()), U16: uint16(rng.Uint32()), U32: rng.Uint32() >> rng.IntN(32), U64: rng.Uint64() >> rng.IntN(64),
		F32: float32(rng.NormFloat64()), F64: rng.NormFloat64() * 1e10, S: str(), Level: Level(rng.IntN(256) - 128),
		Wait: time.Duration(rng.Int64()), Name: Name(str()),
	}
	if rng.IntN(3) > 0 {
		p.Bytes = []byte(str())
		p.Ints = []int{rng.Int(), -rng.Int()}
		p.Tags = Tags{Name(str())}
		p.Map = map[string][]Point{str(): {{rng.Float64(), -rng.Float64()}}}
		p.IntMap = map[int64]string{rng.Int64(): str(), -rng.Int64(): str()}
		p.U8Map = map[uint8]bool{uint8(rng.Uint32()): true}
		p.Ptr = &Point{X: rng.Float64()}
		p.PtrPtr = intPtr(rng.Int())
		p.Nested = [][]string{{str()}, nil}
		if depth > 0 {
			kid := randomPlain(rng, depth-1)
			p.Tree = &Tree{Label: kid.S, Kids: []*Tree{{Label: str()}}}
		}
	}
	return p
}

// canonical returns the canonical encoding of v, to compare values with
// maps (and NaNs) without caring for order.
func canonical(t *testing.T, v any) []byte {
	t.Helper()
	b, err := canonicalEnc.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGeneratedCodecMatchesReflection(t *testing.T) {
	for i, p := range plainValues(500) {
		args := &kitchenRoundTripPlainArgs{P: p, Ps: []*Plain{&p, nil}, M: map[Name]Plain{"k": p}}
		if i%2 == 0 { // one map entry at most, so that both encoders agree on the order
			args.M = nil
		}
		got := args.AppendCBOR(nil)
		want, err := reflectEnc.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Map) <= 1 && len(p.IntMap) <= 1 && len(p.U8Map) <= 1 && !bytes.Equal(got, want) {
			t.Fatalf("value %d: generated encoding\n%x\nreflective encoding\n%x", i, got, want)
		}

		var fromGen, fromReflect kitchenRoundTripPlainArgs
		var d wire.Decoder
		d.Reset(got, wire.Limits{})
		if err := fromGen.DecodeCBOR(&d); err != nil {
			t.Fatalf("value %d: generated decoder: %v", i, err)
		}
		if err := d.Finish(); err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		if err := reflectDec.Unmarshal(got, &fromReflect); err != nil {
			t.Fatalf("value %d: reflective decoder on the generated encoding: %v", i, err)
		}
		if !bytes.Equal(canonical(t, &fromGen), canonical(t, args)) || !bytes.Equal(canonical(t, &fromReflect), canonical(t, args)) {
			t.Fatalf("value %d did not round-trip:\nsent    %+v\ngen     %+v\nreflect %+v", i, args.P, fromGen.P, fromReflect.P)
		}
		if !reflect.DeepEqual(nilness(fromGen.P), nilness(fromReflect.P)) {
			t.Fatalf("value %d: the decoders disagree on nil and empty: %v vs %v", i, nilness(fromGen.P), nilness(fromReflect.P))
		}
	}
}

// nilness reports which of p's slices and maps are nil.
func nilness(p Plain) []bool {
	return []bool{p.Bytes == nil, p.Ints == nil, p.Map == nil, p.IntMap == nil, p.U8Map == nil, p.Tags == nil, p.Nested == nil}
}

func TestGeneratedDecoderRefuses(t *testing.T) {
	valid := (&kitchenRoundTripPlainArgs{P: plainValues(0)[1]}).AppendCBOR(nil)
	dupKey, _ := reflectEnc.Marshal([]any{map[string]int{"I": 1}, nil, nil})
	dupKey = bytes.Replace(dupKey, []byte{0xa1, 0x61, 'I', 0x01}, []byte{0xa2, 0x61, 'I', 0x01, 0x61, 'I', 0x02}, 1)
	overflow, _ := reflectEnc.Marshal([]any{map[string]int{"I8": 300}, nil, nil})
	tree := &Tree{}
	for range 40 {
		tree = &Tree{Kids: []*Tree{tree}}
	}
	deep, _ := reflectEnc.Marshal(&kitchenRoundTripPlainArgs{P: Plain{Tree: tree}})
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "expected an array"},
		{"truncated", valid[:len(valid)/2], ""},
		{"wrong arity", []byte{0x82, 0xf6, 0xf6}, "an array of 2 items, want 3"},
		{"a string for a struct", []byte{0x83, 0x61, 'x', 0xf6, 0xf6}, "expected a map"},
		{"duplicate field", dupKey, "duplicate map key I"},
		{"overflow", overflow, "overflows a 8-bit integer"},
		{"array longer than the input", []byte{0x83, 0xa1, 0x64, 'I', 'n', 't', 's', 0x9a, 0xff, 0xff, 0xff, 0xff}, "exceeds the limit"},
		{"bytes beyond the input", []byte{0x83, 0xa1, 0x65, 'B', 'y', 't', 'e', 's', 0x5a, 0x00, 0xff, 0xff, 0xff}, "beyond the end of the input"},
		{"indefinite length", []byte{0x83, 0xbf, 0xff, 0xf6, 0xf6}, "indefinite"},

		{"too deep", deep, "nested deeper"},
		{"trailing bytes", append(bytes.Clone(valid), 0x00), "after the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v kitchenRoundTripPlainArgs
			var d wire.Decoder
			d.Reset(tt.data, wire.Limits{})
			err := v.DecodeCBOR(&d)
			if err == nil {
				err = d.Finish()
			}
			var se *wire.SyntaxError
			if !errorsAs(err, &se) {
				t.Fatalf("error %v, want a *wire.SyntaxError", err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Errorf("error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

// FuzzGeneratedDecoder checks that the generated decoder never panics, and
// that what it accepts the reflective decoder accepts too, with the same
// value.
func FuzzGeneratedDecoder(f *testing.F) {
	for _, p := range plainValues(8) {
		f.Add((&kitchenRoundTripPlainArgs{P: p, Ps: []*Plain{&p}}).AppendCBOR(nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v kitchenRoundTripPlainArgs
		var d wire.Decoder
		d.Reset(data, wire.Limits{MaxArrayElements: 1 << 12, MaxMapPairs: 1 << 12})
		err := v.DecodeCBOR(&d)
		if err == nil {
			err = d.Finish()
		}
		if err != nil {
			var se *wire.SyntaxError
			if err != wire.ErrNotExact && !errors.As(err, &se) && !errors.Is(err, wire.ErrBudget) {
				t.Fatalf("error %v is neither ErrNotExact, a *wire.SyntaxError nor wire.ErrBudget", err)
			}
			return
		}
		var r kitchenRoundTripPlainArgs
		if err := reflectDec.Unmarshal(data, &r); err != nil {
			t.Fatalf("the generated decoder accepted what the reflective one refuses (%v): %x", err, data)
		}
		if !bytes.Equal(canonical(t, &v), canonical(t, &r)) {
			t.Fatalf("the decoders disagree on %x:\n%+v\n%+v", data, v, r)
		}
	})
}

// Input that the reflective decoder may read but the generated one does not
// (other keys, tags) is left to the reflective decoder.
func TestGeneratedDecoderDefersToReflection(t *testing.T) {
	foldedKey, _ := reflectEnc.Marshal([]any{map[string]int{"i64": 5}, nil, nil})
	tests := []struct {
		name string
		data []byte
	}{
		{"a key in another case", foldedKey},
		{"an unknown key", []byte{0x83, 0xa1, 0x61, 'z', 0x01, 0xf6, 0xf6}},
		{"a tag", []byte{0x83, 0xc1, 0x00, 0xf6, 0xf6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v kitchenRoundTripPlainArgs
			var d wire.Decoder
			d.Reset(tt.data, wire.Limits{})
			if err := v.DecodeCBOR(&d); err != wire.ErrNotExact {
				t.Errorf("error %v, want wire.ErrNotExact", err)
			}
		})
	}
}

func errorsAs(err error, target **wire.SyntaxError) bool { return errors.As(err, target) }

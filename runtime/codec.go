package runtime

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"

	"github.com/trellisrpc/trellis/runtime/wire"
)

// codec holds the CBOR encoding and decoding modes of a node, built once.
type codec struct {
	enc    cbor.UserBufferEncMode
	dec    cbor.DecMode
	limits wire.Limits // the same limits, for generated decoders
}

// A WireCodec is a wire struct (the arguments or the results of a method)
// for which proxygen generated an encoder and a decoder, because every
// type in it is one that package wire encodes without reflection. The
// runtime uses them in place of the reflective CBOR codec whenever no
// marshal transformer applies to the struct; both write the same bytes.
type WireCodec interface {
	// AppendCBOR appends the CBOR encoding of the struct to b.
	AppendCBOR(b []byte) []byte
	// DecodeCBOR decodes the struct from d, which holds one CBOR item.
	DecodeCBOR(d *wire.Decoder) error
}

// decoders recycles the decoders of generated wire structs.
var decoders = sync.Pool{New: func() any { return new(wire.Decoder) }}

// decodeWire decodes data, which must hold exactly one item, into v; input
// that is valid but not in the generated decoder's exact form (see
// wire.ErrNotExact) goes to the reflective decoder.
func (c *codec) decodeWire(data []byte, v WireCodec) error {
	d := decoders.Get().(*wire.Decoder)
	d.Reset(data, c.limits)
	err := v.DecodeCBOR(d)
	if err == nil {
		err = d.Finish()
	}
	d.Reset(nil, c.limits) // keep no reference to the message
	decoders.Put(d)
	if err == wire.ErrNotExact {
		reflect.ValueOf(v).Elem().SetZero()
		return c.dec.Unmarshal(data, v)
	}
	return err
}

// DecodeLimits bound what a decoded message may hold, so that hostile input
// cannot make a node allocate without limit.
type DecodeLimits struct {
	// MaxNesting caps the depth of nested arrays and maps (default 32).
	MaxNesting int
	// MaxArrayElements caps one array (default 1<<20).
	MaxArrayElements int
	// MaxMapPairs caps one map (default 1<<20).
	MaxMapPairs int
}

// withDefaults fills in the zero fields of l.
func (l DecodeLimits) withDefaults() DecodeLimits {
	if l.MaxNesting <= 0 {
		l.MaxNesting = 32
	}
	if l.MaxArrayElements <= 0 {
		l.MaxArrayElements = 1 << 20
	}
	if l.MaxMapPairs <= 0 {
		l.MaxMapPairs = 1 << 20
	}
	return l
}

// CBOREncOptions returns the options of the runtime's reflective CBOR
// encoder, which generated codecs (see WireCodec) match byte for byte;
// tests of generated code compare the two with them.
func CBOREncOptions() cbor.EncOptions {
	return cbor.EncOptions{
		Time:          cbor.TimeRFC3339Nano,
		Sort:          cbor.SortNone,
		NilContainers: cbor.NilContainerAsNull,
	}
}

// CBORDecOptions returns the options of the runtime's reflective CBOR
// decoder under the limits l (zero fields take their defaults).
func CBORDecOptions(l DecodeLimits) cbor.DecOptions {
	l = l.withDefaults()
	return cbor.DecOptions{
		MaxNestedLevels:  l.MaxNesting,
		MaxArrayElements: l.MaxArrayElements,
		MaxMapPairs:      l.MaxMapPairs,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsAllowed,
		UTF8:             cbor.UTF8DecodeInvalid, // a Go string may hold any bytes
	}
}

func newCodec(l DecodeLimits) (*codec, error) {
	l = l.withDefaults()
	enc, err := CBOREncOptions().UserBufferEncMode()
	if err != nil {
		return nil, fmt.Errorf("trellis: CBOR encoding mode: %w", err)
	}
	dec, err := CBORDecOptions(l).DecMode()
	if err != nil {
		return nil, fmt.Errorf("trellis: CBOR decoding mode: %w", err)
	}
	limits := wire.Limits{MaxNesting: l.MaxNesting, MaxArrayElements: l.MaxArrayElements, MaxMapPairs: l.MaxMapPairs}
	return &codec{enc: enc, dec: dec, limits: limits}, nil
}

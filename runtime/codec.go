package runtime

import (
	"fmt"
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

// decodeWire decodes data, which must hold exactly one item, into c.
func (c *codec) decodeWire(data []byte, v WireCodec) error {
	d := decoders.Get().(*wire.Decoder)
	d.Reset(data, c.limits)
	err := v.DecodeCBOR(d)
	if err == nil {
		err = d.Finish()
	}
	d.Reset(nil, c.limits) // keep no reference to the message
	decoders.Put(d)
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

func newCodec(l DecodeLimits) (*codec, error) {
	if l.MaxNesting <= 0 {
		l.MaxNesting = 32
	}
	if l.MaxArrayElements <= 0 {
		l.MaxArrayElements = 1 << 20
	}
	if l.MaxMapPairs <= 0 {
		l.MaxMapPairs = 1 << 20
	}
	enc, err := cbor.EncOptions{
		Time:          cbor.TimeRFC3339Nano,
		Sort:          cbor.SortNone,
		NilContainers: cbor.NilContainerAsNull,
	}.UserBufferEncMode()
	if err != nil {
		return nil, fmt.Errorf("trellis: CBOR encoding mode: %w", err)
	}
	dec, err := cbor.DecOptions{
		MaxNestedLevels:  l.MaxNesting,
		MaxArrayElements: l.MaxArrayElements,
		MaxMapPairs:      l.MaxMapPairs,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsAllowed,
		UTF8:             cbor.UTF8DecodeInvalid, // a Go string may hold any bytes
	}.DecMode()
	if err != nil {
		return nil, fmt.Errorf("trellis: CBOR decoding mode: %w", err)
	}
	limits := wire.Limits{MaxNesting: l.MaxNesting, MaxArrayElements: l.MaxArrayElements, MaxMapPairs: l.MaxMapPairs}
	return &codec{enc: enc, dec: dec, limits: limits}, nil
}

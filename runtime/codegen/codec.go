package codegen

import (
	"github.com/fxamacker/cbor/v2"

	"github.com/trellisrpc/trellis/runtime/wire"
)

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
// decoder under the limits l; zero fields take the defaults that
// wire.Limits documents.
func CBORDecOptions(l wire.Limits) cbor.DecOptions {
	l = l.WithDefaults()
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

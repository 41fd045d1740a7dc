package runtime

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// codec holds the CBOR encoding and decoding modes of a node, built once.
type codec struct {
	enc cbor.UserBufferEncMode
	dec cbor.DecMode
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
	return &codec{enc: enc, dec: dec}, nil
}

package runtime

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/wire"
)

// codec holds the CBOR encoding and decoding modes of a node, built once.
type codec struct {
	enc    cbor.UserBufferEncMode
	dec    cbor.DecMode
	limits wire.Limits // the same limits, for generated decoders
}

// scanFrom is the size from which a message bound for a generated decoder
// is checked against its decode budget before it is decoded; a smaller one
// decodes into a few hundred KiB at most (see wire.Limits.Budget).
const scanFrom = 64 << 10

// decoders recycles the decoders of generated wire structs.
var decoders = sync.Pool{New: func() any { return new(wire.Decoder) }}

// decodeWire decodes data, which must hold exactly one item, into v; input
// that is valid but not in the generated decoder's exact form (see
// wire.ErrNotExact) goes to the reflective decoder.
func (c *codec) decodeWire(data []byte, v codegen.WireCodec) error {
	if len(data) >= scanFrom {
		// A generated decoder charges the budget as it goes, so it would
		// allocate up to the whole budget before refusing a message:
		// a large message is checked before it is decoded.
		if err := c.checkBudget(data, reflect.TypeOf(v).Elem(), nil); err != nil {
			return err
		}
	}
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
		return c.unmarshal(data, v)
	}
	return err
}

// unmarshal decodes data into v, a pointer, with the reflective decoder,
// once the message is known to fit its decode budget (see checkBudget).
func (c *codec) unmarshal(data []byte, v any) error {
	if err := c.checkBudget(data, reflect.TypeOf(v).Elem(), nil); err != nil {
		return err
	}
	return c.dec.Unmarshal(data, v)
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
	// MaxAmplification caps what one message decodes into, as a multiple
	// of its size (default 10): the slices, map entries, strings and
	// pointed-to values of the decoded arguments or results may take at
	// most 64 KiB plus MaxAmplification times the encoded size. A message
	// beyond it is refused with an error for which errors.Is(err,
	// wire.ErrBudget) holds, before it is decoded in full.
	MaxAmplification int
}

// wireLimits returns l as package wire's limits.
func (l DecodeLimits) wireLimits() wire.Limits {
	return wire.Limits{MaxNesting: l.MaxNesting, MaxArrayElements: l.MaxArrayElements, MaxMapPairs: l.MaxMapPairs, MaxAmplification: l.MaxAmplification}
}

func newCodec(l DecodeLimits) (*codec, error) {
	wl := l.wireLimits().WithDefaults()
	enc, err := codegen.CBOREncOptions().UserBufferEncMode()
	if err != nil {
		return nil, fmt.Errorf("trellis: CBOR encoding mode: %w", err)
	}
	dec, err := codegen.CBORDecOptions(wl).DecMode()
	if err != nil {
		return nil, fmt.Errorf("trellis: CBOR decoding mode: %w", err)
	}
	return &codec{enc: enc, dec: dec, limits: wl}, nil
}

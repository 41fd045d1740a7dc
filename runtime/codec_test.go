package runtime

import (
	"testing"

	"github.com/trellisrpc/trellis/runtime/wire"
)

// partial is a codegen.WireCodec whose decoder fills a field, then finds the input
// not in its exact form.
type partial struct {
	_ struct{} `cbor:",toarray"`
	A int
	B string
}

func (p *partial) AppendCBOR(b []byte) []byte { return b }

func (p *partial) DecodeCBOR(d *wire.Decoder) error {
	p.A = 99
	return wire.ErrNotExact
}

// Input that a generated decoder leaves to the reflective one is decoded by
// it, from a zero value.
func TestDecodeWireDefersToReflection(t *testing.T) {
	c, err := newCodec(DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.enc.Marshal(&partial{B: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var v partial
	if err := c.decodeWire(data, &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 0 || v.B != "x" {
		t.Errorf("decoded %+v, want {A:0 B:x}: the reflective decoder from a zero value", v)
	}
}

package codegen

import (
	"fmt"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime/wire"
)

// A Ref is the wire form of an object passed by reference: the node that
// exports it, its ID in that node's export table, and the ID of the service
// interface it is exported as.
type Ref struct {
	_       struct{} `cbor:",toarray"`
	Node    nodeid.ID
	Object  uint64
	Service uint64
}

// IsZero reports whether r designates nothing (a nil interface value).
// A Ref with a Node but Object 0 designates that node's registered service.
func (r Ref) IsZero() bool { return r.Node == 0 }

// A StreamRef is the wire form of an io.Reader passed as a stream.
type StreamRef struct {
	_      struct{} `cbor:",toarray"`
	Node   nodeid.ID
	Stream uint64
}

// RefTypeError reports a reference whose local object does not implement
// the interface the receiver expects.
func RefTypeError(r Ref, svc *ServiceDesc, local any) error {
	return fmt.Errorf("trellis: reference %d of node %s: object of type %T does not implement %s", r.Object, r.Node, local, svc.Name)
}

// AppendCBOR appends the CBOR encoding of r (the array [Node, Object,
// Service]) to b, for generated codecs (see WireCodec).
func (r *Ref) AppendCBOR(b []byte) []byte {
	b = wire.AppendArrayHeader(b, 3)
	b = wire.AppendUint(b, uint64(r.Node))
	b = wire.AppendUint(b, r.Object)
	return wire.AppendUint(b, r.Service)
}

// DecodeCBOR decodes r from d, for generated codecs (see WireCodec).
func (r *Ref) DecodeCBOR(d *wire.Decoder) error {
	if d.Nil() {
		*r = Ref{}
		return nil
	}
	if err := d.ArrayOf(3, "a reference"); err != nil {
		return err
	}
	var err error
	if r.Node, err = wire.Uint[nodeid.ID](d); err != nil {
		return err
	}
	if r.Object, err = wire.Uint[uint64](d); err != nil {
		return err
	}
	if r.Service, err = wire.Uint[uint64](d); err != nil {
		return err
	}
	d.Leave()
	return nil
}

// AppendCBOR appends the CBOR encoding of s (the array [Node, Stream]) to
// b, for generated codecs (see WireCodec).
func (s *StreamRef) AppendCBOR(b []byte) []byte {
	b = wire.AppendArrayHeader(b, 2)
	b = wire.AppendUint(b, uint64(s.Node))
	return wire.AppendUint(b, s.Stream)
}

// DecodeCBOR decodes s from d, for generated codecs (see WireCodec).
func (s *StreamRef) DecodeCBOR(d *wire.Decoder) error {
	if d.Nil() {
		*s = StreamRef{}
		return nil
	}
	if err := d.ArrayOf(2, "a stream reference"); err != nil {
		return err
	}
	var err error
	if s.Node, err = wire.Uint[nodeid.ID](d); err != nil {
		return err
	}
	if s.Stream, err = wire.Uint[uint64](d); err != nil {
		return err
	}
	d.Leave()
	return nil
}

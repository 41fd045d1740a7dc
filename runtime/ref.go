package runtime

import (
	"context"
	"fmt"
	"io"

	"github.com/trellisrpc/trellis/runtime/wire"
)

// A Ref is the wire form of an object passed by reference: the node that
// exports it, its ID in that node's export table, and the ID of the service
// interface it is exported as.
type Ref struct {
	_       struct{} `cbor:",toarray"`
	Node    NodeID
	Object  uint64
	Service uint64
}

// IsZero reports whether r designates nothing (a nil interface value).
// A Ref with a Node but Object 0 designates that node's registered service.
func (r Ref) IsZero() bool { return r.Node == 0 }

// A StreamRef is the wire form of an io.Reader passed as a stream.
type StreamRef struct {
	_      struct{} `cbor:",toarray"`
	Node   NodeID
	Stream uint64
}

// An Exporter turns a local object into a reference that a peer can call.
// *Client (for arguments) and *ServerCall (for results) implement it.
type Exporter interface {
	Export(v any, svc *ServiceDesc) (Ref, error)
}

// An Importer turns a received reference back into an object: the original
// (local) object when the reference designates one of this node's objects,
// a client of the remote object otherwise. *Client and *ServerCall
// implement it.
type Importer interface {
	Import(r Ref, svc *ServiceDesc) (local any, remote *Client, err error)
}

// RefTypeError reports a reference whose local object does not implement
// the interface the receiver expects.
func RefTypeError(r Ref, svc *ServiceDesc, local any) error {
	return fmt.Errorf("trellis: reference %d of node %s: object of type %T does not implement %s", r.Object, r.Node, local, svc.Name)
}

// Export implements Exporter for the arguments of a call: v is exported to
// the call's target.
func (c *Client) Export(v any, svc *ServiceDesc) (Ref, error) {
	return c.node.exportRef(v, svc, c.target)
}

// Import implements Importer for the results of a call.
func (c *Client) Import(r Ref, svc *ServiceDesc) (any, *Client, error) {
	return c.node.importRef(r, svc, c.target)
}

// Export implements Exporter for the results of a call: v is exported to
// the caller.
func (sc *ServerCall) Export(v any, svc *ServiceDesc) (Ref, error) {
	return sc.node.exportRef(v, svc, sc.caller)
}

// Import implements Importer for the arguments of a call.
func (sc *ServerCall) Import(r Ref, svc *ServiceDesc) (any, *Client, error) {
	return sc.node.importRef(r, svc, sc.caller)
}

// ExportReader replaces an io.Reader argument by a stream handle; the
// stream is reset if ctx (the call's context) ends before it does.
func (c *Client) ExportReader(ctx context.Context, r io.Reader) (StreamRef, error) {
	return c.node.exportStream(ctx, r, c.target)
}

// ImportReader returns the reader a stream handle in a call's results designates.
func (c *Client) ImportReader(s StreamRef) (io.ReadCloser, error) {
	return c.node.importStream(s, c.target)
}

// ExportReader replaces an io.Reader result by a stream handle.
func (sc *ServerCall) ExportReader(r io.Reader) (StreamRef, error) {
	return sc.node.exportStream(context.Background(), r, sc.caller)
}

// ImportReader returns the reader a stream handle in a call's arguments designates.
func (sc *ServerCall) ImportReader(s StreamRef) (io.ReadCloser, error) {
	return sc.node.importStream(s, sc.caller)
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
	if err := d.ArrayOf(3, "runtime.Ref"); err != nil {
		return err
	}
	var err error
	if r.Node, err = wire.Uint[NodeID](d); err != nil {
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
	if err := d.ArrayOf(2, "runtime.StreamRef"); err != nil {
		return err
	}
	var err error
	if s.Node, err = wire.Uint[NodeID](d); err != nil {
		return err
	}
	if s.Stream, err = wire.Uint[uint64](d); err != nil {
		return err
	}
	d.Leave()
	return nil
}

package codegen

import (
	"context"
	"io"
)

// A Client sends the calls of one generated proxy to one remote object: a
// service of a node, or an object passed by reference. The runtime
// implements it; runtime.ProxyOf returns the user's view of it.
type Client interface {
	// Call calls method m with args, decoding the reply into results.
	// args and results are pointers to the wire structs that proxygen
	// generates; either may be nil when the method has no arguments or no
	// results.
	Call(ctx context.Context, m *MethodDesc, args, results any) error
	Exporter
	Importer
	// ExportReader replaces an io.Reader argument by a stream handle; the
	// stream is reset if ctx (the call's context) ends before it does.
	ExportReader(ctx context.Context, r io.Reader) (StreamRef, error)
	// ImportReader returns the reader that a stream handle in a call's
	// results designates.
	ImportReader(s StreamRef) (io.ReadCloser, error)
	// Unexport takes back references and streams (Ref and StreamRef
	// values, zero ones ignored) exported for a call that was not sent
	// (see runtime.NotSent): the counts drop as if the holder had released
	// them, and the streams' sources are closed.
	Unexport(handles ...any)
}

// A ServerCall is a call being served, as a generated handler sees it. It
// is valid until the handler returns.
type ServerCall interface {
	// Decode decodes the call's arguments into v, a pointer to the
	// generated arguments struct.
	Decode(v any) error
	// Reply encodes v, a pointer to the generated results struct, as the
	// call's reply.
	Reply(v any) error
	Exporter
	Importer
	// ExportReader replaces an io.Reader result by a stream handle.
	ExportReader(r io.Reader) (StreamRef, error)
	// ImportReader returns the reader that a stream handle in the call's
	// arguments designates.
	ImportReader(s StreamRef) (io.ReadCloser, error)
}

// An Exporter turns a local object into a reference that a peer can call:
// a Client exports arguments to the call's target, a ServerCall exports
// results to the caller.
type Exporter interface {
	Export(v any, svc *ServiceDesc) (Ref, error)
}

// An Importer turns a received reference back into an object: the
// original (local) object when the reference designates one of this node's
// objects, a client of the remote object otherwise. Client and ServerCall
// implement it.
type Importer interface {
	Import(r Ref, svc *ServiceDesc) (local any, remote Client, err error)
}

// Proxy is implemented by the proxies proxygen generates; runtime.ProxyOf
// and runtime.Release find the client behind a proxy through it.
type Proxy interface {
	// TrellisClient returns the client behind the proxy.
	TrellisClient() Client
}

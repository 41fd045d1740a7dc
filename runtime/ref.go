package runtime

import (
	"context"
	"io"

	"github.com/trellisrpc/trellis/runtime/codegen"
)

// stub is a Client as generated proxies see it: it implements
// codegen.Client, so that the methods only generated code calls stay out
// of Client's documentation. A *Client and a *stub convert freely.
type stub Client

// asStub returns c as a codegen.Client: nil (the interface) when c is nil.
func asStub(c *Client) codegen.Client {
	if c == nil {
		return nil
	}
	return (*stub)(c)
}

// Call implements codegen.Client.
func (s *stub) Call(ctx context.Context, m *codegen.MethodDesc, args, results any) error {
	return (*Client)(s).do(ctx, m, args, results)
}

// Export implements codegen.Exporter for the arguments of a call: v is
// exported to the call's target.
func (s *stub) Export(v any, svc *codegen.ServiceDesc) (codegen.Ref, error) {
	return s.node.exportRef(v, svc, s.target)
}

// Import implements codegen.Importer for the results of a call.
func (s *stub) Import(r codegen.Ref, svc *codegen.ServiceDesc) (any, codegen.Client, error) {
	local, remote, err := s.node.importRef(r, svc, s.target)
	return local, asStub(remote), err
}

// ExportReader implements codegen.Client: the stream is reset if ctx (the
// call's context) ends before it does.
func (s *stub) ExportReader(ctx context.Context, r io.Reader) (codegen.StreamRef, error) {
	return s.node.exportStream(ctx, r, s.target)
}

// ImportReader implements codegen.Client.
func (s *stub) ImportReader(r codegen.StreamRef) (io.ReadCloser, error) {
	return s.node.importStream(r, s.target)
}

// Unexport implements codegen.Client.
func (s *stub) Unexport(handles ...any) { (*Client)(s).unexport(handles...) }

// Export implements codegen.Exporter for the results of a call: v is
// exported to the caller.
func (sc *serverCall) Export(v any, svc *codegen.ServiceDesc) (codegen.Ref, error) {
	return sc.node.exportRef(v, svc, sc.caller)
}

// Import implements codegen.Importer for the arguments of a call.
func (sc *serverCall) Import(r codegen.Ref, svc *codegen.ServiceDesc) (any, codegen.Client, error) {
	local, remote, err := sc.node.importRef(r, svc, sc.caller)
	return local, asStub(remote), err
}

// ExportReader implements codegen.ServerCall.
func (sc *serverCall) ExportReader(r io.Reader) (codegen.StreamRef, error) {
	return sc.node.exportStream(context.Background(), r, sc.caller)
}

// ImportReader implements codegen.ServerCall.
func (sc *serverCall) ImportReader(s codegen.StreamRef) (io.ReadCloser, error) {
	return sc.node.importStream(s, sc.caller)
}

package runtime

import (
	"fmt"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

// A Message is an encoded call or reply, as message transformers see it.
type Message struct {
	// Service and Method name the method called.
	Service *codegen.ServiceDesc
	Method  *codegen.MethodDesc
	// Peer is the other end: the target of an outgoing call, the caller of
	// a call being served.
	Peer NodeID
	// Reply is set for replies (results or an error), clear for calls.
	Reply bool
	// Error is set for a reply carrying an error; Body then holds its
	// encoded form and should be passed through unchanged.
	Error bool
	// Metadata travels beside the body; transformers may read and change it
	// (authentication tokens, trace ids).
	Metadata Metadata
	// Body is the CBOR encoding of the arguments or results. A transformer
	// may replace it (compression, encryption) if its counterpart on the
	// other side restores it.
	Body []byte
}

// A Transformer sees every message of a proxy (set with
// Client.SetTransformer or WithTransformer), or every message a node serves
// (Node.SetInterceptor). An error from Outgoing stops the message: the call
// fails with it (on a proxy), or the caller receives it as the error of the
// call (on a node). An error from Incoming fails the call in the same way.
// Transformers run on the node's goroutines and must not block for long.
type Transformer interface {
	Outgoing(m *Message) error
	Incoming(m *Message) error
}

// TransformerFuncs makes a Transformer of two functions; a nil one passes
// messages through.
type TransformerFuncs struct {
	Out, In func(m *Message) error
}

// Outgoing implements Transformer.
func (f TransformerFuncs) Outgoing(m *Message) error {
	if f.Out == nil {
		return nil
	}
	return f.Out(m)
}

// Incoming implements Transformer.
func (f TransformerFuncs) Incoming(m *Message) error {
	if f.In == nil {
		return nil
	}
	return f.In(m)
}

// WithTransformer sets the proxy's message transformer at creation.
func WithTransformer(t Transformer) ProxyOption {
	return func(o *proxyOptions) { o.transformer = t }
}

// SetTransformer sets (or, with nil, removes) the message transformer of
// the proxy this client is behind; it applies to the calls that start after.
func (c *Client) SetTransformer(t Transformer) {
	if t == nil {
		c.transformer.Store(nil)
		return
	}
	c.transformer.Store(&t)
}

// SetInterceptor sets (or, with nil, removes) the transformer that sees
// every call this node serves (Incoming, before the arguments are decoded)
// and every reply it sends (Outgoing).
func (n *Node) SetInterceptor(t Transformer) {
	if t == nil {
		n.interceptor.Store(nil)
		return
	}
	n.interceptor.Store(&t)
}

// transformOut encodes args, runs the transformer and writes the request
// envelope and the transformed body into a frame buffer. It returns what
// marshal transformers exported, even when it fails (see Node.encode).
func (c *Client) transformOut(t Transformer, req *request, m *codegen.MethodDesc, args any) (*transport.Buffer, []any, error) {
	body := transport.GetBuffer()
	defer transport.PutBuffer(body)
	var exported []any
	if args != nil {
		var err error
		if exported, err = c.node.encode(args, &body.Buffer, c.target); err != nil {
			return nil, exported, fmt.Errorf("encoding arguments: %w", err)
		}
	}
	msg := Message{Service: c.svc, Method: m, Peer: c.target, Metadata: req.metadata, Body: body.Bytes()}
	if err := t.Outgoing(&msg); err != nil {
		return nil, exported, err
	}
	if err := validMetadata(msg.Metadata); err != nil {
		return nil, exported, fmt.Errorf("transformer: %w", err)
	}
	req.metadata = msg.Metadata
	buf := transport.GetBuffer()
	buf.Write(appendRequest(buf.AvailableBuffer(), req))
	buf.Write(msg.Body)
	return buf, exported, nil
}

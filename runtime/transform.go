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
	// Error is set for a reply carrying an error (the implementation's, or
	// the machinery's: a panic, a deadline, results too large...); Body then
	// holds the error's encoded form. Leave it unchanged, or have the
	// counterpart restore it: the caller's node decodes it after the
	// proxy's transformer has seen it, and an error it cannot decode is a
	// protocol error (ErrProtocol), which closes the connection.
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
// Client.SetTransformer or WithTransformer), or the calls a node serves and
// its replies to them (Node.SetInterceptor).
//
// On a proxy, an error from Outgoing stops the call before it is sent: the
// call fails with it, and NotSent holds. An error from Incoming, on the
// reply, fails the call with it (the call ran).
//
// On a node, an error from Incoming refuses the call, which is not run:
// the caller gets ErrRejected (NotSent holds) with the error's message,
// and errors.Is and errors.As see the error itself on the caller when it
// is registered (RegisterError, RegisterErrorType). An error from
// Outgoing, on the reply of a call that ran, replaces the reply: the
// caller gets ErrRejected in the same way (NotSent does not hold) and, if
// the reply was an error, that error's message too. Either way only the
// call fails: the connection stays up. The node logs Outgoing's failures,
// at most once per caller every 10 seconds.
//
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
// and every reply it sends to the calls it dispatches to their handlers
// (Outgoing): results, and errors alike (Message.Error set: the
// implementation's, a panic, a deadline, a marshal transformer's failure,
// results over MaxMessageSize), so it may put metadata on every such reply.
// An error reply that is over the limits once transformed is sent as the
// node encoded it, without metadata.
//
// The replies to calls the node refuses before dispatching them do not
// pass Outgoing, and carry no metadata: a call Incoming refused
// (ErrRejected), an unknown method or object (ErrUnknownMethod,
// ErrReleased), a reference the caller was not sent (ErrBadRef), a type
// without a marshal transformer (ErrNoTransformer), too many calls or too
// much memory held (ErrOverloaded), the node shutting down
// (ErrShuttingDown), and the errors of relays. So do a reply that replaces
// one Outgoing refused (ErrRejected), and one that replaces a reply over
// the caller's share of the node's memory (ErrOverloaded). A proxy's
// transformer that checks the metadata of replies must let these through
// (Message.Error is set on them). See Transformer for what its errors do.
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
			return nil, exported, c.encodeFailure(err)
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

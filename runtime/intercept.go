package runtime

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

// An OutgoingCall describes a call this node makes, as client interceptors
// and observers see it. The machinery fills Routed, RequestBytes,
// ReplyBytes, ReplyMetadata and Duration as the call proceeds: an
// interceptor reads them after its next function returns, an observer
// (CallObserver) when it is told of the call.
type OutgoingCall struct {
	// Service and Method name the method called.
	Service *codegen.ServiceDesc
	Method  *codegen.MethodDesc
	// Target is the node called.
	Target NodeID
	// Metadata travels with the call, outside its encoded arguments. An
	// interceptor may add entries before calling next (trace context,
	// authentication tokens); message transformers see them too.
	Metadata Metadata
	// Routed reports that the call was handed to a neighbour to relay,
	// rather than sent to Target over a direct connection.
	Routed bool
	// RequestBytes and ReplyBytes are the sizes of the call's message and
	// of its reply (envelope and body), 0 when none was sent or received.
	RequestBytes, ReplyBytes int
	// ReplyMetadata is the metadata that came with the reply, results or
	// error alike: what the server's node put on it (its message
	// transformer, see Node.SetInterceptor), as the proxy's own
	// transformer, if any, left it. It is nil when no reply came, and for
	// the replies that carry none (see Node.SetInterceptor). The call's
	// Metadata does not come back: a reply carries metadata of its own.
	ReplyMetadata Metadata
	// Duration is the time from the start of the call proper (when the
	// innermost next is called, before the arguments are encoded) to the
	// arrival of its reply on the connection (before the results are
	// decoded), or to its failure when no reply came; filled once the
	// innermost next returns. The node reads the clock once at the start;
	// the reply's arrival is the reading the connection takes of every
	// frame it receives. An interceptor that times the call reads Duration
	// rather than the clock, which costs tens of nanoseconds a reading on
	// some virtual machines.
	Duration time.Duration

	started int64 // the node's monitor clock (inlineMonitor.now) at the start
	rec     *call // the call's record, held by the outgoing that holds this
}

// A ClientInterceptor wraps every call this node makes to another node
// (through generated proxies, plain or cluster ones; a cluster proxy's call
// to the member it runs on is a local call, which no interceptor sees). It
// calls next to proceed, at most once, and
// returns its error or another; it may derive the context it passes on.
// The error is the call's outcome, machinery failures included (see
// ErrorKind). call and its Metadata are valid until the interceptor
// returns: they are reused for later calls. The reply's metadata, which
// the server's message transformer puts on it, is in call.ReplyMetadata
// once next returns; the encoded messages themselves only message
// transformers see (see Transformer).
type ClientInterceptor func(ctx context.Context, call *OutgoingCall, next func(ctx context.Context) error) error

// An IncomingCall describes a call this node serves, as server
// interceptors and observers see it. ReplyBytes is filled once the handler
// has replied.
type IncomingCall struct {
	// Service and Method name the method called.
	Service *codegen.ServiceDesc
	Method  *codegen.MethodDesc
	// Caller is the node that made the call (its origin, not the last hop).
	Caller NodeID
	// Hops is how many connections the call crossed: 1 for a neighbour.
	Hops int
	// Metadata is the metadata that came with the call.
	Metadata Metadata
	// RequestBytes and ReplyBytes are the sizes of the call's encoded
	// arguments and results.
	RequestBytes, ReplyBytes int
	// Duration is the time from the start of the call's serving (before
	// its arguments are decoded) to the return of its handler, filled once
	// the innermost next returns (0 if the call was refused). The node
	// reads the clock there anyway: an interceptor that times the call
	// reads Duration rather than the clock, which costs tens of
	// nanoseconds a reading on some virtual machines.
	Duration time.Duration
}

// A ServerInterceptor wraps the handler of every call this node serves,
// from the decoding of its arguments to its results. ctx is the call's
// context (its deadline, cancellation and CallInfo); the interceptor may
// derive the context it passes to next, which the implementation then
// receives. It calls next at most once; the error it returns is the call's
// outcome (returning an error without calling next refuses the call). A
// panic of the implementation reaches it as an error for which
// errors.Is(err, ErrRemotePanic) holds. call is valid until the
// interceptor returns.
//
// Calls refused before dispatch (unknown method, refused by the node's
// message transformer, no marshal transformer, overloaded, node shutting
// down) do not reach server interceptors, nor do a cluster proxy's local
// calls to the member it runs on.
type ServerInterceptor func(ctx context.Context, call *IncomingCall, next func(ctx context.Context) error) error

// A RelayedCall describes a call this node relays between two others, as
// relay interceptors see it.
type RelayedCall struct {
	// From is the neighbour the call came from, To the one it goes on to.
	From, To NodeID
	// Source and Destination are the call's origin and final target.
	Source, Destination NodeID
	// Hops is how many connections the call had crossed on arrival.
	Hops int
	// Metadata is the call's metadata. An interceptor may change it (a
	// trace context naming the relay's span); the body is never decoded.
	Metadata Metadata
	// Bytes is the size of the call's message.
	Bytes int
}

// A RelayInterceptor sees every call this node relays, before it is sent on.
// It returns a function called once with the outcome of the relaying (nil
// when the reply was forwarded back, even if it carries an error), or nil.
type RelayInterceptor func(call *RelayedCall) (done func(err error))

// interceptors is an immutable set of chained interceptors, and of the
// observers told of the calls.
type interceptors struct {
	client    []ClientInterceptor
	server    []ServerInterceptor
	relay     []RelayInterceptor
	observers []CallObserver
	starters  []CallStarter // parallel to observers (nil where one is not), or nil
}

// Intercept adds interceptors to the node's chains; each applies to the
// calls that start after. Client and server interceptors run in the order
// added, the first added outermost. Nil ones are ignored. A node without
// interceptors pays nothing for them.
//
// An interceptor is for what changes or refuses calls (authentication,
// retries, deadlines). What only measures calls is cheaper as a
// CallObserver, and what passes a context on (a tracer) as a CallStarter:
// see Observe. Both run inside the interceptors.
func (n *Node) Intercept(client ClientInterceptor, server ServerInterceptor, relay RelayInterceptor) {
	n.regMu.Lock()
	defer n.regMu.Unlock()
	next := &interceptors{}
	if old := n.icept.Load(); old != nil {
		*next = *old
		next.client = append([]ClientInterceptor(nil), old.client...)
		next.server = append([]ServerInterceptor(nil), old.server...)
		next.relay = append([]RelayInterceptor(nil), old.relay...)
	}
	if client != nil {
		next.client = append(next.client, client)
	}
	if server != nil {
		next.server = append(next.server, server)
	}
	if relay != nil {
		next.relay = append(next.relay, relay)
	}
	n.icept.Store(next)
}

// outgoing is a call on its way through the client interceptors, or
// watched by observers. It is pooled in its node (Node.outgoings), with its
// next function bound once, so that a chain costs no allocation per call,
// and it holds the call's record (rec), which the call then takes instead
// of one from the node's pool of call records: one pool for two.
type outgoing struct {
	OutgoingCall
	rec           call
	c             *Client
	chain         []ClientInterceptor
	i             int // the next interceptor to run
	observers     []CallObserver
	starters      []CallStarter
	starts        // what the starters returned
	args, results any
	next          func(context.Context) error // o.proceed
}

// newOutgoing returns an outgoing from the node's pool. The pool is the
// node's, as its pool of call records is (see newCall): the record's
// channel belongs to the node's testing/synctest bubble, if any.
func (n *Node) newOutgoing(c *Client, m *codegen.MethodDesc) *outgoing {
	o, ok := n.outgoings.Get().(*outgoing)
	if !ok {
		o = new(outgoing)
		o.next = o.proceed
		o.rec = call{done: make(chan struct{}, 1), held: true}
	}
	o.OutgoingCall = OutgoingCall{Service: c.svc, Method: m, Target: c.target, Metadata: o.Metadata[:0], rec: &o.rec}
	return o
}

// callIntercepted runs a call through the client interceptors of ic.
func (c *Client) callIntercepted(ctx context.Context, ic *interceptors, m *codegen.MethodDesc, args, results any) error {
	o := c.node.newOutgoing(c, m)
	o.c, o.chain, o.i, o.observers, o.starters, o.args, o.results = c, ic.client, 0, ic.observers, ic.starters, args, results
	err := o.proceed(ctx)
	o.release()
	return err
}

// release clears o and returns it to the pool.
func (o *outgoing) release() {
	n := o.c.node
	clear(o.Metadata)
	clear(o.ctxs)
	o.OutgoingCall = OutgoingCall{Metadata: o.Metadata[:0]}
	o.c, o.chain, o.observers, o.starters, o.args, o.results = nil, nil, nil, nil, nil, nil
	n.outgoings.Put(o)
}

// proceed runs the next interceptor, or the call itself after the last.
func (o *outgoing) proceed(ctx context.Context) error {
	i := o.i
	o.i++
	switch {
	case i < len(o.chain):
		return o.chain[i](ctx, &o.OutgoingCall, o.next)
	case i == len(o.chain):
		return o.callTimed(ctx)
	}
	return o.c.notSent(o.Method, errors.New("a client interceptor called next twice"))
}

// incoming is a served call on its way through the server interceptors, or
// watched by observers; pooled like outgoing.
type incoming struct {
	IncomingCall
	sc        *serverCall
	chain     []ServerInterceptor
	i         int
	observers []CallObserver
	starters  []CallStarter
	starts                                // what the starters returned
	next      func(context.Context) error // in.proceed
}

var incomingPool = sync.Pool{New: func() any {
	in := new(incoming)
	in.next = in.proceed
	return in
}}

// invokeIntercepted runs a served call's handler through the server
// interceptors of ic; the implementation's panic is recovered into an error
// inside the chain, so that interceptors see it. An interceptor's panic is
// recovered by the caller, invoke (in is then left to the collector).
func (sc *serverCall) invokeIntercepted(ic *interceptors) error {
	in := incomingPool.Get().(*incoming)
	in.IncomingCall = IncomingCall{Service: sc.entry.svc, Method: sc.entry.method, Caller: sc.caller, Hops: sc.hops, Metadata: sc.metadata, RequestBytes: len(sc.body)}
	in.sc, in.chain, in.i, in.observers, in.starters = sc, ic.server, 0, ic.observers, ic.starters
	err := in.proceed(&sc.ctx)
	in.release()
	return err
}

// release clears in and returns it to the pool.
func (in *incoming) release() {
	clear(in.ctxs)
	in.IncomingCall, in.sc, in.chain, in.observers, in.starters = IncomingCall{}, nil, nil, nil, nil
	incomingPool.Put(in)
}

// proceed runs the next interceptor, or the handler after the last.
func (in *incoming) proceed(ctx context.Context) error {
	i := in.i
	in.i++
	switch {
	case i < len(in.chain):
		return in.chain[i](ctx, &in.IncomingCall, in.next)
	case i == len(in.chain):
		return in.handle(ctx)
	}
	return errors.New("trellis: a server interceptor called next twice")
}

// Is makes a recovered panic match ErrRemotePanic, for server interceptors.
func (e panicError) Is(target error) bool { return target == ErrRemotePanic }

// Kinds of call outcome reported by ErrorKind.
const (
	KindOK              = "ok"
	KindApplication     = "application" // an error returned by the implementation
	KindUnreachable     = "unreachable"
	KindNoRoute         = "no_route"
	KindCanceled        = "canceled"
	KindDeadline        = "deadline_exceeded"
	KindRemotePanic     = "remote_panic"
	KindProtocol        = "protocol"
	KindUnknownMethod   = "unknown_method"
	KindReleased        = "released"
	KindClosed          = "closed"
	KindShuttingDown    = "shutting_down"
	KindOverloaded      = "overloaded"
	KindNoTransformer   = "no_transformer"
	KindTooLarge        = "too_large"        // ErrTooLarge
	KindRejected        = "rejected"         // ErrRejected
	KindTransformFailed = "transform_failed" // ErrTransformFailed
	KindOther           = "other"
)

// ErrorKind classifies the outcome of a call, as client and server
// interceptors and observers see it, into one of a small fixed set of kinds
// (KindOK for nil): suitable as a metric label.
func ErrorKind(err error) string {
	switch {
	case err == nil:
		return KindOK
	case errors.Is(err, ErrRemotePanic):
		return KindRemotePanic
	case errors.Is(err, ErrUnreachable):
		return KindUnreachable
	case errors.Is(err, ErrNoRoute):
		return KindNoRoute
	case errors.Is(err, context.DeadlineExceeded):
		return KindDeadline
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, ErrProtocol):
		return KindProtocol
	case errors.Is(err, ErrUnknownMethod):
		return KindUnknownMethod
	case errors.Is(err, ErrReleased):
		return KindReleased
	case errors.Is(err, ErrClosed):
		return KindClosed
	case errors.Is(err, ErrShuttingDown):
		return KindShuttingDown
	case errors.Is(err, ErrOverloaded):
		return KindOverloaded
	case errors.Is(err, ErrNoTransformer):
		return KindNoTransformer
	case errors.Is(err, ErrTooLarge):
		return KindTooLarge
	case errors.Is(err, ErrRejected):
		// Before the application's: the transformer's error may be a
		// registered one.
		return KindRejected
	case errors.Is(err, ErrTransformFailed):
		return KindTransformFailed
	}
	var re *RemoteError
	var ce *CallError
	if errors.As(err, &re) || !errors.As(err, &ce) {
		// On the server, an implementation's error is any error but the
		// machinery's.
		return KindApplication
	}
	return KindOther
}

// relayIntercepted runs the relay interceptors on a call relayed from p to q
// and encodes its envelope again for the next hop (one hop less, the
// metadata as the interceptors left it) before the body, which is copied
// without being decoded. It returns the message and the function that ends
// the interceptors' view of the relaying.
func (n *Node) relayIntercepted(chain []RelayInterceptor, p, q *peer, req *request, payload []byte) (*transport.Buffer, func(error)) {
	rc := &RelayedCall{From: p.id, To: q.id, Source: req.src, Destination: req.dst, Hops: DefaultMaxHops - int(req.ttl) + 1, Metadata: req.metadata, Bytes: len(payload)}
	var dones []func(error)
	for _, h := range chain {
		if d := h(rc); d != nil {
			dones = append(dones, d)
		}
	}
	if err := validMetadata(rc.Metadata); err != nil {
		n.log.Warn("trellis: relay interceptor left invalid metadata; forwarding the call's own", "err", err)
		rc.Metadata = req.metadata
	}
	next := *req
	next.ttl--
	next.metadata = rc.Metadata
	buf := transport.GetBuffer()
	buf.Write(appendRequest(buf.AvailableBuffer(), &next))
	buf.Write(req.body)
	var done func(error)
	if len(dones) > 0 {
		done = func(err error) {
			for i := len(dones) - 1; i >= 0; i-- {
				dones[i](err)
			}
		}
	}
	return buf, done
}

package runtime

import (
	"context"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
)

// A CallObserver is told of every call this node makes and serves once the
// call has ended, with what the node measured of it: its sizes, its
// duration, whether it was routed, its outcome. Unlike an interceptor it
// does not wrap the call and cannot change it: the node calls it directly,
// with no chain of frames to run through, so watching calls this way costs
// less than an interceptor that only watches (package metrics is an
// observer).
//
// An observer sees the calls as the machinery made and served them:
// CallMade is told of every call made whose innermost client interceptor
// called next (every call made, when the node has no client interceptors),
// with its final metadata; CallServed of the same calls as server
// interceptors, from inside them, once the handler has returned. Its methods
// run on the goroutine of the call, which waits for them: they should be
// quick and must not block. A panic in CallServed fails the call, as the
// implementation's would (its caller gets ErrRemotePanic); one in CallMade
// reaches the code that made the call. call and its Metadata are valid
// until they return: they are reused for later calls.
type CallObserver interface {
	// CallMade is told of a call this node made, once it has ended. ctx is
	// the context the call was made with (as the innermost client
	// interceptor passed it on); err is the call's outcome, machinery
	// failures included (see ErrorKind).
	CallMade(ctx context.Context, call *OutgoingCall, err error)
	// CallServed is told of a call this node served, once its handler has
	// returned, before the reply is sent. ctx is the context the
	// implementation received; err is the handler's outcome (a panic of the
	// implementation is an error for which errors.Is(err, ErrRemotePanic)
	// holds).
	CallServed(ctx context.Context, call *IncomingCall, err error)
}

// Observe adds an observer of the calls this node makes and serves, from
// the calls that start after. Observers are told in the order added. A nil
// one is ignored. A node without observers pays nothing for them.
func (n *Node) Observe(o CallObserver) {
	if o == nil {
		return
	}
	n.regMu.Lock()
	defer n.regMu.Unlock()
	next := &interceptors{}
	if old := n.icept.Load(); old != nil {
		*next = *old
	}
	next.observers = append(append([]CallObserver(nil), next.observers...), o)
	n.icept.Store(next)
}

// callObserved makes a call that observers watch and no client interceptor
// wraps.
func (c *Client) callObserved(ctx context.Context, observers []CallObserver, m *codegen.MethodDesc, args, results any) error {
	o := outgoingPool.Get().(*outgoing)
	o.OutgoingCall = OutgoingCall{Service: c.svc, Method: m, Target: c.target, Metadata: o.Metadata[:0]}
	o.c, o.observers, o.args, o.results = c, observers, args, results
	err := o.callTimed(ctx)
	o.release()
	return err
}

// callTimed makes the call proper, times it and tells the observers.
func (o *outgoing) callTimed(ctx context.Context) error {
	clock := o.c.node.inline
	o.started = clock.now()
	err := o.c.call(ctx, o.Method, o.args, o.results, &o.OutgoingCall)
	if o.ReplyBytes == 0 { // no reply timed the call (peer.complete)
		o.Duration = time.Duration(clock.now() - o.started)
	}
	for _, ob := range o.observers {
		ob.CallMade(ctx, &o.OutgoingCall, err)
	}
	return err
}

// invokeObserved runs a served call's handler, which observers watch and no
// server interceptor wraps. A panic is recovered by the caller (invoke),
// after the observers have been told.
func (sc *serverCall) invokeObserved(observers []CallObserver) error {
	in := incomingPool.Get().(*incoming)
	in.IncomingCall = IncomingCall{Service: sc.entry.svc, Method: sc.entry.method, Caller: sc.caller, Hops: sc.hops, Metadata: sc.metadata, RequestBytes: len(sc.body)}
	in.sc, in.observers = sc, observers
	err := in.handle(&sc.ctx)
	in.release()
	return err
}

// handle runs the handler, times it and tells the observers.
func (in *incoming) handle(ctx context.Context) error {
	sc := in.sc
	err := sc.invokeHandler(ctx)
	sc.ended = sc.node.inline.now()
	in.Duration = time.Duration(sc.ended - sc.started)
	if sc.reply != nil {
		in.ReplyBytes = sc.reply.Len() - 1 // less the envelope's flags
	}
	for _, ob := range in.observers {
		ob.CallServed(ctx, &in.IncomingCall, err)
	}
	return err
}

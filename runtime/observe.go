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
// An observer sees the calls as the machinery made and served them, from
// inside the interceptors: CallMade is told of every call made whose
// innermost client interceptor called next (every call made, when the node
// has no client interceptors), with its final metadata; CallServed of every
// call served whose innermost server interceptor called next (every call
// dispatched to a handler, when the node has none), once the handler has
// returned. A call an interceptor refuses without calling next is not
// told, and an error an interceptor puts in place of the call's is not
// seen.
//
// Observers are told of a call's end in the reverse of the order they were
// added (the last one started ends first), on the goroutine of the call,
// which waits for them: they should be quick and must not block. A panic
// in one skips those not yet told; in CallServed it fails the call, as the
// implementation's would (its caller gets ErrRemotePanic); in CallMade it
// reaches the code that made the call. call and its Metadata are valid
// until they return: they are reused for later calls.
type CallObserver interface {
	// CallMade is told of a call this node made, once it has ended. ctx is
	// the context the call was made with (as the innermost client
	// interceptor passed it on, and the starters derived it), or, for a
	// CallStarter, the one its StartCall returned; err is the call's
	// outcome, machinery failures included (see ErrorKind).
	CallMade(ctx context.Context, call *OutgoingCall, err error)
	// CallServed is told of a call this node served, once its handler has
	// returned, before the reply is sent. ctx is the context the
	// implementation received or, for a CallStarter, the one its
	// StartServing returned; err is the handler's outcome (a panic of the
	// implementation is an error for which errors.Is(err, ErrRemotePanic)
	// holds).
	CallServed(ctx context.Context, call *IncomingCall, err error)
}

// A CallStarter is a CallObserver that is also told of each call before
// it proceeds, and may give the call the context it proceeds with and add
// metadata to it: what a tracer needs to start a span and pass its context
// on. Unlike an interceptor, it may choose, call by call, not to be told of
// the call's end, and it costs a call it passes over no more than a method
// call: a tracer that records one call in a hundred pays almost nothing for
// the others (package tracing is a starter).
//
// The node calls StartCall and StartServing where it would call the
// innermost interceptor's next: after the client interceptors, before the
// call's arguments are encoded and its Duration is timed; after the server
// interceptors, before the handler runs.
type CallStarter interface {
	CallObserver
	// StartCall is told of a call this node makes, before it is sent. It
	// returns the context to make the call with (ctx itself, or one derived
	// from it; nil stands for ctx), which CallMade later receives, and
	// whether CallMade is to be told of this call. It may add entries to
	// call.Metadata.
	StartCall(ctx context.Context, call *OutgoingCall) (context.Context, bool)
	// StartServing is told of a call this node serves, before its handler
	// runs. It returns the context the implementation is to receive (ctx
	// itself, or one derived from it; nil stands for ctx), which CallServed
	// later receives, and whether CallServed is to be told of this call.
	StartServing(ctx context.Context, call *IncomingCall) (context.Context, bool)
}

// maxObservers is how many observers a node tells of its calls.
const maxObservers = 64

// Observe adds an observer of the calls this node makes and serves, from
// the calls that start after. Starters are told of a call's start in the
// order they were added, and observers of its end in the reverse order. A
// nil one is ignored, and so is any beyond the 64th, with an error logged.
// A node without observers pays nothing for them.
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
	if len(next.observers) == maxObservers {
		n.log.Error("trellis: Observe: the node already has the most observers it tells; this one is ignored", "observers", maxObservers)
		return
	}
	next.observers = append(append([]CallObserver(nil), next.observers...), o)
	// starters parallels observers, if any of them is a CallStarter.
	next.starters = nil
	for i, ob := range next.observers {
		if st, ok := ob.(CallStarter); ok {
			if next.starters == nil {
				next.starters = make([]CallStarter, len(next.observers))
			}
			next.starters[i] = st
		}
	}
	n.icept.Store(next)
}

// callObserved makes a call that observers watch and no client interceptor
// wraps.
func (c *Client) callObserved(ctx context.Context, ic *interceptors, m *codegen.MethodDesc, args, results any) error {
	o := c.node.newOutgoing(c, m)
	o.c, o.observers, o.starters, o.args, o.results = c, ic.observers, ic.starters, args, results
	err := o.callTimed(ctx)
	o.release()
	return err
}

// callTimed starts the call with the starters, makes the call proper, times
// it and tells the observers.
func (o *outgoing) callTimed(ctx context.Context) error {
	ctx = startWith(&o.starts, ctx, o.starters, &o.OutgoingCall, CallStarter.StartCall)
	clock := o.c.node.inline
	o.started = clock.now()
	err := o.c.call(ctx, o.Method, o.args, o.results, &o.OutgoingCall)
	if o.ReplyBytes == 0 { // no reply timed the call (peer.complete)
		o.Duration = time.Duration(clock.now() - o.started)
	}
	for i := len(o.observers) - 1; i >= 0; i-- { // the last started ends first
		if o.told(i) {
			o.observers[i].CallMade(o.context(ctx, o.starters, i), &o.OutgoingCall, err)
		}
	}
	return err
}

// starts is what the starters of a call returned: the context each gave
// it, and which observers are not to be told of its end.
type starts struct {
	ctxs   []context.Context // parallel to the starters
	untold uint64            // bit i: observer i is not to be told
}

// startWith runs the starters (parallel to the observers, nil where one is
// not a starter, or nil if none is) on call, in order, with start
// (CallStarter.StartCall or StartServing), notes what they returned in s,
// and returns the context the call proceeds with.
func startWith[C any](s *starts, ctx context.Context, starters []CallStarter, call *C, start func(CallStarter, context.Context, *C) (context.Context, bool)) context.Context {
	s.untold = 0
	if starters == nil {
		return ctx
	}
	if cap(s.ctxs) < len(starters) {
		s.ctxs = make([]context.Context, len(starters))
	}
	s.ctxs = s.ctxs[:len(starters)]
	for i, st := range starters {
		if st == nil {
			continue
		}
		derived, tell := start(st, ctx, call)
		if derived != nil {
			ctx = derived
		}
		s.ctxs[i] = ctx
		if !tell {
			s.untold |= 1 << i
		}
	}
	return ctx
}

// told reports whether observer i is to be told of the call's end.
func (s *starts) told(i int) bool { return s.untold&(1<<i) == 0 }

// context returns the context observer i is told the call's end with: the
// one its start returned, if it is a starter, or else ctx, the one the
// call proceeded with.
func (s *starts) context(ctx context.Context, starters []CallStarter, i int) context.Context {
	if starters != nil && starters[i] != nil {
		return s.ctxs[i]
	}
	return ctx
}

// invokeObserved runs a served call's handler, which observers watch and no
// server interceptor wraps. A panic is recovered by the caller (invoke),
// after the observers have been told.
func (sc *serverCall) invokeObserved(ic *interceptors) error {
	in := incomingPool.Get().(*incoming)
	in.IncomingCall = IncomingCall{Service: sc.entry.svc, Method: sc.entry.method, Caller: sc.caller, Hops: sc.hops, Metadata: sc.metadata, RequestBytes: len(sc.body)}
	in.sc, in.observers, in.starters = sc, ic.observers, ic.starters
	err := in.handle(&sc.ctx)
	in.release()
	return err
}

// handle starts the call with the starters, runs the handler, times it and
// tells the observers.
func (in *incoming) handle(ctx context.Context) error {
	ctx = startWith(&in.starts, ctx, in.starters, &in.IncomingCall, CallStarter.StartServing)
	sc := in.sc
	err := sc.invokeHandler(ctx)
	sc.ended = sc.node.inline.now()
	in.Duration = time.Duration(sc.ended - sc.started)
	if sc.reply != nil {
		in.ReplyBytes = sc.reply.Len() - 1 // less the envelope's flags
	}
	for i := len(in.observers) - 1; i >= 0; i-- { // the last started ends first
		if in.told(i) {
			in.observers[i].CallServed(in.context(ctx, in.starters, i), &in.IncomingCall, err)
		}
	}
	return err
}

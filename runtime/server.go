package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

// serviceTable is an immutable snapshot of the registered methods, replaced
// as a whole by Register so that dispatch reads it without locking.
type serviceTable struct {
	methods  map[uint64]*methodEntry
	services map[string]*codegen.ServiceDesc
}

type methodEntry struct {
	svc    *codegen.ServiceDesc
	method *codegen.MethodDesc
	impl   any

	// aside counts down the calls of this method to serve on a goroutine
	// of their own rather than on the connection's reader: one of its
	// calls outlasted the reader's budget (see serveInline).
	aside atomic.Int32
}

// Register serves impl as service svc on the node. Generated RegisterFoo
// functions call it with a value of the service's interface type.
func (n *Node) Register(svc *codegen.ServiceDesc, impl any) error {
	if svc == nil || impl == nil {
		return errors.New("trellis: Register: nil service description or implementation")
	}
	n.regMu.Lock()
	defer n.regMu.Unlock()
	old := n.services.Load()
	if _, dup := old.services[svc.Name]; dup {
		return fmt.Errorf("trellis: Register: service %s is already registered on node %s", svc.Name, n.cfg.Name)
	}
	t := &serviceTable{
		methods:  maps.Clone(old.methods),
		services: maps.Clone(old.services),
	}
	if t.methods == nil {
		t.methods = make(map[uint64]*methodEntry)
		t.services = make(map[string]*codegen.ServiceDesc)
	}
	for _, m := range svc.Methods {
		if m == nil || m.Handler == nil {
			return fmt.Errorf("trellis: Register: service %s has a method without a handler", svc.Name)
		}
		if prev, clash := t.methods[m.ID]; clash {
			return fmt.Errorf("trellis: Register: method %s has the ID of %s", methodName(svc, m), methodName(prev.svc, prev.method))
		}
		t.methods[m.ID] = &methodEntry{svc: svc, method: m, impl: impl}
	}
	t.services[svc.Name] = svc
	n.setServices(t)
	return nil
}

// A serverCall is a call being served: it implements codegen.ServerCall,
// for generated handlers, and is valid until the handler returns.
type serverCall struct {
	ctx      callCtx
	node     *Node
	peer     *peer
	id       uint64
	entry    *methodEntry
	caller   NodeID // the origin of the call (not the last hop)
	hops     int    // connections crossed
	metadata Metadata
	body     []byte             // the encoded arguments, in bodyBuf or in the message taken
	bodyBuf  *transport.Buffer  // a copy of the arguments (small messages)
	message  *transport.Payload // the received message itself (large ones)
	reply    *transport.Buffer  // the encoded results, once Reply is called
	charged  int                // bytes of arguments charged to the node's budget
	batched  bool               // more calls wait behind this one: leave the reply to the writer
	// started and ended are the node's monitor clock (inlineMonitor.now)
	// when the call's serving started and, with server interceptors or
	// observers, when its handler returned (0 until then): the readings
	// the monitor takes anyway, shared with them (IncomingCall.Duration).
	started, ended int64
}

// Decode implements codegen.ServerCall: it decodes the call's arguments
// into v, a pointer to the generated arguments struct.
func (sc *serverCall) Decode(v any) error {
	if err := sc.node.decode(sc.body, v, sc.caller); err != nil {
		return &decodeError{err}
	}
	return nil
}

// CallInfo describes the call being served.
type CallInfo struct {
	// Caller is the node that made the call (its origin, not the last hop).
	Caller NodeID
	// Hops is how many connections the call crossed: 1 for a neighbour.
	Hops int
	// Metadata is the metadata that came with the call.
	Metadata Metadata
}

type callInfoKey struct{}

// CallInfoFrom returns the description of the call whose context is ctx
// (the context a generated handler passes to the implementation).
func CallInfoFrom(ctx context.Context) (CallInfo, bool) {
	c, ok := ctx.Value(callInfoKey{}).(*callCtx)
	if !ok || c.call == nil {
		return CallInfo{}, false
	}
	return CallInfo{Caller: c.call.caller, Hops: c.call.hops, Metadata: c.call.metadata}, true
}

// decodeError marks arguments that could not be decoded.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return "decoding arguments: " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// serveRequest serves a request received from p. It runs on the
// connection's reader goroutine: it parses the envelope, keeps the body and
// serves the call there (see serveInline).
func (n *Node) serveRequest(p *peer, id uint64, payload []byte) error {
	var req request
	if err := parseRequest(payload, &req); err != nil {
		return &transport.ProtocolError{Reason: fmt.Sprintf("call %d: %v", id, err)}
	}
	if req.routed && !n.plausibleSource(p, req.src) {
		n.refuseSource(p, &req, id)
		return nil
	}
	if req.routed && req.dst != n.cfg.ID {
		return n.relay(p, id, &req, payload)
	}
	caller := p.id
	if req.routed {
		caller = req.src
	}
	e, code, msg := n.lookup(&req, caller)
	if e == nil {
		n.replyError(p, id, wireError{Code: code, Message: msg})
		return nil
	}
	if len(e.method.Transformed) > 0 {
		if t := n.missingTransformer(e.method); t != nil {
			n.refuseUntransformed(p, id, e, caller, t)
			return nil
		}
	}
	if ip := n.interceptor.Load(); ip != nil {
		msg := Message{Service: e.svc, Method: e.method, Peer: caller, Metadata: req.metadata, Body: req.body}
		if err := (*ip).Incoming(&msg); err != nil {
			// Refused before it was decoded: not run. The reply does not
			// pass the transformer (see Node.SetInterceptor).
			w := n.errors.encode(n.codec, err)
			w.Code = codeRejectedCall
			n.replyError(p, id, w)
			return nil
		}
		req.metadata, req.body = msg.Metadata, msg.Body
	}
	// The arguments and metadata are held until the call ends: the peer's
	// share of the node's budget bounds them.
	held := len(req.body) + req.metadata.size()
	if !p.conn.Charge(held) {
		n.refusedArgs(p, id, held)
		return nil
	}
	sc := &serverCall{node: n, peer: p, id: id, entry: e, metadata: req.metadata, caller: caller, hops: 1, charged: held}
	sc.ctx.call = sc
	if req.routed {
		sc.hops = DefaultMaxHops - int(req.ttl) + 1
	}
	p.mu.Lock()
	switch {
	case p.closed != nil:
		// The connection is gone: the call is not started, and nobody
		// waits for its reply.
		p.mu.Unlock()
		p.conn.Uncharge(sc.charged)
		return nil
	case p.serving[id] != nil || p.relayed[id].to != nil:
		p.mu.Unlock()
		p.conn.Uncharge(sc.charged)
		return &transport.ProtocolError{Reason: fmt.Sprintf("call id %d is already in progress", id)}
	case len(p.serving) >= n.cfg.MaxConcurrentCalls:
		p.mu.Unlock()
		p.conn.Uncharge(sc.charged)
		n.replyError(p, id, wireError{Code: codeOverloaded, Message: fmt.Sprintf("%d calls in progress", len(p.serving))})
		return nil
	}
	if !n.startServing() {
		p.mu.Unlock()
		p.conn.Uncharge(sc.charged)
		n.replyError(p, id, wireError{Code: codeRefused, Message: "node " + n.cfg.Name + " is shutting down"})
		return nil
	}
	p.serving[id] = sc
	p.mu.Unlock()
	// The arguments must outlive the message's buffer, which the reader
	// reuses: a large message is kept as it is, a small one copied.
	if len(req.body) >= keepMessage {
		sc.message = p.conn.TakePayload()
	}
	if sc.message != nil {
		sc.body = req.body
	} else {
		sc.bodyBuf = transport.GetBuffer()
		sc.bodyBuf.Write(req.body)
		sc.body = sc.bodyBuf.Bytes()
	}
	if req.timeout > 0 {
		sc.ctx.setTimeout(req.timeout)
	}
	if sc.entry.aside.Load() > 0 && p.aside.Load() < maxAside {
		p.aside.Add(1)
		go sc.serveAside()
	} else {
		p.serveInline(sc)
	}
	return nil
}

// refuseUntransformed refuses call id, of method e, whose arguments or
// results hold type t, for which this node has no marshal transformer: the
// call is not run, and the caller is told why (ErrNoTransformer). It is a
// mistake of this node's configuration, not of the caller: the connection
// stays up, and the refusal is logged at most once per logEvery and caller.
func (n *Node) refuseUntransformed(p *peer, id uint64, e *methodEntry, caller NodeID, t reflect.Type) {
	method := methodName(e.svc, e.method)
	if ok, held := n.logs.allow("notransformer", caller); ok {
		n.log.Warn("trellis: call refused: no marshal transformer for a type it carries (runtime.RegisterTransformer)",
			"peer", caller, "method", method, "type", t.String(), "earlier_not_logged", held)
	}
	n.replyError(p, id, wireError{Code: codeNoTransformer, Message: noTransformer(n.cfg.Name, t, "node "+n.cfg.Name)})
}

// lookup finds the method a request calls: on a registered service, or on
// an exported object that the caller holds.
func (n *Node) lookup(req *request, caller NodeID) (*methodEntry, uint8, string) {
	if req.object == 0 {
		if e := n.services.Load().methods[req.method]; e != nil {
			return e, 0, ""
		}
		return nil, codeUnknownMethod, fmt.Sprintf("node %s has no method with ID %#x (is the caller generated from the same interface?)", n.cfg.Name, req.method)
	}
	x, exists := n.exported(req.object, caller)
	switch {
	case x == nil && exists:
		n.refusedRef(caller, req.object, "called")
		return nil, codeBadRef, fmt.Sprintf("node %s did not send object %d to node %s", n.cfg.Name, req.object, caller)
	case x == nil:
		return nil, codeUnknownObject, fmt.Sprintf("node %s exports no object %d to node %s (released, or never sent)", n.cfg.Name, req.object, caller)
	}
	for _, m := range x.svc.Methods {
		if m.ID == req.method {
			return &methodEntry{svc: x.svc, method: m, impl: x.obj}, 0, ""
		}
	}
	return nil, codeUnknownMethod, fmt.Sprintf("object %d of node %s (a %s) has no method with ID %#x", req.object, n.cfg.Name, x.svc.Name, req.method)
}

// startServing counts one more call in progress, unless the node is closing.
func (n *Node) startServing() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closing {
		return false
	}
	n.serving.Add(1)
	return true
}

// serve runs a call's handler and sends the reply (see serveInline).
func (sc *serverCall) serve() {
	n, p := sc.node, sc.peer
	defer n.serving.Done()
	err := sc.invoke()
	if sc.message != nil {
		sc.message.Release()
	}
	transport.PutBuffer(sc.bodyBuf)
	p.conn.Uncharge(sc.charged)
	sc.body, sc.bodyBuf, sc.message, sc.charged = nil, nil, nil, 0
	reply := sc.reply
	sc.reply = nil
	if err != nil && reply != nil {
		transport.PutBuffer(reply)
		reply = nil
	}
	cancelled, byCaller := sc.ctx.stop()
	if byCaller {
		transport.PutBuffer(reply)
		p.endServing(sc.id)
		return // the caller gave up and is not listening
	}
	defer p.endServing(sc.id) // after the reply is queued, so a drain waits for it
	if err != nil {
		var w wireError
		var de *decodeError
		var pe panicError
		var ee *encodeError
		var be badRefError
		switch {
		case errors.As(err, &de) && transformFailure(de.err) != nil:
			// A marshal transformer refused an argument: the bytes were
			// well-formed, so only this call fails.
			w = wireError{Code: codeTransformFailed, Message: fmt.Sprintf("node %s: arguments: %v; the call was not run", n.cfg.Name, de.err)}
			de = nil
		case errors.As(err, &ee) && transformFailure(ee.err) != nil:
			w = wireError{Code: codeTransformFailed, Message: fmt.Sprintf("node %s: results: %v", n.cfg.Name, ee.err)}
		case errors.As(err, &pe):
			w = wireError{Code: codePanic, Message: pe.Error()}
		case errors.As(err, &ee):
			w = wireError{Code: codeInternal, Message: ee.Error()}
		case errors.As(err, &de):
			w = wireError{Code: codeBadRequest, Message: de.Error()}
		case errors.As(err, &be):
			w = wireError{Code: codeBadRef, Message: be.Error()}
		case cancelled == context.DeadlineExceeded && errors.Is(err, context.DeadlineExceeded):
			w = wireError{Code: codeDeadline, Message: err.Error()}
		case cancelled == context.Canceled && errors.Is(err, context.Canceled):
			w = wireError{Code: codeShuttingDown, Message: "node " + n.cfg.Name + " is shutting down: " + err.Error()}
		default:
			w = n.errors.encode(n.codec, err)
		}
		sc.replyError(w)
		if de != nil {
			n.log.Info("trellis: closing connection: undecodable arguments", "peer", p.id, "method", methodName(sc.entry.svc, sc.entry.method), "err", de)
			p.closing.Store(true)
			n.closeConn(p.conn)
		}
		return
	}
	if reply == nil { // a method without results
		reply = transport.GetBuffer()
		reply.Write(appendResponse(reply.AvailableBuffer(), false, nil))
	}
	if ip := n.interceptor.Load(); ip != nil {
		sc.replyTransformed(*ip, reply)
		return
	}
	p.mu.Lock()
	alone := len(p.serving) == 1 && !sc.batched // no other call being served or waiting: reply at once
	p.mu.Unlock()
	var err2 error
	if alone {
		err2 = p.sendReplyInline(context.Background(), kindResponse, sc.id, reply)
	} else {
		err2 = p.sendReply(context.Background(), kindResponse, sc.id, reply)
	}
	sc.replyRefused(err2)
}

// replyRefused turns a reply refused as too large, or over the peer's share
// of the node's budget, into an error reply, so that the caller hears of
// it at once, and logs it here.
func (sc *serverCall) replyRefused(err error) {
	if err == nil {
		return
	}
	n, method := sc.node, methodName(sc.entry.svc, sc.entry.method)
	switch {
	case errors.Is(err, ErrTooLarge):
		n.log.Warn("trellis: reply refused: results too large", "peer", sc.caller, "method", method, "err", err)
		// The caller names ErrTooLarge itself: the message says only why.
		why := strings.TrimPrefix(err.Error(), ErrTooLarge.Error()+": ")
		sc.replyError(wireError{Code: codeTooLarge, Message: "results of " + method + ": " + why})
	case errors.Is(err, transport.ErrOverBudget):
		n.replyDropped(sc.peer, sc.id, "results of "+method, err)
	}
}

// replyError sends the error reply of a call that was dispatched to its
// handler, through the node's message transformer if it has one (with
// Message.Error set), so that the transformer sees every reply to the calls
// it let through and may put metadata on it. If the transformer fails, the
// caller gets ErrRejected naming both errors, the failure is logged, and the
// connection stays up.
func (sc *serverCall) replyError(w wireError) {
	n, p := sc.node, sc.peer
	ip := n.interceptor.Load()
	if ip == nil {
		n.replyError(p, sc.id, w)
		return
	}
	body := transport.GetBuffer()
	defer transport.PutBuffer(body)
	if err := n.codec.enc.MarshalToBuffer(&w, &body.Buffer); err != nil {
		n.log.Error("trellis: encoding an error reply", "err", err)
		return
	}
	msg := Message{Service: sc.entry.svc, Method: sc.entry.method, Peer: sc.caller, Reply: true, Error: true, Body: body.Bytes()}
	buf, err := sc.transformReply(*ip, &msg, true)
	if err != nil {
		// The caller hears of both: the transformer's error, with its
		// identity, and the call's own, by its message.
		r := n.errors.encode(n.codec, err)
		r.Code = codeRejectedReply
		r.Message += " (transforming the error reply; the call failed with: " + w.Message + ")"
		n.replyError(p, sc.id, r)
		return
	}
	if err := p.sendReply(context.Background(), kindResponse, sc.id, buf); err != nil {
		// Over MaxMessageSize or the caller's share of the node's memory
		// once transformed: the error as the node encoded it, which
		// replyError shortens if it must.
		n.replyError(p, sc.id, w)
	}
}

// transformReply runs the node's message transformer t on msg, a reply of
// sc, and returns the reply's frame (envelope with the transformer's
// metadata, then its body). A transformer's failure, or metadata over the
// limits, is logged at most once per logEvery and caller, and returned.
func (sc *serverCall) transformReply(t Transformer, msg *Message, isError bool) (*transport.Buffer, error) {
	n := sc.node
	err := t.Outgoing(msg)
	if err == nil {
		if err = validMetadata(msg.Metadata); err != nil {
			err = fmt.Errorf("message transformer: %w", err)
		}
	}
	if err != nil {
		if ok, held := n.logs.allow("reply rejected", sc.caller); ok {
			n.log.Warn("trellis: the node's message transformer failed on a reply; the caller gets ErrRejected",
				"peer", sc.caller, "method", methodName(sc.entry.svc, sc.entry.method), "error_reply", isError, "err", err, "earlier_not_logged", held)
		}
		return nil, err
	}
	buf := transport.GetBuffer()
	buf.Write(appendResponse(buf.AvailableBuffer(), isError, msg.Metadata))
	buf.Write(msg.Body)
	return buf, nil
}

// replyDropped answers call id of p, whose reply (what) the node could not
// hold, with a short error, and logs it at most once per logEvery per peer.
func (n *Node) replyDropped(p *peer, id uint64, what string, err error) {
	if ok, held := n.logs.allow("reply dropped", p.id); ok {
		n.log.Warn("trellis: reply dropped: the peer's unsent replies hold its share of the node's memory (MaxPeerMemory)",
			"peer", p.id, "what", what, "err", err, "dropped before", held)
	}
	n.replyError(p, id, wireError{Code: codeReplyDropped, Message: what + ": " + err.Error()})
}

// refusedArgs answers call id of p, whose arguments of size bytes are over
// the peer's share of the node's budget, and logs it at most once per
// logEvery per peer.
func (n *Node) refusedArgs(p *peer, id uint64, size int) {
	if ok, held := n.logs.allow("arguments refused", p.id); ok {
		n.log.Warn("trellis: call refused: its arguments and metadata exceed the peer's share of the node's memory (MaxPeerMemory)",
			"peer", p.id, "size", size, "refused before", held)
	}
	n.replyError(p, id, wireError{Code: codeOverloaded, Message: fmt.Sprintf("node %s: arguments and metadata of %d bytes exceed this caller's share of its memory budget", n.cfg.Name, size)})
}

// Reply encodes the results of the call (a pointer to the generated results
// struct); generated handlers call it once, last.
func (sc *serverCall) Reply(v any) error {
	if sc.reply != nil {
		return &encodeError{errors.New("replied twice")}
	}
	buf := transport.GetBuffer()
	buf.Write(appendResponse(buf.AvailableBuffer(), false, nil))
	if _, err := sc.node.encode(v, &buf.Buffer, sc.caller); err != nil {
		transport.PutBuffer(buf)
		return &encodeError{err}
	}
	sc.reply = buf
	return nil
}

// keepMessage is the size from which a call's arguments stay in the
// received message rather than being copied out of it.
const keepMessage = 16 << 10

// encodeError marks results that could not be encoded.
type encodeError struct{ err error }

func (e *encodeError) Error() string { return "encoding results: " + e.err.Error() }
func (e *encodeError) Unwrap() error { return e.err }

// replyTransformed sends a reply (envelope without metadata, then the
// encoded results) through the node's message transformer t. If t fails,
// the caller gets ErrRejected (the call ran).
func (sc *serverCall) replyTransformed(t Transformer, reply *transport.Buffer) {
	n, p := sc.node, sc.peer
	defer transport.PutBuffer(reply)
	msg := Message{Service: sc.entry.svc, Method: sc.entry.method, Peer: sc.caller, Reply: true, Body: reply.Bytes()[1:]}
	buf, err := sc.transformReply(t, &msg, false)
	if err != nil {
		w := n.errors.encode(n.codec, err)
		w.Code = codeRejectedReply
		n.replyError(p, sc.id, w)
		return
	}
	sc.replyRefused(p.sendReply(context.Background(), kindResponse, sc.id, buf))
}

// endServing removes a served call from p's table.
func (p *peer) endServing(id uint64) {
	p.mu.Lock()
	delete(p.serving, id)
	p.mu.Unlock()
	p.callEnded()
}

// panicError is a recovered panic.
type panicError struct {
	value any
}

func (e panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// invoke runs the handler, recovering a panic into an error: the
// implementation's, or, with server interceptors or observers (which see
// the implementation's as an error: invokeHandler), theirs.
func (sc *serverCall) invoke() (err error) {
	culprit := "implementation"
	defer func() {
		if v := recover(); v != nil {
			sc.node.log.Error("trellis: "+culprit+" panicked", "method", methodName(sc.entry.svc, sc.entry.method), "panic", v, "stack", string(debug.Stack()))
			err = panicError{v}
		}
	}()
	if ic := sc.node.icept.Load(); ic != nil {
		if len(ic.server) > 0 {
			culprit = "server interceptor or call observer"
			return sc.invokeIntercepted(ic)
		}
		if len(ic.observers) > 0 {
			culprit = "call observer"
			return sc.invokeObserved(ic)
		}
	}
	return sc.entry.method.Handler(&sc.ctx, sc.entry.impl, sc)
}

// invokeHandler runs the handler with ctx, recovering a panic into an error.
func (sc *serverCall) invokeHandler(ctx context.Context) (err error) {
	defer func() {
		if v := recover(); v != nil {
			sc.node.log.Error("trellis: implementation panicked", "method", methodName(sc.entry.svc, sc.entry.method), "panic", v, "stack", string(debug.Stack()))
			err = panicError{v}
		}
	}()
	return sc.entry.method.Handler(ctx, sc.entry.impl, sc)
}

// replyError sends an error reply.
func (n *Node) replyError(p *peer, id uint64, w wireError) {
	buf := transport.GetBuffer()
	buf.Write(appendResponse(buf.AvailableBuffer(), true, nil))
	if err := n.codec.enc.MarshalToBuffer(&w, &buf.Buffer); err != nil {
		transport.PutBuffer(buf)
		n.log.Error("trellis: encoding an error reply", "err", err)
		return
	}
	err := p.sendReply(context.Background(), kindResponse, id, buf)
	if errors.Is(err, transport.ErrOverBudget) {
		// A long error over the peer's budget: the caller still hears of
		// it, with the start of its message (a reply this small is never
		// refused).
		w = wireError{Code: w.Code, Message: w.Message[:min(len(w.Message), maxDroppedMessage)]}
		buf = transport.GetBuffer()
		buf.Write(appendResponse(buf.AvailableBuffer(), true, nil))
		if n.codec.enc.MarshalToBuffer(&w, &buf.Buffer) != nil {
			transport.PutBuffer(buf)
			return
		}
		p.sendReply(context.Background(), kindResponse, id, buf)
	}
}

// maxDroppedMessage is how much of an error reply's message is kept when
// the whole does not fit the peer's budget: the reply then stays under the
// size a reply is always charged without refusal.
const maxDroppedMessage = 1 << 10

// callCtx is the context of a call being served: cancelled by the caller's
// cancel frame, by its deadline, or by the node closing. It is allocated
// with its serverCall, and creates its Done channel only when asked.
type callCtx struct {
	mu       sync.Mutex
	deadline time.Time
	timer    *time.Timer
	done     chan struct{}
	err      error
	byCaller bool        // cancelled by the caller's cancel frame
	call     *serverCall // the call this is the context of
}

// closedChan is the Done channel of a context cancelled before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *callCtx) setTimeout(d time.Duration) {
	c.deadline = time.Now().Add(d)
	c.timer = time.AfterFunc(d, func() { c.cancel(context.DeadlineExceeded, false) })
}

// Deadline implements context.Context.
func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }

// Done implements context.Context.
func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
		}
	}
	return c.done
}

// Err implements context.Context.
func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Value implements context.Context: a call's context carries its CallInfo.
func (c *callCtx) Value(key any) any {
	if key == (callInfoKey{}) {
		return c
	}
	return nil
}

func (c *callCtx) String() string { return "trellis.callContext" }

func (c *callCtx) cancel(err error, byCaller bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err, c.byCaller = err, byCaller
	if c.done == nil {
		c.done = closedChan
	} else {
		close(c.done)
	}
}

// stop ends the context when its handler returns and reports why it was
// cancelled before (nil if it was not), and whether by the caller.
func (c *callCtx) stop() (error, bool) {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err, byCaller := c.err, c.byCaller
	if err == nil {
		c.err = context.Canceled // a context whose call has ended is done
		if c.done != nil {
			close(c.done)
		} else {
			c.done = closedChan
		}
	}
	return err, byCaller
}

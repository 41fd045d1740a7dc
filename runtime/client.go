package runtime

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

// A Client is the handle of a proxy: it sends the calls of one proxy to
// one remote object, a service of a node or an object passed by reference.
// ProxyOf returns it, to see the proxy's target and set its transformer.
type Client struct {
	node   *Node
	target NodeID
	object uint64 // 0: the node's service
	svc    *codegen.ServiceDesc
	opts   proxyOptions

	// A client of an object received by reference is counted in the
	// node's imports until released.
	imported bool
	released atomic.Bool
	cleanup  goruntime.Cleanup

	transformer atomic.Pointer[Transformer]
}

// A ProxyOption configures a proxy at creation.
type ProxyOption func(*proxyOptions)

type proxyOptions struct {
	timeout     time.Duration
	direct      bool
	transformer Transformer
}

// Direct makes the proxy call its target only over a direct connection,
// never routed through other nodes: the control plane uses it to talk to
// neighbours while routes are changing.
func Direct() ProxyOption {
	return func(o *proxyOptions) { o.direct = true }
}

// WithTimeout gives every call of the proxy a timeout, applied when the
// caller's context has no earlier deadline.
func WithTimeout(d time.Duration) ProxyOption {
	return func(o *proxyOptions) { o.timeout = d }
}

// NewProxy returns the proxy of service svc on node target, a value of the
// service's interface whose methods call target; opts configure it. The
// generated NewFooProxy functions call it and return it typed: prefer
// them. NewProxy serves code that holds only a service's description; it
// returns nil if svc is nil or has no NewProxy.
func NewProxy(n *Node, target NodeID, svc *codegen.ServiceDesc, opts ...ProxyOption) any {
	if svc == nil || svc.NewProxy == nil {
		return nil
	}
	return svc.NewProxy(asStub(newClient(n, target, svc, opts...)))
}

// newClient returns a client for service svc on node target.
func newClient(n *Node, target NodeID, svc *codegen.ServiceDesc, opts ...ProxyOption) *Client {
	c := &Client{node: n, target: target, svc: svc}
	for _, o := range opts {
		o(&c.opts)
	}
	if c.opts.transformer != nil {
		c.SetTransformer(c.opts.transformer)
	}
	return c
}

// Target returns the node the client calls.
func (c *Client) Target() NodeID { return c.target }

// Service returns the description of the service the client calls.
func (c *Client) Service() *codegen.ServiceDesc { return c.svc }

// ProxyOf returns the client behind a proxy (one that NewFooProxy or
// NewProxy returned, or a reference received), or nil if x is not one.
func ProxyOf(x any) *Client {
	if p, ok := x.(codegen.Proxy); ok {
		if s, ok := p.TrellisClient().(*stub); ok {
			return (*Client)(s)
		}
	}
	return nil
}

// call is one call awaiting its reply. Calls are pooled: a call is owned by
// whoever removed it from its peer's table (the reader delivering the reply,
// or the caller giving up), and returned to the pool by the caller.
type call struct {
	done    chan struct{} // capacity 1
	results any
	svc     *codegen.ServiceDesc
	method  *codegen.MethodDesc
	target  NodeID
	err     error

	transformer Transformer   // sees the reply, if set
	info        *OutgoingCall // told the reply's size, if set
	// held reports a record held by an outgoing (outgoing.rec), which
	// putCall clears but does not return to the node's pool.
	held bool

	// A relayed call has no caller here: its reply goes back to relayFrom
	// as call relayID.
	relayFrom *peer
	relayID   uint64
}

// newCall returns a call from the node's pool. The pool is the node's, not
// the process's, so that a node running in a testing/synctest bubble only
// ever waits on channels made in that bubble (a bubble's channel must not
// be used from another).
func (n *Node) newCall() *call {
	if cl, ok := n.calls.Get().(*call); ok {
		return cl
	}
	return &call{done: make(chan struct{}, 1)}
}

// putCall returns cl to the node's pool, cleared: a call that comes out of
// the pool again must carry nothing over, above all not the relay fields,
// which would send its reply to another node's relayed call. A record an
// outgoing holds is cleared and stays with it.
func (n *Node) putCall(cl *call) {
	held := cl.held
	*cl = call{done: cl.done, held: held}
	if !held {
		n.calls.Put(cl)
	}
}

// errNilContext fails a call made with a nil context.
var errNilContext = errors.New("trellis: nil context")

// do calls method m with args, decoding the reply into results (see
// codegen.Client.Call).
func (c *Client) do(ctx context.Context, m *codegen.MethodDesc, args, results any) error {
	if ctx == nil {
		return c.notSent(m, errNilContext)
	}

	if ic := c.node.icept.Load(); ic != nil {
		if len(ic.client) > 0 {
			return c.callIntercepted(ctx, ic, m, args, results)
		}
		if len(ic.observers) > 0 {
			return c.callObserved(ctx, ic, m, args, results)
		}
	}
	return c.call(ctx, m, args, results, nil)
}

// call makes a call; oc, if set, describes it to client interceptors.
func (c *Client) call(ctx context.Context, m *codegen.MethodDesc, args, results any, oc *OutgoingCall) error {
	n := c.node
	if c.released.Load() {
		return c.notSent(m, ErrReleased)
	}
	if len(m.Transformed) > 0 {
		if t := n.missingTransformer(m); t != nil {
			return c.notSent(m, fmt.Errorf("%w: %s", ErrNoTransformer, noTransformer(n.cfg.Name, t, "this node")))
		}
	}
	if c.opts.timeout > 0 {
		if d, ok := ctx.Deadline(); !ok || time.Until(d) > c.opts.timeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.opts.timeout)
			defer cancel()
		}
	}
	// A call that finds no route, here or at a relay, waits for one while
	// the router says one may come (see RouteWaiter), and is sent again:
	// it was not sent.
	var waiting time.Time
	for {
		err := c.send(ctx, m, args, results, oc)
		if err == nil || c.opts.direct || !n.waitRoute(ctx, c.target, err, &waiting) {
			return err
		}
	}
}

// send routes and sends one call, and waits for its reply (see call).
func (c *Client) send(ctx context.Context, m *codegen.MethodDesc, args, results any, oc *OutgoingCall) error {
	n := c.node
	if err := ctx.Err(); err != nil {
		return c.notSent(m, ctxErr(err))
	}
	p, routed, err := n.route(c.target, c.opts.direct)
	if err != nil {
		return c.notSent(m, err)
	}
	req := request{object: c.object, method: m.ID}
	if routed {
		req.routed, req.dst, req.src, req.ttl = true, c.target, n.cfg.ID, DefaultMaxHops
	}
	if oc != nil {
		oc.Routed = routed
		if err := validMetadata(oc.Metadata); err != nil {
			return c.notSent(m, fmt.Errorf("client interceptor: %w", err))
		}
		req.metadata = oc.Metadata
	}
	if d, ok := ctx.Deadline(); ok {
		req.timeout = time.Until(d)
		if req.timeout <= 0 {
			return c.notSent(m, ErrDeadlineExceeded)
		}
	}
	var buf *transport.Buffer
	var tf Transformer
	// exported are the references and streams that marshal transformers
	// exported for the call: a call that is not sent takes them back.
	var exported []any
	if tp := c.transformer.Load(); tp != nil {
		tf = *tp
		if buf, exported, err = c.transformOut(tf, &req, m, args); err != nil {
			return c.takeBack(exported, c.notSent(m, err))
		}
	} else {
		buf = transport.GetBuffer()
		buf.Write(appendRequest(buf.AvailableBuffer(), &req))
		if args != nil {
			if exported, err = n.encode(args, &buf.Buffer, c.target); err != nil {
				transport.PutBuffer(buf)
				return c.takeBack(exported, c.notSent(m, c.encodeFailure(err)))
			}
		}
	}

	var cl *call
	if oc != nil && oc.rec != nil {
		cl = oc.rec // the record of the outgoing oc belongs to
	} else {
		cl = n.newCall()
	}
	cl.results, cl.svc, cl.method, cl.target, cl.err, cl.transformer, cl.info = results, c.svc, m, c.target, nil, tf, oc
	if oc != nil {
		oc.RequestBytes = buf.Len()
	}
	id := p.nextCall.Add(1)
	p.mu.Lock()
	if p.closed != nil {
		err := p.closed
		p.mu.Unlock()
		transport.PutBuffer(buf)
		n.putCall(cl)
		return c.takeBack(exported, c.notSent(m, err))
	}
	p.calls[id] = cl
	alone := len(p.calls) == 1 // no other call in flight: write it at once
	p.mu.Unlock()

	send := p.send
	if alone {
		send = p.sendInline
	}
	if err := send(ctx, kindRequest, id, buf); err != nil {
		if errors.Is(err, ErrTooLarge) {
			n.log.Warn("trellis: call refused: arguments too large", "peer", c.target, "method", methodName(c.svc, m), "err", err)
		}
		if p.forget(id) {
			n.putCall(cl)
			return c.takeBack(exported, c.notSent(m, ctxErr(err)))
		}
		// The connection failed and already completed the call.
		<-cl.done
		return c.takeBack(exported, p.finish(cl))
	}
	select {
	case <-cl.done:
		return c.takeBack(exported, p.finish(cl))
	case <-ctx.Done():
		if !p.forget(id) {
			// The reply is being delivered: take it.
			<-cl.done
			return c.takeBack(exported, p.finish(cl))
		}
		n.putCall(cl)
		err := ctx.Err()
		if err != context.DeadlineExceeded || req.timeout == 0 {
			// Tell the server to stop; the connection stays up. (A deadline
			// needs no frame: the server applies the same one.)
			p.send(context.Background(), kindCancel, id, nil)
		}
		return c.callError(m, ctxErr(err))
	}
}

// encodeFailure is the error of a call whose arguments could not be
// encoded: a marshal transformer's failure says so (ErrTransformFailed).
func (c *Client) encodeFailure(err error) error {
	if transformFailure(err) != nil {
		return fmt.Errorf("%w: node %s: arguments: %w", ErrTransformFailed, c.node.cfg.Name, err)
	}
	return fmt.Errorf("encoding arguments: %w", err)
}

func (c *Client) callError(m *codegen.MethodDesc, err error) error {
	return &CallError{Node: c.target, Method: methodName(c.svc, m), Err: err}
}

// takeBack returns err, first taking back the references and streams in
// exported if err says that the call was not sent.
func (c *Client) takeBack(exported []any, err error) error {
	if len(exported) > 0 && NotSent(err) {
		c.unexport(exported...)
	}
	return err
}

// notSent returns the error of a call that never reached the implementation.
func (c *Client) notSent(m *codegen.MethodDesc, err error) error {
	return &CallError{Node: c.target, Method: methodName(c.svc, m), Err: err, notSent: true}
}

// NotSent reports whether err is the error of a call that certainly did not
// reach the remote implementation (it failed before it was sent, or the
// remote node refused it without running it), so nothing it carried was
// received. Generated proxies use it to take back the references and
// streams a failed call exported.
func NotSent(err error) bool {
	var ce *CallError
	return errors.As(err, &ce) && ce.notSent
}

// unexport takes back references and streams (codegen.Ref and
// codegen.StreamRef values, zero ones ignored) that this client exported
// for a call that was not sent: the exporter's counts drop as if the
// holder had released them, and the streams' sources are closed.
func (c *Client) unexport(handles ...any) {
	for _, h := range handles {
		switch h := h.(type) {
		case codegen.Ref:
			if !h.IsZero() && h.Node == c.node.cfg.ID && h.Object != 0 {
				c.node.releaseFrom(c.target, []refCount{{Object: h.Object, Count: 1}})
			}
		case codegen.StreamRef:
			if h.Stream != 0 && h.Node == c.node.cfg.ID {
				c.node.cancelStream(h.Stream)
			}
		}
	}
}

// fail sets the call's error.
func (cl *call) fail(err error) {
	cl.err = &CallError{Node: cl.target, Method: methodName(cl.svc, cl.method), Err: err}
}

// forget removes a call from the table, reporting whether it was there (and
// so is now owned by the caller).
func (p *peer) forget(id uint64) bool {
	p.mu.Lock()
	_, ok := p.calls[id]
	delete(p.calls, id)
	p.mu.Unlock()
	p.callEnded()
	return ok
}

// finish returns a completed call's error and recycles it.
func (p *peer) finish(cl *call) error {
	err := cl.err
	p.node.putCall(cl)
	return err
}

// ctxErr maps a context error to the machinery error.
func ctxErr(err error) error {
	switch err {
	case context.Canceled:
		return ErrCanceled
	case context.DeadlineExceeded:
		return ErrDeadlineExceeded
	}
	return err
}

// complete delivers a reply to the call awaiting it. It runs on the
// connection's reader goroutine and decodes the results in place.
func (p *peer) complete(id uint64, payload []byte) error {
	var resp response
	if err := parseResponse(payload, &resp); err != nil {
		return &transport.ProtocolError{Reason: fmt.Sprintf("reply %d: %v", id, err)}
	}
	p.mu.Lock()
	cl := p.calls[id]
	delete(p.calls, id)
	p.mu.Unlock()
	p.callEnded()
	if cl == nil {
		return nil // the caller gave up
	}
	if cl.relayFrom != nil {
		p.forwardReply(cl, payload)
		return nil
	}
	if cl.info != nil {
		cl.info.ReplyBytes = len(payload)
		// The reply's arrival, as the connection read the clock for it.
		cl.info.Duration = time.Duration(int64(p.conn.Received().Sub(p.node.inline.start)) - cl.info.started)
	}
	var perr error
	if cl.transformer != nil {
		msg := Message{Service: cl.svc, Method: cl.method, Peer: cl.target, Reply: true, Error: resp.isError, Metadata: resp.metadata, Body: resp.body}
		err := cl.transformer.Incoming(&msg)
		if cl.info != nil {
			cl.info.ReplyMetadata = msg.Metadata
		}
		if err != nil {
			cl.fail(err)
			cl.done <- struct{}{}
			return nil
		}
		resp.body = msg.Body
	} else if cl.info != nil {
		cl.info.ReplyMetadata = resp.metadata
	}
	switch {
	case resp.isError:
		var w wireError
		if err := p.node.codec.unmarshal(resp.body, &w); err != nil {
			perr = fmt.Errorf("reply %d: decoding error: %w", id, err)
			cl.fail(fmt.Errorf("%w: %v", ErrProtocol, perr))
		} else if w.Code == codeApp {
			cl.fail(p.node.errors.decode(p.node.codec, &w))
		} else if w.Code == codeRejectedCall || w.Code == codeRejectedReply {
			// The transformer's error, its registered identity kept.
			cl.fail(fmt.Errorf("%w: %w", ErrRejected, p.node.errors.decode(p.node.codec, &w)))
			cl.err.(*CallError).notSent = notRun(w.Code)
		} else {
			cl.fail(machineryError(&w))
			if notRun(w.Code) {
				cl.err.(*CallError).notSent = true
			}
		}
	case cl.results != nil:
		if err := p.node.decode(resp.body, cl.results, cl.target); err != nil {
			if transformFailure(err) != nil {
				// Well-formed results that a marshal transformer refused:
				// only this call fails (it ran).
				cl.fail(fmt.Errorf("%w: node %s: results: %w", ErrTransformFailed, p.node.cfg.Name, err))
				break
			}
			perr = fmt.Errorf("reply %d: decoding results: %w", id, err)
			cl.fail(fmt.Errorf("%w: %v", ErrProtocol, perr))
		}
	case len(resp.body) != 0:
		perr = fmt.Errorf("reply %d: %d bytes of results for a method without results", id, len(resp.body))
		cl.fail(fmt.Errorf("%w: %v", ErrProtocol, perr))
	}
	cl.done <- struct{}{}
	if perr != nil {
		return &transport.ProtocolError{Reason: perr.Error()}
	}
	return nil
}

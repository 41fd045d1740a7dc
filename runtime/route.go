package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trellisrpc/trellis/transport"
)

// A Router tells a node how to reach nodes it has no connection to: the
// neighbour to hand a call for dst to. The topology layer installs one with
// Node.SetRouter; without one, only direct neighbours are reachable.
type Router interface {
	NextHop(dst NodeID) (next NodeID, ok bool)
}

// An AvoidingRouter is a Router that also chooses the next hop of the
// calls this node relays: a relay asks it for the next hop of a call for
// dst that came from neighbour avoid, which must not be avoid (a call sent
// back where it came from would only bounce). A router may be stricter for
// relayed calls than for this node's own (the cluster's router relays only
// to neighbours nearer to dst, so that no call goes round a cycle). When it
// reports none, the relay sends the call straight to dst if it is connected
// to it, and otherwise fails it at once with ErrNoRoute (the call was not
// sent on, so it is safe to send again). Without an AvoidingRouter, a relay
// follows NextHop, and fails a call whose next hop is back where it came
// from; the hop budget bounds what longer detours remain.
type AvoidingRouter interface {
	Router
	NextHopAvoiding(dst, avoid NodeID) (next NodeID, ok bool)
}

// A RouteWaiter is a Router whose missing routes come back by themselves:
// a link being redialled, a topology being repaired. A call that finds no
// route to its target (here: ErrNoRoute, or ErrUnreachable for a next hop
// not connected; or at a relay, which refuses it unsent with ErrNoRoute)
// asks WaitRoute to wait for one, and is routed and sent again while
// WaitRoute reports true; when it reports false, the call fails with the
// error it had. Only calls that were certainly not sent are sent again (see
// NotSent), so no call runs twice. Package cluster's router is one: it
// waits for a member that the membership still counts live, a few cluster
// intervals at most, and not at all for one that has gone.
type RouteWaiter interface {
	Router
	// WaitRoute waits until a route to dst may have appeared, and reports
	// whether to route the call again: false at once when waiting is
	// pointless (dst is gone) or the call has waited, since since, for as
	// long as the router allows; false when ctx, the call's context, is
	// done.
	WaitRoute(ctx context.Context, dst NodeID, since time.Time) bool
}

// A SourceChecker is a Router that also judges where a routed message may
// come from. A routed message names its source, which the node that
// serves it takes as the caller (whose references it may use); a node
// accepts one from a neighbour only if that neighbour is the source, or
// lies on a route the source's messages plausibly take to this node.
// Without a SourceChecker, a node accepts a routed message from a
// neighbour other than its source only if its own route back to the source
// goes through that neighbour (routes are symmetric); without a router,
// only if the source is not a node it is connected to directly.
type SourceChecker interface {
	Router
	// PlausibleSource reports whether a routed message from node src may
	// arrive from neighbour via (never src itself).
	PlausibleSource(src, via NodeID) bool
}

// plausibleSource reports whether a routed message from src may arrive
// from p (see SourceChecker).
func (n *Node) plausibleSource(p *peer, src NodeID) bool {
	if src == p.id {
		return true
	}
	rp := n.router.Load()
	if rp == nil {
		// No routes to judge by (a node outside a topology, behind a relay
		// that has some): a source connected directly would have sent
		// directly; any other may only have come through a relay.
		return n.peer(src) == nil
	}
	if sc, ok := (*rp).(SourceChecker); ok {
		return sc.PlausibleSource(src, p.id)
	}
	next, ok := (*rp).NextHop(src)
	return ok && next == p.id
}

// refuseSource answers a routed call whose source is implausible for the
// link it came on: with ErrBadRef if it names a reference, ErrNoRoute
// otherwise (for an honest caller, whose call took a route this node does
// not know yet, it is a routing failure); it is logged at most once per
// logEvery and neighbour.
func (n *Node) refuseSource(p *peer, req *request, id uint64) {
	n.implausible(p, req.src, "call")
	code := uint8(codeNoRoute)
	if req.object != 0 {
		code = codeBadRef
	}
	n.replyError(p, id, wireError{Code: code, Message: fmt.Sprintf("node %s: a routed call from %s cannot come from %s", n.cfg.Name, req.src, p.id)})
}

// implausible logs, at most once per logEvery and neighbour, a routed
// message whose source is implausible for its link.
func (n *Node) implausible(p *peer, src NodeID, what string) {
	if ok, held := n.logs.allow("source", p.id); ok {
		n.log.Warn("trellis: refused a routed message whose source cannot send through its link", "peer", p.id, "source", src, "message", what, "earlier_not_logged", held)
	}
}

// DefaultMaxHops is the hop budget of a routed call; a call that has used it
// up fails with ErrNoRoute, so a routing loop cannot circulate a call.
const DefaultMaxHops = 16

// SetRouter installs r (nil removes the router).
func (n *Node) SetRouter(r Router) {
	if r == nil {
		n.router.Store(nil)
		return
	}
	n.router.Store(&r)
}

// route returns the connection on which to send a call to dst, and whether
// the call is routed (sent to a next hop rather than to dst). With a router
// installed, calls follow it, so a connection that is not (or no longer) an
// edge carries only calls to its own end; without one, only direct
// connections are used.
func (n *Node) route(dst NodeID, direct bool) (p *peer, routed bool, err error) {
	if direct {
		if p := n.peer(dst); p != nil {
			return p, false, nil
		}
		if n.isClosing() {
			return nil, false, ErrClosed
		}
		return nil, false, fmt.Errorf("%w: no direct connection", ErrUnreachable)
	}
	if rp := n.router.Load(); rp != nil {
		if next, ok := (*rp).NextHop(dst); ok && next != n.cfg.ID {
			if p := n.peer(next); p != nil {
				return p, next != dst, nil
			}
		}
	}
	if p := n.peer(dst); p != nil {
		return p, false, nil
	}
	switch rp := n.router.Load(); {
	case n.isClosing():
		return nil, false, ErrClosed
	case rp == nil:
		return nil, false, ErrUnreachable
	default:
		next, ok := (*rp).NextHop(dst)
		if !ok || next == n.cfg.ID {
			return nil, false, fmt.Errorf("%w: %s", ErrNoRoute, dst)
		}
		return nil, false, fmt.Errorf("%w: next hop %s toward %s is not connected", ErrUnreachable, next, dst)
	}
}

// waitRoute reports whether a call to dst that failed with err (not sent,
// for want of a route here or at a relay) should be routed and sent again,
// once the node's router, if it is a RouteWaiter, has waited for a route to
// appear. since is when the call first failed so, set on the first wait.
func (n *Node) waitRoute(ctx context.Context, dst NodeID, err error, since *time.Time) bool {
	if !NotSent(err) || !errors.Is(err, ErrNoRoute) && !errors.Is(err, ErrUnreachable) || n.isClosing() {
		return false
	}
	rp := n.router.Load()
	if rp == nil {
		return false
	}
	w, ok := (*rp).(RouteWaiter)
	if !ok {
		return false
	}
	if since.IsZero() {
		*since = time.Now()
	}
	return w.WaitRoute(ctx, dst, *since)
}

// relayLink records a call relayed from one connection to another.
type relayLink struct {
	to   *peer
	id   uint64      // the call's id on to
	done func(error) // the relay interceptors' ending, if any
}

// finish tells the relay interceptors how the relaying ended.
func (l relayLink) finish(err error) {
	if l.done != nil {
		l.done(err)
	}
}

// relay forwards a routed request from p, whose destination is another
// node, to the next hop, without decoding its body. The reply comes back
// through complete, which sees the relay link on the forwarded call.
func (n *Node) relay(p *peer, id uint64, req *request, payload []byte) error {
	fail := func(code uint8, msg string) error {
		n.replyError(p, id, wireError{Code: code, Message: fmt.Sprintf("node %s relaying to %s: %s", n.cfg.Name, req.dst, msg)})
		return nil
	}
	if req.ttl == 0 {
		return fail(codeNoRoute, "hop budget used up (routing loop?)")
	}
	q, code, why := n.relayHop(req.dst, p)
	if q == nil {
		return fail(code, why)
	}
	var buf *transport.Buffer
	var done func(error)
	if ic := n.icept.Load(); ic != nil && len(ic.relay) > 0 {
		buf, done = n.relayIntercepted(ic.relay, p, q, req, payload)
	} else {
		buf = nextHopCopy(payload)
	}

	cl := n.newCall()
	cl.relayFrom, cl.relayID = p, id
	qid := q.nextCall.Add(1)
	p.mu.Lock()
	if p.relayed[id].to != nil || p.serving[id] != nil {
		p.mu.Unlock()
		transport.PutBuffer(buf)
		n.putCall(cl)
		if done != nil {
			done(ErrProtocol)
		}
		return &transport.ProtocolError{Reason: fmt.Sprintf("call id %d is already in progress", id)}
	}
	if len(p.relayed) >= n.cfg.MaxConcurrentCalls {
		// Each call relayed holds a record here and on q until its reply
		// comes back: a peer may not have more in progress than it may
		// have served.
		relayed := len(p.relayed)
		p.mu.Unlock()
		transport.PutBuffer(buf)
		n.putCall(cl)
		if done != nil {
			done(ErrOverloaded)
		}
		return fail(codeOverloaded, fmt.Sprintf("%d calls of %s in progress through this node (MaxConcurrentCalls)", relayed, p.id))
	}
	p.relayed[id] = relayLink{to: q, id: qid, done: done}
	p.mu.Unlock()
	q.mu.Lock()
	if q.closed != nil {
		q.mu.Unlock()
		p.forgetRelay(id).finish(ErrUnreachable)
		transport.PutBuffer(buf)
		n.putCall(cl)
		return fail(codeUnreachable, "next hop connection closed")
	}
	q.calls[qid] = cl
	q.mu.Unlock()
	if err := q.send(context.Background(), kindRequest, qid, buf); err != nil && q.forget(qid) {
		p.forgetRelay(id).finish(err)
		n.putCall(cl)
		if errors.Is(err, ErrTooLarge) { // over the next link's cap
			return fail(codeTooLarge, strings.TrimPrefix(err.Error(), ErrTooLarge.Error()+": "))
		}
		return fail(codeUnreachable, err.Error())
	}
	return nil
}

// relayHop returns the connection on which to relay a call for dst that
// came from p; or, if there is none, the error code and the reason to fail
// the call with at once (see AvoidingRouter).
func (n *Node) relayHop(dst NodeID, p *peer) (q *peer, code uint8, why string) {
	back := func() (*peer, uint8, string) {
		return nil, codeNoRoute, fmt.Sprintf("no route other than back to %s, where the call came from", p.id)
	}
	var ar AvoidingRouter
	if rp := n.router.Load(); rp != nil {
		ar, _ = (*rp).(AvoidingRouter)
	}
	if ar == nil {
		q, _, err := n.route(dst, false)
		switch {
		case err != nil:
			return nil, codeNoRoute, err.Error()
		case q == p:
			// Back where it came from: a call sent back would only
			// bounce (a routing loop), so it fails here, at once.
			return back()
		}
		return q, 0, ""
	}
	if next, ok := ar.NextHopAvoiding(dst, p.id); ok && next != p.id && next != n.cfg.ID {
		if q := n.peer(next); q != nil {
			return q, 0, ""
		}
	}
	if q := n.peer(dst); q != nil && q != p {
		return q, 0, ""
	}
	switch next, ok := ar.NextHop(dst); {
	case n.isClosing():
		return nil, codeUnreachable, ErrClosed.Error()
	case !ok || next == n.cfg.ID:
		return nil, codeNoRoute, fmt.Sprintf("no route to %s", dst)
	case next == p.id:
		return back()
	default:
		// ErrNoRoute rather than ErrUnreachable: the call was not sent on,
		// so a caller may safely send it again, or elsewhere.
		return nil, codeNoRoute, "no connected next hop nearer to the destination than this node"
	}
}

// nextHopCopy copies a routed message (request envelope first) for the
// next hop, with one hop less in its budget; the body is not decoded.
func nextHopCopy(payload []byte) *transport.Buffer {
	buf := transport.GetBuffer()
	buf.Write(payload)
	buf.Bytes()[ttlOffset]--
	return buf
}

// forgetRelay removes the relay record of call id from p.
func (p *peer) forgetRelay(id uint64) relayLink {
	p.mu.Lock()
	l := p.relayed[id]
	delete(p.relayed, id)
	p.mu.Unlock()
	p.callEnded()
	return l
}

// forwardReply hands a reply for a relayed call back toward its origin.
func (q *peer) forwardReply(cl *call, payload []byte) {
	from, id := cl.relayFrom, cl.relayID
	q.node.putCall(cl)
	l := from.forgetRelay(id)
	if l.to == nil {
		return // the origin side cancelled or closed
	}
	l.finish(nil)
	buf := transport.GetBuffer()
	buf.Write(payload)
	if err := from.sendReply(context.Background(), kindResponse, id, buf); errors.Is(err, transport.ErrOverBudget) {
		q.node.replyDropped(from, id, "relayed reply", err)
	}
}

// failRelayed answers a relayed call whose next hop is gone.
func (q *peer) failRelayed(cl *call, reason error) {
	from, id := cl.relayFrom, cl.relayID
	q.node.putCall(cl)
	l := from.forgetRelay(id)
	if l.to == nil {
		return
	}
	l.finish(fmt.Errorf("%w: hop to %s lost: %v", ErrUnreachable, q.id, reason))
	q.node.replyError(from, id, wireError{Code: codeUnreachable, Message: fmt.Sprintf("node %s: hop to %s lost: %v", q.node.cfg.Name, q.id, reason)})
}

// cancelRelayed forwards a cancel frame for a relayed call.
func (p *peer) cancelRelayed(id uint64) bool {
	l := p.forgetRelay(id)
	if l.to == nil {
		return false
	}
	l.finish(ErrCanceled)
	if l.to.forget(l.id) {
		l.to.send(context.Background(), kindCancel, l.id, nil)
	}
	return true
}

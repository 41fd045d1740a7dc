package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

// A peer is this node's side of one connection: the calls it is waiting
// for and the calls it is serving. It is the connection's transport.Handler.
type peer struct {
	node   *Node
	conn   *transport.Conn
	id     NodeID
	dialed bool // this node dialed the connection

	nextCall atomic.Uint64
	watchdog watchdog      // for calls served on the connection's reader
	closing  atomic.Bool   // this node is closing the connection
	aside    atomic.Int32  // calls of the peer served on goroutines of their own (see maxAside)
	idle     chan struct{} // capacity 1: signalled when a call ends while closing

	mu      sync.Mutex
	calls   map[uint64]*call       // our calls awaiting a reply
	serving map[uint64]*serverCall // calls from the peer in progress here
	relayed map[uint64]relayLink   // calls from the peer relayed to another node
	closed  error                  // set when the connection closed
}

func newPeer(n *Node, c *transport.Conn, dialed bool) *peer {
	return &peer{
		node:     n,
		conn:     c,
		watchdog: watchdog{conn: c},
		id:       c.Remote(),
		dialed:   dialed,
		calls:    make(map[uint64]*call),
		serving:  make(map[uint64]*serverCall),
		relayed:  make(map[uint64]relayLink),
		idle:     make(chan struct{}, 1),
	}
}

// preferred reports whether this connection is the one to keep when two
// exist between the same nodes: the one dialed by the smaller ID.
func (p *peer) preferred() bool {
	return p.dialed == (p.node.cfg.ID < p.id)
}

// HandleMessage implements transport.Handler.
func (p *peer) HandleMessage(kind transport.Kind, id uint64, payload []byte) error {
	switch kind {
	case kindRequest:
		return p.node.serveRequest(p, id, payload)
	case kindResponse:
		return p.complete(id, payload)
	case kindStream:
		return p.node.handleStream(p, payload)
	case kindCancel:
		if len(payload) != 0 {
			return &transport.ProtocolError{Reason: "cancel frame with a payload"}
		}
		p.mu.Lock()
		sc := p.serving[id]
		p.mu.Unlock()
		if sc != nil {
			sc.ctx.cancel(context.Canceled, true)
		} else {
			p.cancelRelayed(id)
		}
		return nil
	}
	return &transport.ProtocolError{Reason: fmt.Sprintf("unknown message kind %d", kind)}
}

// HandleGoAway implements transport.Handler: the peer is closing, so new
// calls must not go through this connection.
func (p *peer) HandleGoAway() { p.node.dropPeer(p) }

// HandleClosed implements transport.Handler: fail the calls awaiting a
// reply and cancel the calls being served.
func (p *peer) HandleClosed(err error) {
	p.node.closedPeer(p)
	p.node.inline.forget(&p.watchdog)
	if p.node.router.Load() == nil && !p.closing.Load() && !p.node.Connected(p.id) {
		// Without a topology, a lost connection ends the relationship:
		// what the peer held of ours is released. (In a cluster, the
		// membership decides: see ForgetNode.)
		p.node.ForgetNode(p.id)
	}
	reason := error(ErrClosed)
	if !p.node.isClosing() {
		reason = fmt.Errorf("%w: connection lost: %v", ErrUnreachable, err)
	}
	p.mu.Lock()
	p.closed = reason
	calls := p.calls
	p.calls = make(map[uint64]*call)
	relayed := p.relayed
	p.relayed = make(map[uint64]relayLink)
	p.mu.Unlock()
	for _, c := range calls {
		if c.relayFrom != nil {
			p.failRelayed(c, err)
			continue
		}
		c.fail(reason)
		c.done <- struct{}{}
	}
	for _, l := range relayed {
		l.finish(reason)
		if l.to.forget(l.id) {
			l.to.send(context.Background(), kindCancel, l.id, nil)
		}
	}
	p.cancelServing()
}

// cancelServing cancels every call being served for this peer.
func (p *peer) cancelServing() {
	p.mu.Lock()
	for _, sc := range p.serving {
		sc.ctx.cancel(context.Canceled, false)
	}
	p.mu.Unlock()
}

// methodName names a method for errors: "example.com/kv.Store.Get".
func methodName(svc *codegen.ServiceDesc, m *codegen.MethodDesc) string {
	switch {
	case svc == nil && m == nil:
		return "?"
	case svc == nil:
		return m.Name
	case m == nil:
		return svc.Name
	}
	return svc.Name + "." + m.Name
}

// send sends a message, reporting a closed connection as unreachable. It
// is safe on the connection's reader goroutine.
func (p *peer) send(ctx context.Context, kind transport.Kind, id uint64, buf *transport.Buffer) error {
	return p.sendErr(p.conn.Send(ctx, kind, id, buf))
}

// sendInline is send for goroutines other than the connection's reader:
// on an idle connection it writes the message itself.
func (p *peer) sendInline(ctx context.Context, kind transport.Kind, id uint64, buf *transport.Buffer) error {
	return p.sendErr(p.conn.SendInline(ctx, kind, id, buf))
}

// sendReply sends the reply to one of the peer's requests: it counts as
// the peer's backpressure and against the node's budget (see
// transport.Conn.SendReply), and fails with transport.ErrOverBudget when
// the peer holds its share already.
func (p *peer) sendReply(ctx context.Context, kind transport.Kind, id uint64, buf *transport.Buffer) error {
	return p.sendErr(p.conn.SendReply(ctx, kind, id, buf))
}

// sendReplyInline is sendReply for goroutines other than the connection's
// reader, as sendInline.
func (p *peer) sendReplyInline(ctx context.Context, kind transport.Kind, id uint64, buf *transport.Buffer) error {
	return p.sendErr(p.conn.SendReplyInline(ctx, kind, id, buf))
}

func (p *peer) sendErr(err error) error {
	if errors.Is(err, transport.ErrTooLarge) {
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	if errors.Is(err, transport.ErrOverBudget) {
		return err
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		if p.node.isClosing() {
			return ErrClosed
		}
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return err
}

// callEnded wakes a drain in progress. Call it after removing a call from
// any of the peer's tables.
func (p *peer) callEnded() {
	if p.closing.Load() {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
}

// busy reports whether calls are in progress in either direction.
func (p *peer) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)+len(p.serving)+len(p.relayed) > 0
}

// drain waits until no call is in progress on the connection (new calls
// no longer choose it: the caller has removed it from the node's table), at
// most until ctx is done, then closes it gracefully.
func (p *peer) drain(ctx context.Context) error {
	p.closing.Store(true)
	for p.busy() {
		select {
		case <-p.idle:
		case <-p.conn.Done():
		case <-ctx.Done():
			p.conn.Abort(fmt.Errorf("%w: closing with calls in progress: %v", ErrClosed, ctx.Err()))
			p.conn.Wait()
			return ctx.Err()
		}
	}
	return p.conn.Close(ctx)
}

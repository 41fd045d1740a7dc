package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/transport"
)

// A Node is one Trellis server: it serves registered services and calls the
// services of other nodes.
type Node struct {
	cfg    Config
	log    *slog.Logger
	codec  *codec
	errors errorRegistry
	tcfg   transport.Config
	ln     *transport.Listener

	calls     sync.Pool // *call, see newCall
	outgoings sync.Pool // *outgoing, see newOutgoing
	refs      refTable
	streams   streamTable
	services  atomic.Pointer[serviceTable]
	router    atomic.Pointer[Router]

	interceptor atomic.Pointer[Transformer]
	icept       atomic.Pointer[interceptors]
	marshal     atomic.Pointer[transformerSet]
	regMu       sync.Mutex    // serialises Register and Unregister
	svcChanged  chan struct{} // closed at the next change of services, nil while nobody waits; guarded by regMu
	logs        logLimiter    // for what hostile peers make the node log

	mu      sync.RWMutex
	peers   map[NodeID]*peer
	conns   map[NodeID]map[*peer]struct{} // every started connection, current or closing, until it has closed
	dialing map[NodeID]chan struct{}      // ConnectTo dials in progress, closed when each ends
	closing bool

	serving  sync.WaitGroup // server calls in progress; Add only while !closing
	bg       sync.WaitGroup // accept loop and closers
	stopOnce sync.Once
	stopped  chan struct{} // closed when Close starts

	inline      *inlineMonitor // watches the calls served on connection readers
	inlineStop  chan struct{}  // closed once the connections are closed
	stopMonitor sync.Once
}

// NewNode creates a node and, if cfg.Addr is set, starts listening. It
// fails with an error wrapping transport.ErrNoAuth when cfg has no Keyring,
// no TLS and not Insecure; a node that fails leaves nothing running.
//
// A node with an Addr accepts calls as soon as NewNode returns: a call
// that arrives before its service is registered fails with
// ErrUnknownMethod (it was not run, so the caller may retry). To have
// every service registered before the first call can arrive, leave Addr
// empty, register, then call Serve with a listener (see the example of
// Serve), as with net/http and gRPC.
func NewNode(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	tcfg := transport.Config{
		Self:              cfg.ID,
		Label:             cfg.Label,
		Keyring:           cfg.Keyring,
		TLS:               cfg.TLS,
		Insecure:          cfg.Insecure,
		KeepaliveInterval: cfg.KeepaliveInterval,
		KeepaliveTimeout:  cfg.KeepaliveTimeout,
		MaxMessageSize:    cfg.MaxMessageSize,
		MaxConns:          cfg.MaxConns,
		Dial:              cfg.Dial,
	}
	peerMemory := cfg.MaxPeerMemory
	if peerMemory <= 0 {
		// One and a half messages of the largest size: room for one,
		// and a node under 256 MiB of RSS with the garbage collector's
		// headroom when peers fill the budget.
		peerMemory = 3 * cmp.Or(max(cfg.MaxMessageSize, 0), 64<<20) / 2
	}
	tcfg.Budget = transport.NewBudget(int64(peerMemory))
	if err := tcfg.Validate(); err != nil {
		return nil, fmt.Errorf("trellis: node %s: %w", cfg.Name, err)
	}
	c, err := newCodec(cfg.Limits)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.Name),
		codec:   c,
		peers:   make(map[NodeID]*peer),
		conns:   make(map[NodeID]map[*peer]struct{}),
		stopped: make(chan struct{}),

		inline:     newInlineMonitor(),
		inlineStop: make(chan struct{}),
	}
	n.services.Store(&serviceTable{})
	n.refs.init()
	n.streams.init()
	if err := n.Register(refsService, n); err != nil {
		return nil, err
	}
	tcfg.Logger = n.log
	n.tcfg = tcfg
	// Listen before starting anything, so that a node that cannot listen
	// (the port is in use) leaves no goroutine behind.
	var ln *transport.Listener
	if cfg.Addr != "" {
		if ln, err = transport.Listen(cfg.Addr, n.tcfg); err != nil {
			return nil, fmt.Errorf("trellis: node %s: %w", cfg.Name, err)
		}
	}
	n.bg.Add(2)
	go n.releaser()
	go func() {
		defer n.bg.Done()
		n.inline.run(n.inlineStop)
	}()
	if ln != nil {
		n.ln = ln
		n.bg.Add(1)
		go n.acceptLoop(ln)
	}
	return n, nil
}

// Serve makes the node accept connections from ln, which it owns from then
// on (Close closes it): a listener the caller made, for a node whose Config
// has no Addr, such as one inherited from a supervisor, or one opened after
// the services were registered. It returns once the node accepts; the node
// serves until Close. A node serves at most one listener.
func (n *Node) Serve(ln net.Listener) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closing:
		ln.Close()
		return ErrClosed
	case n.ln != nil:
		ln.Close()
		return fmt.Errorf("trellis: node %s: serve %s: already listening on %s", n.cfg.Name, ln.Addr(), n.ln.Addr())
	}
	tl, err := transport.NewListener(ln, n.tcfg)
	if err != nil {
		return fmt.Errorf("trellis: node %s: serve %s: %w", n.cfg.Name, ln.Addr(), err)
	}
	n.ln = tl
	n.bg.Add(1)
	go n.acceptLoop(tl)
	return nil
}

// ID returns the node's identity.
func (n *Node) ID() NodeID { return n.cfg.ID }

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr returns the address the node listens on, or nil if it does not listen.
func (n *Node) Addr() net.Addr {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.ln == nil {
		return nil
	}
	return n.ln.Addr()
}

// Peers returns the IDs of the nodes this node has a connection to, sorted.
func (n *Node) Peers() []NodeID {
	n.mu.RLock()
	ids := make([]NodeID, 0, len(n.peers))
	for id := range n.peers {
		ids = append(ids, id)
	}
	n.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// CallsInFlight returns the number of calls this node made and awaits the
// outcome of (sent, or being sent), and the number of calls it is serving.
// Calls it relays count in neither.
func (n *Node) CallsInFlight() (made, serving int) {
	n.mu.RLock()
	peers := make([]*peer, 0, len(n.peers))
	for _, p := range n.peers {
		peers = append(peers, p)
	}
	n.mu.RUnlock()
	for _, p := range peers {
		p.mu.Lock()
		for _, cl := range p.calls {
			if cl.relayFrom == nil {
				made++
			}
		}
		serving += len(p.serving)
		p.mu.Unlock()
	}
	return made, serving
}

func (n *Node) acceptLoop(ln *transport.Listener) {
	defer n.bg.Done()
	for {
		c, err := ln.Accept(context.Background())
		if err != nil {
			return // the listener is closed
		}
		n.adopt(c, false)
	}
}

// Connect connects to the node listening at addr, unless a connection to it
// exists already, and returns its ID. Calls to that node can then be made.
// A node does not redial by itself: once the connection is lost (the peer
// closed or restarted, Disconnect, Abort), calls to that node fail with
// ErrUnreachable until Connect is called again. Package cluster dials and
// redials the connections of its topology itself.
func (n *Node) Connect(ctx context.Context, addr string) (NodeID, error) {
	if n.isClosing() {
		return nodeid.None, ErrClosed
	}
	c, err := transport.Dial(ctx, addr, n.tcfg, nodeid.None)
	if err != nil {
		return nodeid.None, fmt.Errorf("trellis: node %s: connect: %w", n.cfg.Name, err)
	}
	if !n.adopt(c, true) && n.isClosing() {
		return nodeid.None, ErrClosed
	}
	return c.Remote(), nil
}

// ConnectTo makes sure there is a connection to node id, dialing addr if
// there is none; the node found at addr must be id. Concurrent calls for
// one node share one dial: a node dials a peer only while it holds no
// connection to it, so that the peer can take a second connection from it
// as a sign that the first one is dead. Like Connect, it does not redial
// later by itself.
func (n *Node) ConnectTo(ctx context.Context, id NodeID, addr string) error {
	for {
		if p := n.peer(id); p != nil {
			return nil
		}
		n.mu.Lock()
		if n.closing {
			n.mu.Unlock()
			return ErrClosed
		}
		wait, busy := n.dialing[id]
		if !busy {
			if n.dialing == nil {
				n.dialing = make(map[NodeID]chan struct{})
			}
			done := make(chan struct{})
			n.dialing[id] = done
			n.mu.Unlock()
			err := n.dialTo(ctx, id, addr)
			n.mu.Lock()
			delete(n.dialing, id)
			n.mu.Unlock()
			close(done)
			return err
		}
		n.mu.Unlock()
		select {
		case <-wait: // look again: connected, or dial anew
		case <-ctx.Done():
			return fmt.Errorf("trellis: node %s: connect to %s: %w", n.cfg.Name, id, ctx.Err())
		}
	}
}

// dialTo dials node id at addr and adopts the connection.
func (n *Node) dialTo(ctx context.Context, id NodeID, addr string) error {
	c, err := transport.Dial(ctx, addr, n.tcfg, id)
	if err != nil {
		return fmt.Errorf("trellis: node %s: connect to %s: %w", n.cfg.Name, id, err)
	}
	if !n.adopt(c, true) && n.isClosing() {
		return ErrClosed
	}
	return nil
}

// Connected reports whether the node has a connection to id.
func (n *Node) Connected(id NodeID) bool { return n.peer(id) != nil }

// adopt makes c the connection to its peer, unless a connection to that peer
// exists: then the one dialed by the node with the smaller ID is kept (both
// ends apply the same rule, so a simultaneous open keeps one connection), or
// of two dialed by the peer the newer, and the other is closed. It reports
// whether c was kept.
func (n *Node) adopt(c *transport.Conn, dialed bool) bool {
	p := newPeer(n, c, dialed)
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		c.Abort(ErrClosed)
		return false
	}
	old := n.peers[p.id]
	// Of two connections dialed by the peer, the newer wins: the peer
	// dials only while it holds no connection to this node (ConnectTo), so
	// it has given up on the older one, or restarted, and the older one
	// is dead (a crashed host's connection lingers until the keepalive
	// gives up, seconds later, and would keep refusing the new life's).
	keep := old == nil || old.closing.Load() || old.conn.GoneAway() || p.preferred() && !old.preferred() ||
		!dialed && !old.dialed
	if keep {
		n.peers[p.id] = p
		if n.conns[p.id] == nil {
			n.conns[p.id] = make(map[*peer]struct{})
		}
		n.conns[p.id][p] = struct{}{}
	}
	n.mu.Unlock()
	if !keep {
		n.closeConn(c)
		return false
	}
	c.Start(p)
	if old != nil {
		old.closing.Store(true)
		n.closeConn(old.conn)
	}
	return true
}

// closeConn closes c gracefully in the background; Close waits for it.
func (n *Node) closeConn(c *transport.Conn) {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		c.Abort(ErrClosed)
		return
	}
	n.bg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.bg.Done()
		c.Close(context.Background())
	}()
}

// dropPeer forgets p if it is still the connection to its node.
func (n *Node) dropPeer(p *peer) {
	n.mu.Lock()
	if n.peers[p.id] == p {
		delete(n.peers, p.id)
	}
	n.mu.Unlock()
}

// closedPeer forgets p, whose connection has closed, altogether.
func (n *Node) closedPeer(p *peer) {
	n.mu.Lock()
	if n.peers[p.id] == p {
		delete(n.peers, p.id)
	}
	if set := n.conns[p.id]; set != nil {
		delete(set, p)
		if len(set) == 0 {
			delete(n.conns, p.id)
		}
	}
	n.mu.Unlock()
}

// Abort closes every connection to node id at once: the current one, and
// any still draining (Disconnect) or being replaced. The calls in flight
// over them, in either direction and relayed ones included, end at once:
// this node's own calls and the calls it relays fail with ErrUnreachable
// (the message carries cause), and the calls it serves for id are
// cancelled. Use it when id is known to be gone, for instance when the
// membership has declared it failed: waiting for the transport's keepalive
// would leave those calls hanging for seconds. Calls to id then fail with
// ErrUnreachable until a connection to id is made again (Connect,
// ConnectTo, or the dial of package cluster, which keeps the connections
// of its topology). Disconnect closes a connection gracefully instead.
func (n *Node) Abort(id NodeID, cause error) {
	if cause == nil {
		cause = errors.New("aborted")
	}
	n.mu.Lock()
	delete(n.peers, id)
	ps := make([]*peer, 0, len(n.conns[id]))
	for p := range n.conns[id] {
		ps = append(ps, p)
	}
	n.mu.Unlock()
	for _, p := range ps {
		p.conn.Abort(fmt.Errorf("node %s aborted the connection to %s: %w", n.cfg.Name, id, cause))
	}
}

// peer returns the connection to id, or nil.
func (n *Node) peer(id NodeID) *peer {
	n.mu.RLock()
	p := n.peers[id]
	n.mu.RUnlock()
	return p
}

// Disconnect closes the connection to id gracefully, if there is one: new
// calls no longer use it, and it closes once the calls in progress on it (in
// either direction, relayed ones included) have ended, or when ctx is done.
func (n *Node) Disconnect(ctx context.Context, id NodeID) error {
	n.mu.Lock()
	p := n.peers[id]
	delete(n.peers, id)
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.drain(ctx)
}

func (n *Node) isClosing() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.closing
}

// Close shuts the node down: it stops accepting connections and calls,
// waits for the calls it is serving to finish until ctx is done (then
// cancels them), fails its own calls in progress with ErrClosed, closes its
// connections and waits for its goroutines to end. It returns only then,
// even after ctx is done: an implementation that ignores the cancellation
// of its context, or a stream's reader that blocks in Read and that
// closing does not unblock (see the package documentation), holds it up.
func (n *Node) Close(ctx context.Context) error {
	n.stopOnce.Do(func() {
		n.mu.Lock()
		n.closing = true
		n.mu.Unlock()
		close(n.stopped)
		if n.ln != nil {
			n.ln.Close()
		}
	})
	drained := make(chan struct{})
	go func() { n.serving.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		n.mu.RLock()
		for _, p := range n.peers {
			p.cancelServing()
		}
		n.mu.RUnlock()
		<-drained
	}
	n.mu.Lock()
	peers := make([]*peer, 0, len(n.peers))
	for id, p := range n.peers {
		peers = append(peers, p)
		delete(n.peers, id)
	}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.conn.Close(ctx)
			p.conn.Wait()
		}()
	}
	wg.Wait()
	if n.ln != nil {
		n.ln.Wait()
	}
	n.stopMonitor.Do(func() { close(n.inlineStop) }) // no call is served any more
	n.bg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("trellis: node %s: close: %w", n.cfg.Name, err)
	}
	return nil
}

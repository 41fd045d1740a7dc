package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// A Listener accepts connections from other nodes and runs their handshakes
// concurrently, so a slow or hostile dialer cannot hold up the others. A
// handshake costs it a bounded amount: at most Config.MaxPendingHandshakes
// run at once (a quarter of them from one source address), each reads at
// most a few hundred bytes and ends by Config.HandshakeTimeout, and refused
// handshakes are logged once per source address per minute. Once it holds
// Config.MaxConns open connections, it refuses dialers until one closes.
type Listener struct {
	ln      net.Listener
	cfg     Config
	refused *refusalLog

	pmu       sync.Mutex
	pending   int                // handshakes in progress
	perSource map[netip.Addr]int // handshakes in progress per source address
	open      int                // connections accepted and not closed (see Config.MaxConns)

	conns  chan *Conn
	done   chan struct{}
	ctx    context.Context // cancelled by Close: abandons handshakes
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup
	closed error
}

// Listen listens on the TCP address addr ("127.0.0.1:0" picks a port).
func Listen(addr string, cfg Config) (*Listener, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateListen(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	return NewListener(ln, cfg)
}

// NewListener accepts the connections of ln, which it owns from then on
// (Close closes it): a listener made by the caller, such as a socket
// inherited from a supervisor or an in-memory network in a simulation.
func NewListener(ln net.Listener, cfg Config) (*Listener, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateListen(); err != nil {
		ln.Close()
		return nil, err
	}
	l := &Listener{ln: ln, cfg: cfg, refused: newRefusalLog(cfg.Logger), perSource: make(map[netip.Addr]int),
		conns: make(chan *Conn), done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// acceptLoop accepts connections until Close. An accept error other than
// the listener being closed (running out of file descriptors, say) is
// logged and retried after a pause that grows up to a second, rather than
// ending the listener.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var pause time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.cfg.Logger.Warn("transport: accept failed; retrying", "err", err, "pause", pause)
			t := time.NewTimer(pause)
			select {
			case <-l.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		pause = 0
		src := sourceOf(nc.RemoteAddr())
		if !l.admit(src) {
			l.refused.refused(nc.RemoteAddr(), "transport: handshake refused", errTooManyHandshakes)
			nc.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(nc, src)
	}
}

var errTooManyHandshakes = errors.New("too many handshakes in progress")

// admit takes a handshake slot for a connection from src, or reports that
// the listener runs as many as it may (from src, or in all).
func (l *Listener) admit(src netip.Addr) bool {
	perSource := max(4, l.cfg.MaxPendingHandshakes/4)
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if l.pending >= l.cfg.MaxPendingHandshakes || l.perSource[src] >= perSource {
		return false
	}
	l.pending++
	l.perSource[src]++
	return true
}

// release gives back the slot admit took.
func (l *Listener) release(src netip.Addr) {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	l.pending--
	if l.perSource[src]--; l.perSource[src] <= 0 {
		delete(l.perSource, src)
	}
}

// handshake runs the acceptor's side of one handshake, TLS included, bounded
// by HandshakeTimeout and abandoned when the listener closes, and hands the
// connection to Accept.
func (l *Listener) handshake(nc net.Conn, src netip.Addr) {
	defer l.wg.Done()
	addr := nc.RemoteAddr().String()
	setNoDelay(nc)
	nc.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
	stop := context.AfterFunc(l.ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	var err error
	if l.cfg.TLS != nil {
		tc := tls.Server(nc, l.cfg.TLS)
		if err = tc.Handshake(); err != nil {
			err = &HandshakeError{Addr: addr, Reason: "TLS", Err: err}
		}
		nc = tc
	}
	var peer remote
	if err == nil {
		peer, err = serverHandshake(nc, &l.cfg, l.full())
	}
	if !stop() {
		err = &HandshakeError{Addr: addr, Reason: "listener closed", Err: ErrClosed}
	}
	if err == nil {
		err = nc.SetDeadline(time.Time{})
	}
	l.release(src)
	if err != nil {
		l.refused.refused(nc.RemoteAddr(), "transport: handshake failed", err)
		nc.Close()
		return
	}
	c := newConnTo(nc, &l.cfg, peer)
	l.pmu.Lock()
	l.open++
	l.pmu.Unlock()
	c.onClose = func() {
		l.pmu.Lock()
		l.open--
		l.pmu.Unlock()
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close(context.Background())
	}
}

// full returns why the listener takes no more connections (it holds
// Config.MaxConns), or "".
func (l *Listener) full() string {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if l.open < l.cfg.MaxConns {
		return ""
	}
	return fmt.Sprintf("the acceptor has %d connections open, its limit (MaxConns)", l.open)
}

// Accept returns the next connection whose handshake succeeded. The
// connection does not read until Start is called.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops listening, abandons handshakes in progress and closes the
// connections that completed their handshake but were not accepted.
// Connections already accepted stay open. Wait waits for the listener's
// goroutines to end.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.cancel()
		l.closed = l.ln.Close()
	})
	return l.closed
}

// Wait waits for the listener's goroutines to end after Close.
func (l *Listener) Wait() { l.wg.Wait() }

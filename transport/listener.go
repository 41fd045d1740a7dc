package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// A Listener accepts connections from other nodes and runs their handshakes
// concurrently, so a slow or hostile dialer cannot hold up the others.
type Listener struct {
	ln     net.Listener
	cfg    Config
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
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	l := &Listener{ln: ln, cfg: cfg, conns: make(chan *Conn), done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.cfg.Logger.Error("transport: accept failed; listener stopped", "err", err)
			l.Close()
			return
		}
		l.wg.Add(1)
		go l.handshake(nc)
	}
}

func (l *Listener) handshake(nc net.Conn) {
	defer l.wg.Done()
	setNoDelay(nc)
	stop := context.AfterFunc(l.ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	if l.cfg.TLS != nil {
		tc := tls.Server(nc, l.cfg.TLS)
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			l.cfg.Logger.Info("transport: TLS handshake failed", "addr", nc.RemoteAddr().String(), "err", err)
			stop()
			nc.Close()
			return
		}
		nc = tc
	}
	remote, err := serverHandshake(nc, &l.cfg)
	if !stop() && err == nil {
		err = ErrClosed // the listener closed during the handshake
	}
	if err != nil {
		l.cfg.Logger.Info("transport: handshake failed", "addr", nc.RemoteAddr().String(), "err", err)
		nc.Close()
		return
	}
	c := newConn(nc, &l.cfg, remote)
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close(context.Background())
	}
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

// Close stops listening, abandons handshakes in progress and waits for the
// listener's goroutines to end. Connections already accepted stay open.
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

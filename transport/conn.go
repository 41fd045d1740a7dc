package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// A Handler receives what arrives on a connection. Its methods are called
// from the connection's single reader goroutine, one at a time, so they must
// not block for long.
type Handler interface {
	// HandleMessage receives one whole message. payload is valid only until
	// HandleMessage returns. A non-nil error is a protocol violation by the
	// peer: the connection is closed with it.
	HandleMessage(kind Kind, id uint64, payload []byte) error
	// HandleGoAway reports that the peer is closing: it will start no new
	// work and the user should not send it any.
	HandleGoAway()
	// HandleClosed is called once, when the connection is closed, with the
	// reason (ErrClosed after a local Close).
	HandleClosed(err error)
}

// A Conn is an established connection to one peer node.
type Conn struct {
	nc     net.Conn
	cfg    Config
	local  nodeid.ID
	remote nodeid.ID
	log    *slog.Logger

	// lastRecv is the time of the last frame received, in nanoseconds since start.
	start    time.Time
	lastRecv atomic.Int64

	// Write side: Send appends to queue; the writer goroutine drains it.
	mu        sync.Mutex
	queue     []outFrame
	queued    int           // bytes in queue
	wake      chan struct{} // capacity 1: the writer has work
	space     chan struct{} // closed and replaced when the writer frees queue space
	closing   bool          // Close called: no more Sends
	err       error         // why the connection closed; set once
	done      chan struct{} // closed when the connection is closed
	goneAway  atomic.Bool
	started   atomic.Bool
	startOnce sync.Once
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// outFrame is a queued message, or the unsent rest of one.
type outFrame struct {
	kind Kind
	id   uint64
	buf  *Buffer // nil for an empty payload
	off  int     // bytes of buf already written
}

func newConn(nc net.Conn, cfg *Config, remote nodeid.ID) *Conn {
	c := &Conn{
		nc:     nc,
		cfg:    *cfg,
		local:  cfg.Self,
		remote: remote,
		log:    cfg.Logger.With("peer", remote.String(), "addr", nc.RemoteAddr().String()),
		start:  time.Now(),
		wake:   make(chan struct{}, 1),
		space:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	return c
}

// Dial connects to the node listening at addr and runs the handshake. If want
// is not nodeid.None, the peer must be that node. The returned connection
// does not read until Start is called.
func Dial(ctx context.Context, addr string, cfg Config, want nodeid.ID) (*Conn, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	setNoDelay(nc)
	if cfg.TLS != nil {
		tc := tlsClient(nc, cfg.TLS, addr)
		hctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("transport: TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	remote, err := clientHandshake(nc, &cfg, want)
	if !stop() && err == nil {
		err = fmt.Errorf("transport: handshake with %s: %w", addr, ctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return newConn(nc, &cfg, remote), nil
}

func (cfg *Config) validate() error {
	if cfg.Self == nodeid.None {
		return errors.New("transport: Config.Self is the zero node id")
	}
	if len(cfg.Label) > maxLabel {
		return fmt.Errorf("transport: cluster label is %d bytes, the limit is %d", len(cfg.Label), maxLabel)
	}
	return nil
}

func setNoDelay(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
}

// Local returns this node's ID.
func (c *Conn) Local() nodeid.ID { return c.local }

// Remote returns the peer's ID, as established by the handshake.
func (c *Conn) Remote() nodeid.ID { return c.remote }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Done is closed when the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection closed, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// GoneAway reports whether the peer has announced that it is closing.
func (c *Conn) GoneAway() bool { return c.goneAway.Load() }

// Start starts the reader, writer and keepalive goroutines, delivering what
// arrives to h. It must be called once; later calls do nothing.
func (c *Conn) Start(h Handler) {
	c.startOnce.Do(func() {
		c.started.Store(true)
		c.lastRecv.Store(int64(time.Since(c.start)))
		c.wg.Add(3)
		go c.readLoop(h)
		go c.writeLoop()
		go c.keepalive()
	})
}

// Send queues a message for the peer. It takes ownership of buf (which may
// be nil for an empty payload), even when it fails. It blocks while more than
// Config.MaxQueuedBytes are queued, until ctx is done.
func (c *Conn) Send(ctx context.Context, kind Kind, id uint64, buf *Buffer) error {
	if kind == 0 || kind > KindMax {
		PutBuffer(buf)
		return fmt.Errorf("transport: send: invalid message kind %d", kind)
	}
	n := 0
	if buf != nil {
		n = buf.Len()
	}
	if n > c.cfg.MaxMessageSize {
		PutBuffer(buf)
		return fmt.Errorf("transport: send: message of %d bytes exceeds the cap of %d", n, c.cfg.MaxMessageSize)
	}
	return c.enqueue(ctx, outFrame{kind: kind, id: id, buf: buf}, n)
}

func (c *Conn) enqueue(ctx context.Context, f outFrame, n int) error {
	c.mu.Lock()
	for c.queued > 0 && c.queued+n > c.cfg.MaxQueuedBytes && c.err == nil && !c.closing {
		space := c.space
		c.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			PutBuffer(f.buf)
			return ctx.Err()
		}
		c.mu.Lock()
	}
	if c.err != nil || c.closing {
		err := c.err
		c.mu.Unlock()
		PutBuffer(f.buf)
		if err == nil {
			err = ErrClosed
		}
		return err
	}
	c.queue = append(c.queue, f)
	c.queued += n
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// sendControl queues a control frame, bypassing the queue limit and the
// closing flag (a GoAway is sent while closing).
func (c *Conn) sendControl(kind Kind, id uint64) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, outFrame{kind: kind, id: id})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the connection's only writer. It takes everything queued,
// writes one fragment of each message in turn (so a big message does not
// stall small ones), and flushes when the queue is empty.
func (c *Conn) writeLoop() {
	defer c.wg.Done()
	bw := bufio.NewWriterSize(deadlineWriter{c}, 64<<10)
	var pending, spare []outFrame
	var hdr [HeaderSize]byte
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && len(pending) == 0 {
			closing, err := c.closing, c.err
			c.mu.Unlock()
			if err != nil {
				return
			}
			if bw.Buffered() > 0 {
				if ferr := bw.Flush(); ferr != nil {
					c.fail(fmt.Errorf("transport: write: %w", ferr))
					return
				}
				c.mu.Lock()
				continue
			}
			if closing {
				c.finishClose()
				return
			}
			select {
			case <-c.wake:
			case <-c.done:
				return
			}
			c.mu.Lock()
		}
		// Take the new arrivals behind the unfinished messages.
		freed := 0
		pending = append(pending, c.queue...)
		clear(c.queue)
		c.queue = c.queue[:0]
		c.mu.Unlock()

		next := spare[:0]
		for i := range pending {
			f := &pending[i]
			size := 0
			if f.buf != nil {
				size = f.buf.Len()
			}
			chunk := size - f.off
			flags := uint8(0)
			if chunk > MaxFramePayload {
				chunk, flags = MaxFramePayload, FlagMore
			}
			putHeader(hdr[:], Header{Length: uint32(chunk), Kind: f.kind, Flags: flags, ID: f.id})
			_, err := bw.Write(hdr[:])
			if err == nil && chunk > 0 {
				_, err = bw.Write(f.buf.Bytes()[f.off : f.off+chunk])
			}
			if err != nil {
				c.fail(fmt.Errorf("transport: write: %w", err))
				for j := i; j < len(pending); j++ {
					PutBuffer(pending[j].buf)
				}
				return
			}
			f.off += chunk
			if flags&FlagMore != 0 {
				next = append(next, *f)
				continue
			}
			freed += size
			PutBuffer(f.buf)
		}
		clear(pending)
		pending, spare = next, pending[:0]
		if freed > 0 {
			c.mu.Lock()
			c.queued -= freed
			close(c.space)
			c.space = make(chan struct{})
			c.mu.Unlock()
		}
	}
}

// deadlineWriter bounds each socket write by Config.WriteTimeout.
type deadlineWriter struct{ c *Conn }

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.nc.SetWriteDeadline(time.Now().Add(w.c.cfg.WriteTimeout))
	return w.c.nc.Write(p)
}

// readLoop is the connection's only reader: it parses frames, reassembles
// fragmented messages and delivers them to h.
func (c *Conn) readLoop(h Handler) {
	defer c.wg.Done()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	err := c.read(br, h)
	c.fail(err)
	h.HandleClosed(c.Err())
}

func (c *Conn) read(br *bufio.Reader, h Handler) error {
	var hdr [HeaderSize]byte
	buf := make([]byte, 0, 4096)
	partial := make(map[uint64][]byte)
	partialBytes := 0
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return c.readErr(err, "frame header")
		}
		fh, err := ParseHeader(hdr[:])
		if err != nil {
			return err
		}
		c.lastRecv.Store(int64(time.Since(c.start)))
		switch fh.Kind {
		case framePing:
			c.sendControl(framePong, fh.ID)
			continue
		case framePong:
			continue
		case frameGoAway:
			c.goneAway.Store(true)
			h.HandleGoAway()
			continue
		}
		n := int(fh.Length)
		prev, fragmented := partial[fh.ID]
		if fragmented || fh.Flags&FlagMore != 0 {
			if len(prev)+n > c.cfg.MaxMessageSize {
				return &ProtocolError{Reason: fmt.Sprintf("message %d of kind %d exceeds the cap of %d bytes", fh.ID, fh.Kind, c.cfg.MaxMessageSize)}
			}
			if partialBytes+n > c.cfg.MaxPartialBytes {
				return &ProtocolError{Reason: fmt.Sprintf("partly received messages exceed the cap of %d bytes", c.cfg.MaxPartialBytes)}
			}
			start := len(prev)
			prev = append(prev, make([]byte, n)...)
			if _, err := io.ReadFull(br, prev[start:]); err != nil {
				return c.readErr(err, "frame payload")
			}
			partialBytes += n
			if fh.Flags&FlagMore != 0 {
				partial[fh.ID] = prev
				continue
			}
			delete(partial, fh.ID)
			partialBytes -= len(prev)
			if err := h.HandleMessage(fh.Kind, fh.ID, prev); err != nil {
				return err
			}
			continue
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return c.readErr(err, "frame payload")
		}
		if err := h.HandleMessage(fh.Kind, fh.ID, buf); err != nil {
			return err
		}
	}
}

func (c *Conn) readErr(err error, what string) error {
	c.mu.Lock()
	closing, cerr := c.closing, c.err
	c.mu.Unlock()
	switch {
	case cerr != nil:
		return cerr
	case closing:
		return ErrClosed
	}
	if errors.Is(err, io.EOF) {
		return ErrPeerGone
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &ProtocolError{Reason: "connection closed inside a " + what}
	}
	return fmt.Errorf("transport: read %s: %w", what, err)
}

// keepalive pings an idle peer and closes the connection when the peer has
// been silent for KeepaliveTimeout.
func (c *Conn) keepalive() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.KeepaliveInterval / 2)
	defer t.Stop()
	var nonce uint64
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		idle := time.Since(c.start) - time.Duration(c.lastRecv.Load())
		switch {
		case idle >= c.cfg.KeepaliveTimeout:
			c.fail(ErrPeerTimeout)
			return
		case idle >= c.cfg.KeepaliveInterval:
			nonce++
			c.sendControl(framePing, nonce)
		}
	}
}

// fail closes the connection at once with err as the reason. The first
// reason wins.
func (c *Conn) fail(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		queue := c.queue
		c.queue = nil
		close(c.space)
		c.mu.Unlock()
		for _, f := range queue {
			PutBuffer(f.buf)
		}
		if !errors.Is(err, ErrClosed) {
			c.log.Info("transport: connection closed", "reason", err)
		}
		close(c.done)
		c.nc.Close()
	})
}

// finishClose is run by the writer once a graceful Close has flushed
// everything queued.
func (c *Conn) finishClose() {
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	// Give the peer a moment to read the GoAway and close its side, which
	// ends our reader; fail below closes the socket in any case.
	timer := time.NewTimer(c.cfg.KeepaliveInterval)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
	}
	c.fail(ErrClosed)
}

// Close closes the connection gracefully: it stops accepting Sends, writes
// what is queued, tells the peer with a GoAway frame, and closes. It waits for
// the connection's goroutines to end, at most until ctx is done, then closes
// at once.
func (c *Conn) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.startOnce.Do(func() { c.fail(ErrClosed) }) // never started: nothing to drain
	if c.started.Load() {
		c.sendControl(frameGoAway, 0)
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	waited := make(chan struct{})
	go func() { c.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		c.fail(ErrClosed)
		<-waited
	}
	return nil
}

// Abort closes the connection at once, dropping what is queued; err is the
// reason reported to the Handler (ErrClosed if nil). It does not wait for the
// connection's goroutines, so a Handler may call it.
func (c *Conn) Abort(err error) {
	if err == nil {
		err = ErrClosed
	}
	c.fail(err)
}

// Wait waits until the connection's goroutines have ended (after a Close,
// Abort or failure). A Handler must not call it.
func (c *Conn) Wait() { c.wg.Wait() }

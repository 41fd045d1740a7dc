package transport

import (
	"context"
	"crypto/tls"
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
// not block for long: while a method runs nothing is read, not even
// keepalive pongs (unless it moves reading to another goroutine with
// ReadOn: the next methods may then run while it still does). A Handler may call Send, Abort and the accessors; it must
// not call Close or Wait, which wait for the reader. A Send from a Handler
// blocks while the write queue is full, so give it a context that bounds
// the wait: two peers whose handlers both wait for queue space read
// nothing, and their connection ends in a keepalive timeout.
type Handler interface {
	// HandleMessage receives one whole message. payload is valid only until
	// HandleMessage returns. A non-nil error is a protocol violation by the
	// peer: the connection is closed with it.
	HandleMessage(kind Kind, id uint64, payload []byte) error
	// HandleGoAway reports, once, that the peer is closing: it will start no
	// new work and the user should not send it any. Messages it queued
	// before may still arrive.
	HandleGoAway()
	// HandleClosed is called once, last, when the connection is closed, with
	// the reason (ErrClosed after a local Close).
	HandleClosed(err error)
}

// A Conn is an established connection to one peer node.
type Conn struct {
	nc     net.Conn
	cfg    Config
	local  nodeid.ID
	remote nodeid.ID
	log    *slog.Logger
	// peerMax is the peer's cap on the messages it reads (see
	// Config.MaxMessageSize), and maxSend the smaller of it and ours:
	// the largest message Send accepts.
	peerMax int
	maxSend int

	// lastRecv is the time of the last frame received, in nanoseconds since start.
	start     time.Time
	lastRecv  atomic.Int64
	lastWrite atomic.Int64 // time of the last frame written, likewise

	// Write side: Send appends to queue; the writer goroutine drains it.
	mu      sync.Mutex
	queue   []outFrame
	queued  int           // bytes charged for the messages in queue or being written
	waiting int           // Sends blocked for queue space
	space   chan struct{} // closed and replaced when queue space is freed and someone waits
	ctl     control       // control frames for the writer to send
	wake    chan struct{} // capacity 1: the writer has work
	wmu     sync.Mutex    // held by whoever writes to bw: the writer, or sendDirect
	bw      *frameWriter
	handler Handler // set by the first Start
	started bool    // the goroutines run
	closing bool    // Close called: no more Sends
	err     error   // why the connection closed; set once

	// Backpressure (see SendReply): owed counts the bytes of replies
	// queued or waiting for queue space, charged counts what the Handler
	// holds for the peer (see Charge);
	// while owed exceeds owedMax the reader reads nothing, and paused is set.
	owed    atomic.Int64
	owedMax int64 // see pauseAt
	charged atomic.Int64
	paused  atomic.Bool
	failed  atomic.Bool // set by fail: nothing more is delivered

	fr       *frameReader  // the reader's, for TakePayload and ReadOn (reader goroutine only)
	handling atomic.Uint64 // messages handled and the reader's state (see ReadOn)

	done     chan struct{} // closed when the connection is closed
	stopped  chan struct{} // closed when the goroutines have ended
	running  atomic.Int32  // goroutines still running
	goneAway atomic.Bool
	onClose  func() // if not nil, called once when the connection closes (see Listener)
}

// control holds the control frames waiting for the writer. They are flags
// rather than queue entries, so a peer flooding us with pings while not
// reading cannot grow our memory: pongs coalesce into one.
type control struct {
	goAway bool
	ping   bool
	pong   bool
	pingID uint64
	pongID uint64
}

func (c control) any() bool { return c.goAway || c.ping || c.pong }

// outFrame is a queued message, or the unsent rest of one.
type outFrame struct {
	kind   Kind
	id     uint64
	buf    *Buffer // nil for an empty payload
	off    int     // bytes of buf already written
	charge int     // bytes counted in Conn.queued
	owed   int     // bytes counted in Conn.owed and charged to the Budget (see SendReply)
	bulk   bool    // see SendBulk
}

// newConn returns the connection to the peer remote, over nc; cfg has its
// defaults. The peer is assumed to read messages up to
// cfg.MaxMessageSize until setPeerMax says otherwise.
func newConn(nc net.Conn, cfg *Config, remote nodeid.ID) *Conn {
	return &Conn{
		nc:      nc,
		cfg:     *cfg,
		local:   cfg.Self,
		remote:  remote,
		peerMax: cfg.MaxMessageSize,
		maxSend: cfg.MaxMessageSize,
		log:     cfg.Logger.With("peer", remote.String(), "addr", nc.RemoteAddr().String()),
		start:   time.Now(),
		wake:    make(chan struct{}, 1),
		space:   make(chan struct{}),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		owedMax: pauseAt(cfg),
	}
}

// setPeerMax records the peer's cap on the messages it reads, as learnt in
// the handshake, before the connection is handed out.
func (c *Conn) setPeerMax(n int) {
	c.peerMax = n
	c.maxSend = min(n, c.cfg.MaxMessageSize)
}

// newConnTo returns the connection to the peer the handshake described.
func newConnTo(nc net.Conn, cfg *Config, r remote) *Conn {
	c := newConn(nc, cfg, r.id)
	c.setPeerMax(r.maxMessage)
	return c
}

// pauseAt is how many bytes of replies a connection may owe before it stops
// reading: MaxQueuedBytes, or a quarter of the Budget if that is less, so
// that the pause comes well before the Budget refuses replies.
func pauseAt(cfg *Config) int64 {
	n := int64(cfg.MaxQueuedBytes)
	if cfg.Budget != nil {
		n = min(n, cfg.Budget.Limit()/4)
	}
	return n
}

// Dial connects to the node listening at addr and runs the handshake. If want
// is not nodeid.None, the peer must be that node. The handshake is bounded
// by Config.HandshakeTimeout and by ctx; its failures are *HandshakeError.
// The returned connection does not read until Start is called.
func Dial(ctx context.Context, addr string, cfg Config, want nodeid.ID) (*Conn, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dial := cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	nc, err := dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	setNoDelay(nc)
	nc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	var peer remote
	if cfg.TLS != nil {
		tc := tlsClient(nc, cfg.TLS, addr)
		if err = tc.Handshake(); err != nil {
			err = &HandshakeError{Addr: addr, Reason: "TLS", Err: err}
		}
		nc = tc
	}
	if err == nil {
		peer, err = clientHandshake(nc, &cfg, want)
	}
	if !stop() {
		// ctx ended: whatever the handshake reports, that is why it failed.
		err = &HandshakeError{Addr: addr, Reason: "dial abandoned", Err: ctx.Err()}
	}
	if err == nil {
		err = nc.SetDeadline(time.Time{})
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return newConnTo(nc, &cfg, peer), nil
}

// Validate reports whether the configuration can make connections: a
// node id, a label that fits the handshake, and a way to authenticate
// peers (Keyring, TLS, or Insecure). Listen and Dial call it; a program may
// call it first to fail early.
func (cfg *Config) Validate() error {
	if cfg.Self == nodeid.None {
		return errors.New("transport: Config.Self is the zero node id")
	}
	if len(cfg.Label) > maxLabel {
		return fmt.Errorf("transport: cluster label is %d bytes, the limit is %d", len(cfg.Label), maxLabel)
	}
	if cfg.Keyring != nil && cfg.Keyring.Len() == 0 {
		return errors.New("transport: Config.Keyring holds no key (make it with keyring.New)")
	}
	if cfg.Keyring == nil && cfg.TLS == nil && !cfg.Insecure {
		return ErrNoAuth
	}
	return nil
}

// validateListen adds what the accepting side needs: without a Keyring, a
// dialer can authenticate only by a client certificate, so TLS must ask
// for and verify one.
func (cfg *Config) validateListen() error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Keyring == nil && !cfg.Insecure && cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return errors.New("transport: TLS without a Keyring authenticates dialers only by their certificates: set TLS.ClientAuth to tls.RequireAndVerifyClientCert (with ClientCAs), or set Keyring")
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

// MaxSend returns the size of the largest message Send accepts: the
// smaller of Config.MaxMessageSize and the cap the peer announced in the
// handshake (the default, 64 MiB, for a peer that announced none).
func (c *Conn) MaxSend() int { return c.maxSend }

// PeerMaxMessageSize returns the peer's cap on the messages it reads, as
// it announced it in the handshake (the default, 64 MiB, for a peer that
// announced none).
func (c *Conn) PeerMaxMessageSize() int { return c.peerMax }

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
// arrives to h. Only the first call counts. If the connection is already
// closed, Start starts nothing and calls h.HandleClosed with the reason, so
// that h always hears of the end.
func (c *Conn) Start(h Handler) {
	c.mu.Lock()
	if c.handler != nil {
		c.mu.Unlock()
		return
	}
	c.handler = h
	if err := c.err; err != nil {
		c.mu.Unlock()
		h.HandleClosed(err)
		return
	}
	c.bw = newFrameWriter(c)
	c.started = true
	c.running.Store(3)
	c.mu.Unlock()
	c.lastRecv.Store(int64(time.Since(c.start)))
	go c.readLoop(h, c.newReader(c.nc, h))
	go c.writeLoop()
	go c.keepalive()
}

// exit is deferred by each of the connection's goroutines.
func (c *Conn) exit() {
	if c.running.Add(-1) == 0 {
		close(c.stopped)
	}
}

// Send queues a message for the peer. It takes ownership of buf (which may
// be nil for an empty payload), even when it fails. It blocks while more
// than Config.MaxQueuedBytes are queued, until ctx is done; a message larger
// than half of MaxQueuedBytes counts as half, so one big message leaves room
// for small ones behind it. Messages with the same kind and id arrive in
// the order they were sent; a message with a different kind or id sent
// after a big one may overtake it.
func (c *Conn) Send(ctx context.Context, kind Kind, id uint64, buf *Buffer) error {
	return c.send(ctx, kind, id, buf, false)
}

// send checks a message and queues it, as bulk data if bulk is set.
func (c *Conn) send(ctx context.Context, kind Kind, id uint64, buf *Buffer, bulk bool) error {
	f, err := c.frame(kind, id, buf)
	if err != nil {
		return err
	}
	f.bulk = bulk
	return c.enqueue(ctx, f)
}

// frame checks a message and returns it as a queue entry; on failure it
// frees buf.
func (c *Conn) frame(kind Kind, id uint64, buf *Buffer) (outFrame, error) {
	if kind == 0 || kind > KindMax {
		PutBuffer(buf)
		return outFrame{}, fmt.Errorf("transport: send: invalid message kind %d", kind)
	}
	n := 0
	if buf != nil {
		n = buf.Len()
	}
	if n > c.maxSend {
		PutBuffer(buf)
		return outFrame{}, c.tooLarge(n)
	}
	charge := n
	if half := c.cfg.MaxQueuedBytes / 2; half > 0 && charge > half {
		charge = half
	}
	return outFrame{kind: kind, id: id, buf: buf, charge: charge}, nil
}

// tooLarge returns the error of a message of n bytes over maxSend, which
// says whose cap it exceeds.
func (c *Conn) tooLarge(n int) error {
	if c.peerMax < c.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, the cap is %d (the MaxMessageSize of node %s, the receiver; this node's is %d)", ErrTooLarge, n, c.peerMax, c.remote, c.cfg.MaxMessageSize)
	}
	return fmt.Errorf("%w: %d bytes, the cap is %d (this node's MaxMessageSize)", ErrTooLarge, n, c.cfg.MaxMessageSize)
}

// smallReply is the size up to which a reply (or a Charge) is charged to
// the Budget without being refused: an error reply, which must reach the
// caller, or a small call, which must not fail while others hold the Budget.
const smallReply = 4 << 10

// SendReply is Send for a message the connection owes its peer: the reply
// to a request it sent. Replies are the peer's doing, so they are its
// backpressure: while the replies queued or waiting for queue space exceed
// Config.MaxQueuedBytes (or a quarter of the Budget, if less), the
// connection reads nothing more from the peer
// (TCP then slows it down), until the writer has sent enough of them; if
// it sends nothing for StallTimeout meanwhile, the connection fails with
// ErrPeerStalled. A reply is charged to the node's Budget until written
// or dropped; a reply over smallReply bytes that the Budget refuses (see
// Budget) fails with ErrOverBudget, and the caller should send a short
// error reply instead. A connection that owes replies in both directions
// to a peer that does likewise, with neither reading, ends in that stall.
func (c *Conn) SendReply(ctx context.Context, kind Kind, id uint64, buf *Buffer) error {
	f, err := c.frame(kind, id, buf)
	if err != nil {
		return err
	}
	if err := c.owe(&f); err != nil {
		return err
	}
	return c.enqueue(ctx, f)
}

// SendReplyInline is SendReply, written on the calling goroutine when the
// connection is idle, as SendInline. A Handler must not call it.
func (c *Conn) SendReplyInline(ctx context.Context, kind Kind, id uint64, buf *Buffer) error {
	if buf != nil && buf.Len() <= min(directMax, c.maxSend) && kind != 0 && kind <= KindMax {
		charge := buf.Len()
		if took, err := c.sendDirect(outFrame{kind: kind, id: id, buf: buf, charge: charge}); took {
			return err
		}
	}
	return c.SendReply(ctx, kind, id, buf)
}

// owe charges f as a reply owed to the peer, or frees it and fails with
// ErrOverBudget.
func (c *Conn) owe(f *outFrame) error {
	n := 0
	if f.buf != nil {
		n = f.buf.Len()
	}
	if b := c.cfg.Budget; b != nil {
		if n <= smallReply {
			b.force(int64(n))
		} else if held := c.owed.Load() + c.charged.Load(); !b.takeOwed(int64(n), held) {
			PutBuffer(f.buf)
			return fmt.Errorf("%w: a reply of %d bytes, with %d bytes of replies unsent and %d held for the peer (%d of %d used by the node)",
				ErrOverBudget, n, c.owed.Load(), c.charged.Load(), b.Used(), b.Limit())
		}
	}
	c.owed.Add(int64(n))
	f.owed = n
	return nil
}

// drop frees a queue entry that will not be written.
func (c *Conn) drop(f *outFrame) {
	PutBuffer(f.buf)
	f.buf = nil
	c.paid(f.owed)
	f.owed = 0
}

// paid gives back n bytes of owed replies, written or dropped.
func (c *Conn) paid(n int) {
	if n == 0 {
		return
	}
	c.owed.Add(-int64(n))
	if b := c.cfg.Budget; b != nil {
		b.give(int64(n))
	}
}

// Charge counts n bytes that the Handler holds on the peer's behalf (the
// arguments of a call being served, say) against the node's Budget, and
// reports whether it may: false when the peer already holds its share (see
// Budget). A charge of at most 4 KiB is counted but never refused, so that
// small calls go on while others hold the Budget (the Handler bounds how
// many it holds). Uncharge gives them back. Without a Budget it always may.
func (c *Conn) Charge(n int) bool {
	if b := c.cfg.Budget; b != nil && n > 0 {
		if n <= smallReply {
			b.force(int64(n))
		} else if !b.take(int64(n), c.owed.Load()+c.charged.Load()) {
			return false
		}
		c.charged.Add(int64(n))
	}
	return true
}

// Uncharge gives back n bytes counted by Charge.
func (c *Conn) Uncharge(n int) {
	if b := c.cfg.Budget; b != nil && n > 0 {
		c.charged.Add(-int64(n))
		b.give(int64(n))
	}
}

// SendBulk is Send for bulk data (a stream's chunks): such messages are
// written after the other messages queued, at most one frame of bulk data
// per write round, so that small messages sent meanwhile overtake them and
// keep their latency. Bulk messages keep their order among themselves.
func (c *Conn) SendBulk(ctx context.Context, kind Kind, id uint64, buf *Buffer) error {
	return c.send(ctx, kind, id, buf, true)
}

// SendBulkInline is SendBulk, except that when the connection is idle (the
// writer has nothing queued or buffered) a message of one frame is written
// on the calling goroutine, its payload straight from buf, which saves the
// hand-off to the writer: a stream's pump then writes its chunks itself
// while no small message waits. Since it may block on the socket, a
// Handler must not call it (use SendBulk).
func (c *Conn) SendBulkInline(ctx context.Context, kind Kind, id uint64, buf *Buffer) error {
	if buf != nil && buf.Len() <= MaxFramePayload && buf.Len() <= c.maxSend && kind != 0 && kind <= KindMax {
		if took, err := c.sendDirect(outFrame{kind: kind, id: id, buf: buf}); took {
			return err
		}
	}
	return c.send(ctx, kind, id, buf, true)
}

// directMax is the largest message SendInline may write itself.
const directMax = 4 << 10

// SendInline is Send, except that when the connection is idle (the writer
// has nothing queued or buffered) a small message is written and flushed on
// the calling goroutine, which saves a hand-off to the writer: a lone call
// then crosses fewer goroutines, while busy connections still batch. Since
// it may block on the socket, a Handler must not call it (use Send).
func (c *Conn) SendInline(ctx context.Context, kind Kind, id uint64, buf *Buffer) error {
	if buf != nil && buf.Len() <= min(directMax, c.maxSend) && kind != 0 && kind <= KindMax {
		charge := buf.Len()
		if took, err := c.sendDirect(outFrame{kind: kind, id: id, buf: buf, charge: charge}); took {
			return err
		}
	}
	return c.Send(ctx, kind, id, buf)
}

func (c *Conn) enqueue(ctx context.Context, f outFrame) error {
	c.mu.Lock()
	for c.queued > 0 && c.queued+f.charge > c.cfg.MaxQueuedBytes && c.err == nil && !c.closing {
		space := c.space
		c.waiting++
		c.mu.Unlock()
		err := c.waitSpace(ctx, space)
		c.mu.Lock()
		c.waiting--
		if err != nil {
			c.mu.Unlock()
			c.drop(&f)
			return err
		}
	}
	if c.err != nil || c.closing {
		err := c.err
		c.mu.Unlock()
		c.drop(&f)
		if err == nil {
			err = ErrClosed
		}
		return err
	}
	c.queue = append(c.queue, f)
	c.queued += f.charge
	c.mu.Unlock()
	c.signal()
	return nil
}

// waitSpace waits for space to be closed (queue space freed) or ctx to
// end. If the writer writes nothing for StallTimeout meanwhile, the peer
// reads nothing: holding its messages longer only costs memory, so the
// connection fails with ErrPeerStalled.
func (c *Conn) waitSpace(ctx context.Context, space chan struct{}) error {
	stall := time.NewTimer(c.cfg.StallTimeout)
	defer stall.Stop()
	for {
		select {
		case <-space:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-stall.C:
			idle := time.Since(c.start) - time.Duration(c.lastWrite.Load())
			if idle < c.cfg.StallTimeout {
				stall.Reset(c.cfg.StallTimeout - idle) // still writing, slowly
				continue
			}
			err := fmt.Errorf("%w: nothing written for %v with the write queue full", ErrPeerStalled, c.cfg.StallTimeout)
			c.log.Info("transport: closing connection", "err", err)
			c.fail(err)
			return err
		}
	}
}

// signal wakes the writer.
func (c *Conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// freeSpace wakes the Sends waiting for queue space. c.mu must be held.
func (c *Conn) freeSpace() {
	if c.waiting > 0 && c.err == nil {
		close(c.space)
		c.space = make(chan struct{})
	}
}

// sendControl asks the writer for a control frame. It bypasses the queue
// limit and the closing flag (pongs are still due while closing).
func (c *Conn) sendControl(kind Kind, id uint64) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	switch kind {
	case framePing:
		c.ctl.ping, c.ctl.pingID = true, id
	case framePong:
		c.ctl.pong, c.ctl.pongID = true, id
	case frameGoAway:
		c.ctl.goAway = true
	}
	c.mu.Unlock()
	c.signal()
}

// readLoop is the connection's only reader: it parses frames, reassembles
// fragmented messages and delivers them to h.
func (c *Conn) readLoop(h Handler, fr *frameReader) {
	err := c.readFrames(fr, h)
	if err == errMoved {
		return // another goroutine reads now (see ReadOn)
	}
	defer c.exit()
	fr.release() // nothing more is read: what partial messages held is free
	if c.cfg.Budget != nil {
		c.cfg.Budget.leave()
	}
	c.fail(err)
	h.HandleClosed(c.Err())
}

// newReader returns the frame reader of the connection, reading r.
func (c *Conn) newReader(r io.Reader, h Handler) *frameReader {
	fr := newFrameReader(r, c.cfg.MaxMessageSize, c.cfg.MaxPartialBytes)
	if fr.budget = c.cfg.Budget; fr.budget != nil {
		fr.budget.join()
	}
	fr.onFrame = func() { c.lastRecv.Store(int64(time.Since(c.start))) }
	if bh, ok := h.(BodyHandler); ok {
		fr.wantBody = bh.WantBody
	}
	c.fr = fr
	return fr
}

// read delivers what arrives on r to h until an error, which it returns.
func (c *Conn) read(r io.Reader, h Handler) error {
	return c.readFrames(c.newReader(r, h), h)
}

// readFrames delivers what fr reads to h until an error, which it returns;
// errMoved when reading moved to another goroutine (see ReadOn).
func (c *Conn) readFrames(fr *frameReader, h Handler) error {
	bh, _ := h.(BodyHandler)
	for {
		if c.owed.Load() > c.owedMax {
			if err := c.waitOwed(); err != nil {
				return err
			}
		}
		fh, payload, err := fr.next()
		if err != nil {
			return c.readErr(err)
		}
		if c.failed.Load() {
			// Closed: what is still buffered is not delivered, so that no
			// call of a closed connection starts.
			return c.Err()
		}
		switch fh.Kind {
		case framePing:
			c.sendControl(framePong, fh.ID)
		case framePong:
		case frameGoAway:
			if c.goneAway.CompareAndSwap(false, true) {
				h.HandleGoAway()
			}
		default:
			if fr.body.active {
				err := bh.HandleBody(fh.Kind, fh.ID, &fr.body)
				if rerr := fr.body.end(); rerr != nil {
					return c.readErr(rerr) // the connection failed: that is why
				}
				if err != nil {
					return err
				}
				continue
			}
			t := c.beginHandling()
			err := h.HandleMessage(fh.Kind, fh.ID, payload)
			if !c.endHandling(t) {
				if err != nil {
					c.Abort(err) // the new reader ends with it
				}
				return errMoved
			}
			if err != nil {
				return err
			}
		}
	}
}

// waitOwed makes the reader wait, reading nothing, while the connection
// owes its peer more than owedMax bytes of replies (see SendReply). The
// peer's silence meanwhile is ours: the keepalive does not count it. If
// the writer sends nothing for StallTimeout, the peer reads nothing, and
// the connection fails with ErrPeerStalled.
func (c *Conn) waitOwed() error {
	c.paused.Store(true)
	defer func() {
		c.lastRecv.Store(int64(time.Since(c.start)))
		c.paused.Store(false)
	}()
	stall := time.NewTimer(c.cfg.StallTimeout)
	defer stall.Stop()
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return err
		}
		if c.owed.Load() <= c.owedMax {
			c.mu.Unlock()
			return nil
		}
		space := c.space
		c.waiting++
		c.mu.Unlock()
		var err error
		select {
		case <-space:
			stall.Reset(c.cfg.StallTimeout)
		case <-stall.C:
			if idle := time.Since(c.start) - time.Duration(c.lastWrite.Load()); idle < c.cfg.StallTimeout {
				stall.Reset(c.cfg.StallTimeout - idle) // still writing, slowly
				break
			}
			err = fmt.Errorf("%w: nothing written for %v while %d bytes of replies wait", ErrPeerStalled, c.cfg.StallTimeout, c.owed.Load())
			c.log.Info("transport: closing connection", "err", err)
			c.fail(err)
		}
		c.mu.Lock()
		c.waiting--
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// Paused reports whether the connection reads nothing for now because it
// owes its peer too many replies (see SendReply).
func (c *Conn) Paused() bool { return c.paused.Load() }

// readErr turns a frameReader error into the reason the connection closes.
func (c *Conn) readErr(err error) error {
	c.mu.Lock()
	closing, cerr := c.closing, c.err
	c.mu.Unlock()
	if cerr != nil {
		return cerr // the connection was closed from our side: say why
	}
	var re *readError
	if !errors.As(err, &re) {
		return err // a protocol error
	}
	switch {
	case closing:
		return ErrClosed
	case errors.Is(re.err, io.EOF):
		return ErrPeerGone
	case errors.Is(re.err, io.ErrUnexpectedEOF):
		return &ProtocolError{Reason: "connection closed inside a " + re.what}
	}
	return err
}

// keepalive pings the peer when it has been silent for KeepaliveInterval,
// again every interval while it stays silent, and closes the connection
// with ErrPeerTimeout when it has been silent for KeepaliveTimeout.
func (c *Conn) keepalive() {
	defer c.exit()
	interval, timeout := c.cfg.KeepaliveInterval, c.cfg.KeepaliveTimeout
	t := time.NewTimer(interval)
	defer t.Stop()
	var nonce uint64
	lastPing := -interval
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		now := time.Since(c.start)
		idle := now - time.Duration(c.lastRecv.Load())
		if idle >= timeout && !c.paused.Load() { // paused: the silence is ours
			c.fail(ErrPeerTimeout)
			return
		}
		if idle >= interval && now-lastPing >= interval {
			nonce++
			c.sendControl(framePing, nonce)
			lastPing = now
		}
		next := timeout - idle
		if d := interval - idle; d > 0 {
			next = min(next, d)
		} else {
			next = min(next, lastPing+interval-now)
		}
		t.Reset(max(next, time.Millisecond))
	}
}

// fail closes the connection at once with err as the reason. The first
// reason wins.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.failed.Store(true)
	queue := c.queue
	c.queue = nil
	close(c.space) // wakes every waiting Send, which then sees c.err
	c.mu.Unlock()
	for i := range queue {
		c.drop(&queue[i])
	}
	switch {
	case errors.Is(err, ErrClosed):
	case errors.Is(err, ErrPeerGone) && c.goneAway.Load():
		c.log.Debug("transport: connection closed by peer after goodbye")
	default:
		c.log.Info("transport: connection closed", "reason", err)
	}
	close(c.done)
	c.nc.Close()
	if c.onClose != nil {
		c.onClose()
	}
}

// Close closes the connection gracefully: it stops accepting Sends, tells
// the peer with a GoAway frame, writes everything queued, and closes. It
// waits for the connection's goroutines to end (so the Handler has seen
// HandleClosed), at most until ctx is done: then it closes at once, waits
// for the goroutines, which end promptly, and returns ctx.Err(). It returns
// nil otherwise, also when the connection was already closed. A Handler
// must not call it (use Abort).
func (c *Conn) Close(ctx context.Context) error {
	c.mu.Lock()
	started := c.started
	if started && !c.closing && c.err == nil {
		c.closing = true
		c.ctl.goAway = true
		c.freeSpace() // blocked Sends now fail with ErrClosed
	}
	c.mu.Unlock()
	if !started {
		c.fail(ErrClosed) // nothing runs: nothing to drain
		return nil
	}
	c.signal()
	select {
	case <-c.stopped:
		return nil
	default:
	}
	select {
	case <-c.stopped:
		return nil
	case <-ctx.Done():
		c.fail(ErrClosed)
		<-c.stopped
		return ctx.Err()
	}
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
// Abort or failure). It returns at once if Start was never called. A Handler
// must not call it.
func (c *Conn) Wait() {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if started {
		<-c.stopped
	}
}

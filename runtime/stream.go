package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/transport"
)

// ErrStreamReset: a stream ended abnormally: its sender or receiver went
// away, it was cancelled, or its frames arrived out of order.
var ErrStreamReset = errors.New("trellis: stream reset")

// Stream flow control. The receiver grants credit; the sender never has
// more bytes in flight than granted. The window starts at initialWindow and
// doubles each time the reader finds its buffer empty, up to maxWindow;
// while calls wait for replies on the connection the stream arrives on, it
// is held to busyWindow, so that the bytes queued ahead of those replies
// stay few (a large window is worth bandwidth only when nothing else
// waits).
const (
	// streamChunk keeps a data message (envelope included) in one frame,
	// and its buffer, with the room transport.Buffer.ReadOnce asks for,
	// within the pooled size.
	streamChunk   = transport.MaxFramePayload - 4<<10
	initialWindow = 256 << 10
	busyWindow    = 512 << 10
	maxWindow     = 4 << 20
	// maxConnWindow bounds the windows of the streams received from one
	// node together: beyond it they keep the window they have.
	maxConnWindow = 8 << 20
	busyHold      = 50 * time.Millisecond
)

// One-way stream messages (kindStream), addressed like requests: the
// envelope's object is the stream ID and its method one of these.
const (
	opCredit = 1 // body: uvarint bytes granted
	opData   = 2 // body: uvarint seq, flags byte, data (or the error text)
	opCancel = 3 // no body: the receiver gives up
)

// Data flags.
const (
	dataEOF   = 1 << 0
	dataError = 1 << 1
)

// smallChunk is the size under which received stream data is copied
// rather than kept in the message that carried it.
const smallChunk = 4 << 10

// kindStream carries one-way stream messages; they are never answered.
const kindStream = 4

// streamTable holds a node's streams in both directions.
type streamTable struct {
	mu   sync.Mutex
	next uint64
	out  map[uint64]*outStream   // streams this node sends, by ID
	in   map[streamKey]*inStream // streams this node receives
	// windows sums the windows of the streams received from each node,
	// which grow only while the sum stays within maxConnWindow.
	windows map[NodeID]int

	patience atomic.Int64  // if not 0, replaces offerWait (in tests)
	filled   atomic.Uint64 // chunks read straight into a Read's buffer (fillStream)
	caught   atomic.Uint64 // of those, the chunks whose Read arrived in their middle
}

type streamKey struct {
	node NodeID
	id   uint64
}

func (t *streamTable) init() {
	t.out = make(map[uint64]*outStream)
	t.in = make(map[streamKey]*inStream)
	t.windows = make(map[NodeID]int)
}

// outStream is an exported reader: a pump sends its bytes to dest as the
// receiver grants credit.
type outStream struct {
	node   *Node
	id     uint64
	dest   NodeID
	src    io.Reader
	mu     sync.Mutex
	credit int
	wake   chan struct{} // capacity 1
	done   chan struct{} // closed on cancel
	once   sync.Once
	pump   bool
	reason error // why the stream was cancelled, told to the receiver
}

// exportStream exports r to node dest. Cancelling ctx (the call's context)
// before the stream ends resets it.
func (n *Node) exportStream(ctx context.Context, r io.Reader, dest NodeID) (StreamRef, error) {
	if r == nil {
		return StreamRef{}, nil
	}
	t := &n.streams
	t.mu.Lock()
	t.next++
	s := &outStream{node: n, id: t.next, dest: dest, src: r, wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.out[s.id] = s
	t.mu.Unlock()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { s.cancel(fmt.Errorf("%w: the call's context ended: %v", ErrStreamReset, context.Cause(ctx))) })
		go func() { <-s.done; stop() }()
	}
	return StreamRef{Node: n.cfg.ID, Stream: s.id}, nil
}

// cancel stops the stream: the pump ends and the source is closed. err, if
// not nil, is sent to the receiver.
func (s *outStream) cancel(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		running := s.pump
		s.reason = err
		s.mu.Unlock()
		close(s.done)
		t := &s.node.streams
		t.mu.Lock()
		delete(t.out, s.id)
		t.mu.Unlock()
		if !running {
			closeSource(s.src)
			if err != nil {
				s.node.sendData(s.dest, s.id, 0, dataError, []byte(err.Error()))
			}
		}
	})
}

func closeSource(r io.Reader) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

// grant adds credit and starts the pump if needed.
func (s *outStream) grant(n int) {
	s.mu.Lock()
	s.credit += n
	start := !s.pump
	s.pump = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if start {
		s.node.bg.Add(1)
		go s.run()
	}
}

// run pumps the source to the receiver within the granted credit. Each
// chunk is read from the source straight into the message that carries it.
func (s *outStream) run() {
	defer s.node.bg.Done()
	defer closeSource(s.src)
	var seq uint64
	cancelled := func() {
		s.mu.Lock()
		err := s.reason
		s.mu.Unlock()
		if err != nil {
			s.node.sendData(s.dest, s.id, seq, dataError, []byte(err.Error()))
		}
	}
	for {
		s.mu.Lock()
		credit := s.credit
		s.mu.Unlock()
		if credit == 0 {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				cancelled()
				return
			case <-s.node.stopped:
				s.node.sendData(s.dest, s.id, seq, dataError, []byte("sender node closing"))
				return
			}
		}
		select {
		case <-s.done:
			cancelled()
			return
		default:
		}
		p, buf, err := s.node.startStreamMsg(s.dest, opData, s.id)
		if err != nil {
			s.finish()
			return
		}
		buf.Write(appendDataHeader(buf.AvailableBuffer(), seq, 0))
		nr, err := buf.ReadOnce(s.src, min(credit, streamChunk))
		if nr > 0 {
			s.mu.Lock()
			s.credit -= nr
			s.mu.Unlock()
			if serr := p.sendErr(p.conn.SendBulkInline(context.Background(), kindStream, s.id, buf)); serr != nil {
				s.finish()
				return
			}
			seq++
		} else {
			transport.PutBuffer(buf)
		}
		switch {
		case err == io.EOF:
			s.node.sendData(s.dest, s.id, seq, dataEOF, nil)
			s.finish()
			return
		case err != nil:
			s.node.sendData(s.dest, s.id, seq, dataError, []byte(err.Error()))
			s.finish()
			return
		}
	}
}

// finish forgets a stream whose pump has ended.
func (s *outStream) finish() {
	s.once.Do(func() {
		close(s.done)
		t := &s.node.streams
		t.mu.Lock()
		delete(t.out, s.id)
		t.mu.Unlock()
	})
}

// sendStream sends a one-way stream message to node dst.
func (n *Node) sendStream(dst NodeID, op uint64, id uint64, body func(b []byte) []byte) error {
	return n.sendStreamMsg(dst, op, id, false, body)
}

// sendStreamMsg sends a stream message, as bulk data (see
// transport.Conn.SendBulk) when bulk is set.
func (n *Node) sendStreamMsg(dst NodeID, op uint64, id uint64, bulk bool, body func(b []byte) []byte) error {
	p, buf, err := n.startStreamMsg(dst, op, id)
	if err != nil {
		return err
	}
	if body != nil {
		buf.Write(body(buf.AvailableBuffer()))
	}
	if bulk {
		return p.sendErr(p.conn.SendBulk(context.Background(), kindStream, id, buf))
	}
	return p.send(context.Background(), kindStream, id, buf)
}

// startStreamMsg returns the next hop toward dst and a pooled buffer that
// holds the envelope of a stream message; the caller appends the body and
// sends it, or puts the buffer back.
func (n *Node) startStreamMsg(dst NodeID, op uint64, id uint64) (*peer, *transport.Buffer, error) {
	p, routed, err := n.route(dst, false)
	if err != nil {
		return nil, nil, err
	}
	req := request{object: id, method: op}
	if routed {
		req.routed, req.dst, req.src, req.ttl = true, dst, n.cfg.ID, DefaultMaxHops
	}
	buf := transport.GetBuffer()
	buf.Write(appendRequest(buf.AvailableBuffer(), &req))
	return p, buf, nil
}

// appendDataHeader appends what precedes the bytes of a data message.
func appendDataHeader(b []byte, seq uint64, flags byte) []byte {
	return append(binary.AppendUvarint(b, seq), flags)
}

// sendData sends stream data (and its end) as bulk data, behind calls.
func (n *Node) sendData(dst NodeID, id, seq uint64, flags byte, data []byte) error {
	return n.sendStreamMsg(dst, opData, id, true, func(b []byte) []byte {
		return append(appendDataHeader(b, seq, flags), data...)
	})
}

// inStream is an imported reader.
type inStream struct {
	node   *Node
	key    streamKey
	mu     sync.Mutex
	ready  chan struct{} // capacity 1: data or an end arrived
	queue  [][]byte
	owners []*transport.Payload // the received messages behind queue, in the same order (nil: a copy)
	queued int
	next   uint64 // expected sequence number
	err    error  // io.EOF, or why the stream ended

	window int // the window while the connection is not busy
	ahead  int // bytes granted and not yet read: in flight, queued or filled

	// A Read waiting for data with a large buffer offers it as target; the
	// connection's reader may then claim it (target nil, filling set) and
	// read a data message from the socket straight into it, then report
	// filled bytes there. While filling is set the Read does not return,
	// whatever happens to the stream meanwhile: the buffer is written to.
	target     []byte
	filling    bool
	filled     int
	receiving  bool          // a chunk is being read into a buffer of its own (fillStream)
	offered    chan struct{} // capacity 1: a Read offered its buffer, or the stream ended
	awaiting   bool          // fillStream waits for an offer (awaitOffer)
	waitsSmall bool          // a Read waits with a buffer too small to offer
	offers     bool          // the last Read had a buffer large enough to offer
	offerWait  *time.Timer   // bounds fillStream's wait for an offer (reader goroutine only)

	seenCalls atomic.Uint64 // the connection's call counter at the last look (connBusy)
	busyUntil atomic.Int64  // Unix ns until which the connection counts as busy
}

// streamReader is the io.ReadCloser handed to users; when it becomes
// unreachable, the stream is cancelled.
type streamReader struct {
	s       *inStream
	cleanup goruntime.Cleanup
}

// importStream returns the reader a stream handle from node from designates.
func (n *Node) importStream(r StreamRef, from NodeID) (io.ReadCloser, error) {
	if r.Stream == 0 {
		return nil, nil
	}
	if r.Node != from {
		return nil, fmt.Errorf("%w: node %s sent a stream of node %s", ErrBadRef, from, r.Node)
	}
	s := &inStream{node: n, key: streamKey{r.Node, r.Stream}, ready: make(chan struct{}, 1), offered: make(chan struct{}, 1), window: initialWindow, ahead: initialWindow}
	t := &n.streams
	t.mu.Lock()
	if t.in[s.key] != nil {
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: stream %d of node %s received twice", ErrBadRef, r.Stream, r.Node)
	}
	t.in[s.key] = s
	t.windows[r.Node] += s.window
	t.mu.Unlock()
	if p, _, err := n.route(r.Node, false); err == nil {
		// The calls made so far (the one that returns this stream among
		// them) do not make the connection busy: see connBusy.
		s.seenCalls.Store(p.nextCall.Load())
	}
	if err := n.sendStream(r.Node, opCredit, r.Stream, func(b []byte) []byte { return binary.AppendUvarint(b, initialWindow) }); err != nil {
		s.end(fmt.Errorf("%w: %v", ErrStreamReset, err))
	}
	sr := &streamReader{s: s}
	sr.cleanup = goruntime.AddCleanup(sr, func(s *inStream) { s.close() }, s)
	return sr, nil
}

// Read implements io.Reader: the remote read error arrives as its error.
func (r *streamReader) Read(p []byte) (int, error) {
	n, err := r.s.read(p)
	goruntime.KeepAlive(r) // no cleanup while a Read runs
	return n, err
}

// Close implements io.Closer: the sender stops and closes its source.
func (r *streamReader) Close() error {
	r.cleanup.Stop()
	r.s.close()
	return nil
}

// read is Read. A Read that finds nothing queued waits; with a buffer of
// more than smallChunk bytes it offers the buffer to the connection's
// reader, which may fill it straight from the socket (fillStream).
func (s *inStream) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	busy := s.connBusy()
	s.mu.Lock()
	s.offers = len(p) > smallChunk
	for {
		if s.filling { // p is being written to: wait for the end of it
			s.mu.Unlock()
			<-s.ready
			s.mu.Lock()
			continue
		}
		s.target = nil
		n := s.filled
		s.filled = 0
		for n < len(p) && len(s.queue) > 0 {
			c := copy(p[n:], s.queue[0])
			n += c
			s.queued -= c
			if c == len(s.queue[0]) {
				s.queue[0] = nil
				s.queue = s.queue[1:]
				if o := s.owners[0]; o != nil {
					o.Release()
				}
				s.owners[0] = nil
				s.owners = s.owners[1:]
			} else {
				s.queue[0] = s.queue[0][c:]
			}
		}
		if n > 0 {
			s.ahead -= n
			grant := 0
			if s.err == nil {
				if w := s.windowNow(busy); s.ahead <= w/2 {
					grant = w - s.ahead
				}
			}
			s.ahead += grant
			s.mu.Unlock()
			if grant > 0 {
				s.grant(grant)
			}
			return n, nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		// Starved after data had flowed: the window is too small for the
		// bandwidth × delay, so it doubles (a reader that is merely slow
		// never starves, and keeps the initial window).
		grant := 0
		if s.next > 0 && s.window < s.maxNow(busy) && s.node.streams.grow(s.key.node, s.window) {
			s.window *= 2
			grant = max(s.window-s.ahead, 0)
			s.ahead += grant
		}
		if len(p) > smallChunk {
			s.target = p
		} else {
			s.waitsSmall = true // nothing to offer: a waiting chunk must not wait for it
		}
		select { // wake fillStream if it waits for an offer
		case s.offered <- struct{}{}:
		default:
		}
		s.mu.Unlock()
		if grant > 0 {
			s.grant(grant)
		}
		<-s.ready
		busy = s.connBusy()
		s.mu.Lock()
		s.waitsSmall = false
	}
}

// windowNow is the window to grant up to; s.mu is held.
func (s *inStream) windowNow(busy bool) int {
	return min(s.window, s.maxNow(busy))
}

// maxNow is the largest window for the connection's state.
func (s *inStream) maxNow(busy bool) int {
	if busy {
		return busyWindow
	}
	return maxWindow
}

// connBusy reports whether calls wait for replies on the connection the
// stream's data arrives on, or did within the last busyHold: a lull
// between calls does not open the window.
func (s *inStream) connBusy() bool {
	p, _, err := s.node.route(s.key.node, false)
	if err != nil {
		return false
	}
	made := p.nextCall.Load()
	p.mu.Lock()
	waiting := len(p.calls) > 0
	p.mu.Unlock()
	now := time.Now().UnixNano()
	if waiting || s.seenCalls.Swap(made) != made {
		s.busyUntil.Store(now + int64(busyHold))
		return true
	}
	return now < s.busyUntil.Load()
}

// grant gives the sender n more bytes of credit. It runs on the reader's
// goroutine, never the connection's, so an idle connection takes the
// message at once (see transport.Conn.SendInline).
func (s *inStream) grant(n int) {
	p, buf, err := s.node.startStreamMsg(s.key.node, opCredit, s.key.id)
	if err != nil {
		return // the stream ends when the node is declared gone
	}
	buf.Write(binary.AppendUvarint(buf.AvailableBuffer(), uint64(n)))
	p.sendInline(context.Background(), kindStream, s.key.id, buf)
}

// deliver appends data that arrived (on the connection's reader goroutine).
// owner, if not nil, is the received message that holds data: the stream
// keeps it until data is read; otherwise data is copied.
func (s *inStream) deliver(seq uint64, flags byte, data []byte, owner *transport.Payload) error {
	kept := false
	defer func() {
		if owner != nil && !kept {
			owner.Release()
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil
	}
	switch {
	case seq != s.next:
		s.setErr(fmt.Errorf("%w: chunk %d arrived, expected %d", ErrStreamReset, seq, s.next))
	case flags&dataError != 0:
		s.setErr(&RemoteError{Message: string(data)})
	case flags&dataEOF != 0:
		s.setErr(io.EOF)
	default:
		if over := s.queued + s.filled + len(data) - s.ahead; over > 0 {
			return fmt.Errorf("stream %d of node %s: %d bytes beyond the granted window", s.key.id, s.key.node, over)
		}
		if owner == nil {
			data = append([]byte(nil), data...)
		}
		s.queue = append(s.queue, data)
		s.owners = append(s.owners, owner)
		kept = true
		s.queued += len(data)
		s.next++
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
	return nil
}

// setErr ends the stream with err; s.mu must be held.
func (s *inStream) setErr(err error) {
	if s.err == nil {
		s.err = err
		select { // stop fillStream waiting for an offer
		case s.offered <- struct{}{}:
		default:
		}
		t := &s.node.streams
		t.mu.Lock()
		if t.in[s.key] == s {
			delete(t.in, s.key)
			if t.windows[s.key.node] -= s.window; t.windows[s.key.node] <= 0 {
				delete(t.windows, s.key.node)
			}
		}
		t.mu.Unlock()
	}
}

// grow reserves extra bytes of window for a stream received from node
// from, reporting whether the node's streams stay within maxConnWindow.
func (t *streamTable) grow(from NodeID, extra int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.windows[from]+extra > maxConnWindow {
		return false
	}
	t.windows[from] += extra
	return true
}

// end ends the stream with err and wakes the reader.
func (s *inStream) end(err error) {
	s.mu.Lock()
	s.setErr(err)
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// close cancels the stream at the sender unless it has ended.
func (s *inStream) close() {
	s.mu.Lock()
	ended := s.err != nil
	s.setErr(fmt.Errorf("%w: reader closed", ErrStreamReset))
	for _, o := range s.owners {
		if o != nil {
			o.Release()
		}
	}
	s.queue, s.queued, s.owners = nil, 0, nil
	s.filled = 0
	s.mu.Unlock()
	select { // wake a Read blocked in another goroutine
	case s.ready <- struct{}{}:
	default:
	}
	if !ended {
		s.node.sendStream(s.key.node, opCancel, s.key.id, nil)
	}
}

// WantBody implements transport.BodyHandler: the stream messages large
// enough to carry a chunk worth keeping go to HandleBody, which can read
// their data straight into the Read waiting for it.
func (p *peer) WantBody(kind transport.Kind, n int) bool {
	return kind == kindStream && n > smallChunk
}

// HandleBody implements transport.BodyHandler.
func (p *peer) HandleBody(kind transport.Kind, id uint64, body *transport.Body) error {
	if kind == kindStream {
		return p.node.handleStreamBody(p, body)
	}
	payload, err := body.Bytes()
	if err != nil {
		return err
	}
	return p.HandleMessage(kind, id, payload)
}

// handleStreamBody handles a stream message whose payload is still on the
// connection (reader goroutine). The data of a chunk for a local stream
// whose Read waits goes straight into the Read's buffer (fillStream);
// everything else (relayed messages, credit, ends, malformed envelopes) is
// read whole and handled by handleStream.
func (n *Node) handleStreamBody(p *peer, body *transport.Body) error {
	head, err := body.Peek(transport.MaxPeek)
	if err != nil {
		return err // the connection failed: the transport says why
	}
	var req request
	if parseRequest(head, &req) == nil && req.method == opData && (!req.routed || req.dst == n.cfg.ID) {
		seq, k := binary.Uvarint(req.body)
		if k > 0 && len(req.body) > k && req.body[k] == 0 { // plain data, its header within head
			from := p.id
			if req.routed {
				from = req.src
			}
			prefix := len(head) - len(req.body) + k + 1
			if took, err := n.fillStream(body, streamKey{from, req.object}, seq, prefix); took {
				return err
			}
		}
	}
	payload, err := body.Bytes()
	if err != nil {
		return err
	}
	return n.handleStream(p, payload)
}

// fillPiece is the most fillStream reads at once into a chunk's own
// buffer while no Read waits, so that a Read arriving meanwhile gets the
// rest of the chunk straight into its buffer.
const fillPiece = 32 << 10

// fillStream reads the data of a chunk (body, after prefix bytes of
// envelope) for the stream key. It takes only a chunk that deliver would
// accept as is (the next in sequence, within the window), and reports
// whether it took it; the others are left to handleStream, which checks
// them and says what was wrong. The data goes into the buffer a waiting
// Read offers (on a connection where no call waits, for a reader that
// has caught up, fillStream first waits a little for the offer: see
// offerWait); failing that, into a
// buffer of its own, a piece at a time: a Read that arrives meanwhile
// takes the pieces read so far (copied) and the rest straight from the
// socket. What does not fit the Read's buffer is queued.
func (n *Node) fillStream(body *transport.Body, key streamKey, seq uint64, prefix int) (bool, error) {
	n.streams.mu.Lock()
	s := n.streams.in[key]
	n.streams.mu.Unlock()
	if s == nil {
		return false, nil
	}
	size := body.Len() - prefix
	busy := s.connBusy()
	s.mu.Lock()
	if s.err != nil || seq != s.next || s.queued+s.filled+size > s.ahead {
		s.mu.Unlock()
		return false, nil
	}
	if s.target == nil && s.next > 0 && !busy && len(s.queue) == 0 && s.offers {
		s.awaitOffer() // the reader is coming back for more, with a buffer to offer
	}
	dst := s.claim(size)
	s.mu.Unlock()

	err := body.Discard(prefix)
	var own *transport.Payload // the chunk's own buffer, if it needs one
	var b []byte
	got := 0 // bytes of b read
	if err == nil && dst == nil {
		own = transport.NewPayload(size)
		b = own.Bytes()
		s.mu.Lock()
		s.receiving = true
		s.mu.Unlock()
		for err == nil && got < size && dst == nil {
			end := got + fillPiece
			if size-end < fillPiece/2 {
				end = size // no small piece at the end
			}
			var k int
			k, err = body.Read(b[got:end])
			got += k
			if err == nil && got < size {
				s.mu.Lock()
				dst = s.claim(size)
				s.mu.Unlock()
			}
		}
		if dst != nil {
			copy(dst, b[:got])
		}
	}
	rest := 0 // where the bytes queued start: after those in dst
	if dst != nil {
		rest = len(dst)
		if err == nil && got < len(dst) {
			err = body.ReadFull(dst[got:])
		}
	}
	if err == nil && rest < size {
		if own == nil {
			own = transport.NewPayload(size)
			b = own.Bytes()
		}
		err = body.ReadFull(b[max(got, rest):size])
	}
	s.mu.Lock()
	caught := s.receiving && dst != nil
	s.filling, s.receiving = false, false
	if err == nil && s.err == nil {
		s.next++
		if dst != nil {
			s.filled = len(dst)
			n.streams.filled.Add(1)
		}
		if caught {
			n.streams.caught.Add(1)
		}
		if rest < size {
			s.queue = append(s.queue, b[rest:size])
			s.owners = append(s.owners, own)
			s.queued += size - rest
			own = nil
		}
	}
	s.mu.Unlock()
	if own != nil {
		own.Release()
	}
	select { // wake the Read (which waits while filling is set)
	case s.ready <- struct{}{}:
	default:
	}
	return true, err
}

// offerWait is how long fillStream waits, on a connection where no call
// waits for a reply, for the Read of a stream that is being read to offer
// its buffer: about the time a reader takes to come back for more, so
// that the chunk waits in the socket, as in a plain TCP copy, rather than
// in a buffer from which it must be copied. A reader slower than that
// finds its chunks queued. The connection reads nothing while fillStream
// waits, which is why it waits only while no call waits for a reply.
const offerWait = 500 * time.Microsecond

// awaitOffer waits, at most offerWait, for a Read to offer its buffer or
// the stream to end. s.mu is held; it is released while waiting.
func (s *inStream) awaitOffer() {
	wait := offerWait
	if d := s.node.streams.patience.Load(); d != 0 {
		wait = time.Duration(d)
	}
	if s.offerWait == nil {
		s.offerWait = time.NewTimer(wait)
	} else {
		s.offerWait.Reset(wait)
	}
	s.awaiting = true
	defer func() { s.awaiting = false }()
	for s.target == nil && s.err == nil && !s.waitsSmall {
		s.mu.Unlock()
		select {
		case <-s.offered:
			s.mu.Lock()
			continue
		case <-s.offerWait.C:
		}
		s.mu.Lock()
		return
	}
	s.offerWait.Stop()
}

// claim takes the buffer a waiting Read offers, if any and if nothing is
// queued before it, for a chunk of size bytes: the part the chunk fills.
// s.mu is held.
func (s *inStream) claim(size int) []byte {
	if s.target == nil || s.err != nil || len(s.queue) > 0 || s.filled > 0 {
		return nil // (data that arrived before, since the offer, goes first)
	}
	dst := s.target[:min(len(s.target), size)]
	s.target, s.filling = nil, true
	return dst
}

// handleStream handles a one-way stream message from p (reader goroutine).
func (n *Node) handleStream(p *peer, payload []byte) error {
	var req request
	if err := parseRequest(payload, &req); err != nil {
		return &transport.ProtocolError{Reason: fmt.Sprintf("stream message: %v", err)}
	}
	if req.routed && req.dst != n.cfg.ID {
		if req.ttl == 0 {
			return nil // dropped; the stream's ends time out or are reset
		}
		q, _, err := n.route(req.dst, false)
		if err != nil || q == p {
			return nil
		}
		buf := nextHopCopy(payload)
		if req.method == opData {
			q.sendErr(q.conn.SendBulk(context.Background(), kindStream, req.object, buf))
		} else {
			q.send(context.Background(), kindStream, req.object, buf)
		}
		return nil
	}
	from := p.id
	if req.routed {
		from = req.src
	}
	body := req.body
	switch req.method {
	case opCredit:
		grant, k := binary.Uvarint(body)
		if k <= 0 || grant == 0 || grant > maxWindow {
			return &transport.ProtocolError{Reason: "bad stream credit"}
		}
		n.streams.mu.Lock()
		s := n.streams.out[req.object]
		n.streams.mu.Unlock()
		if s != nil && s.dest == from {
			s.grant(int(grant))
		}
	case opCancel:
		n.streams.mu.Lock()
		s := n.streams.out[req.object]
		n.streams.mu.Unlock()
		if s != nil && s.dest == from {
			s.cancel(nil)
		}
	case opData:
		seq, k := binary.Uvarint(body)
		if k <= 0 || len(body) < k+1 {
			return &transport.ProtocolError{Reason: "bad stream data"}
		}
		n.streams.mu.Lock()
		s := n.streams.in[streamKey{from, req.object}]
		n.streams.mu.Unlock()
		if s != nil {
			data := body[k+1:]
			var owner *transport.Payload
			if len(data) > smallChunk {
				owner = p.conn.TakePayload()
			}
			if err := s.deliver(seq, body[k], data, owner); err != nil {
				return &transport.ProtocolError{Reason: err.Error()}
			}
		}
	default:
		return &transport.ProtocolError{Reason: fmt.Sprintf("unknown stream operation %d", req.method)}
	}
	return nil
}

// forgetStreams resets the streams exchanged with node id.
func (n *Node) forgetStreams(id NodeID) {
	t := &n.streams
	t.mu.Lock()
	var out []*outStream
	for _, s := range t.out {
		if s.dest == id {
			out = append(out, s)
		}
	}
	var in []*inStream
	for k, s := range t.in {
		if k.node == id {
			in = append(in, s)
		}
	}
	t.mu.Unlock()
	for _, s := range out {
		s.cancel(nil)
	}
	for _, s := range in {
		s.end(fmt.Errorf("%w: node %s is gone", ErrStreamReset, id))
	}
}

// StreamStats counts a node's streams.
func (n *Node) StreamStats() (sending, receiving int) {
	t := &n.streams
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.out), len(t.in)
}

// cancelStream cancels a stream this node exports, closing its source.
func (n *Node) cancelStream(id uint64) {
	n.streams.mu.Lock()
	s := n.streams.out[id]
	n.streams.mu.Unlock()
	if s != nil {
		s.cancel(nil)
	}
}

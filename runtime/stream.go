package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"sync"

	"github.com/trellisrpc/trellis/transport"
)

// ErrStreamReset: a stream ended abnormally: its sender or receiver went
// away, it was cancelled, or its frames arrived out of order.
var ErrStreamReset = errors.New("trellis: stream reset")

// Stream flow control. The receiver grants credit; the sender never has
// more bytes in flight than granted. The window starts at initialWindow and
// doubles each time the reader finds its buffer empty, up to maxWindow.
const (
	// streamChunk keeps a data message (envelope included) in one frame.
	streamChunk   = transport.MaxFramePayload - 64
	initialWindow = 256 << 10
	maxWindow     = 512 << 10
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

// kindStream carries one-way stream messages; they are never answered.
const kindStream = 4

// streamTable holds a node's streams in both directions.
type streamTable struct {
	mu   sync.Mutex
	next uint64
	out  map[uint64]*outStream   // streams this node sends, by ID
	in   map[streamKey]*inStream // streams this node receives
}

type streamKey struct {
	node NodeID
	id   uint64
}

func (t *streamTable) init() {
	t.out = make(map[uint64]*outStream)
	t.in = make(map[streamKey]*inStream)
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

// run pumps the source to the receiver within the granted credit.
func (s *outStream) run() {
	defer s.node.bg.Done()
	defer closeSource(s.src)
	var seq uint64
	buf := make([]byte, streamChunk)
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
		nr, err := s.src.Read(buf[:min(credit, streamChunk)])
		if nr > 0 {
			s.mu.Lock()
			s.credit -= nr
			s.mu.Unlock()
			if serr := s.node.sendData(s.dest, s.id, seq, 0, buf[:nr]); serr != nil {
				s.finish()
				return
			}
			seq++
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
	p, routed, err := n.route(dst, false)
	if err != nil {
		return err
	}
	req := request{object: id, method: op}
	if routed {
		req.routed, req.dst, req.src, req.ttl = true, dst, n.cfg.ID, DefaultMaxHops
	}
	buf := transport.GetBuffer()
	b := appendRequest(buf.AvailableBuffer(), &req)
	if body != nil {
		b = body(b)
	}
	buf.Write(b)
	if bulk {
		return p.sendErr(p.conn.SendBulk(context.Background(), kindStream, id, buf))
	}
	return p.send(context.Background(), kindStream, id, buf)
}

// sendData sends stream data (and its end) as bulk data, behind calls.
func (n *Node) sendData(dst NodeID, id, seq uint64, flags byte, data []byte) error {
	return n.sendStreamMsg(dst, opData, id, true, func(b []byte) []byte {
		b = binary.AppendUvarint(b, seq)
		b = append(b, flags)
		return append(b, data...)
	})
}

// inStream is an imported reader.
type inStream struct {
	node   *Node
	key    streamKey
	mu     sync.Mutex
	ready  chan struct{} // capacity 1: data or an end arrived
	queue  [][]byte
	queued int
	next   uint64 // expected sequence number
	err    error  // io.EOF, or why the stream ended

	window   int       // bytes the sender may have in flight
	consumed int       // bytes read since the last grant
	chunks   []*[]byte // pooled buffers behind queue, in the same order
}

// chunkPool recycles the buffers of received stream data.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, streamChunk); return &b }}

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
	s := &inStream{node: n, key: streamKey{r.Node, r.Stream}, ready: make(chan struct{}, 1), window: initialWindow}
	t := &n.streams
	t.mu.Lock()
	if t.in[s.key] != nil {
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: stream %d of node %s received twice", ErrBadRef, r.Stream, r.Node)
	}
	t.in[s.key] = s
	t.mu.Unlock()
	if err := n.sendStream(r.Node, opCredit, r.Stream, func(b []byte) []byte { return binary.AppendUvarint(b, initialWindow) }); err != nil {
		s.end(fmt.Errorf("%w: %v", ErrStreamReset, err))
	}
	sr := &streamReader{s: s}
	sr.cleanup = goruntime.AddCleanup(sr, func(s *inStream) { s.close() }, s)
	return sr, nil
}

// Read implements io.Reader: the remote read error arrives as its error.
func (r *streamReader) Read(p []byte) (int, error) { return r.s.read(p) }

// Close implements io.Closer: the sender stops and closes its source.
func (r *streamReader) Close() error {
	r.cleanup.Stop()
	r.s.close()
	return nil
}

func (s *inStream) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			n := 0
			for n < len(p) && len(s.queue) > 0 {
				c := copy(p[n:], s.queue[0])
				n += c
				if c == len(s.queue[0]) {
					s.queue[0] = nil
					s.queue = s.queue[1:]
					chunkPool.Put(s.chunks[0])
					s.chunks[0] = nil
					s.chunks = s.chunks[1:]
				} else {
					s.queue[0] = s.queue[0][c:]
				}
			}
			s.queued -= n
			s.consumed += n
			grant := 0
			if s.consumed >= s.window/2 && s.err == nil {
				grant, s.consumed = s.consumed, 0
			}
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
		extra := 0
		if s.next > 0 && s.window < maxWindow {
			extra = s.window
			s.window *= 2
		}
		s.mu.Unlock()
		if extra > 0 {
			s.grant(extra)
		}
		<-s.ready
	}
}

func (s *inStream) grant(n int) {
	s.node.sendStream(s.key.node, opCredit, s.key.id, func(b []byte) []byte { return binary.AppendUvarint(b, uint64(n)) })
}

// deliver appends data that arrived (on the connection's reader goroutine).
func (s *inStream) deliver(seq uint64, flags byte, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil
	}
	if seq != s.next {
		s.setErr(fmt.Errorf("%w: chunk %d arrived, expected %d", ErrStreamReset, seq, s.next))
		return nil
	}
	switch {
	case flags&dataError != 0:
		s.setErr(&RemoteError{Message: string(data)})
	case flags&dataEOF != 0:
		s.setErr(io.EOF)
	default:
		if s.queued+len(data) > s.window+streamChunk {
			return fmt.Errorf("stream %d of node %s: %d bytes beyond the granted window", s.key.id, s.key.node, s.queued+len(data)-s.window)
		}
		chunk := chunkPool.Get().(*[]byte)
		*chunk = append((*chunk)[:0], data...)
		s.queue = append(s.queue, *chunk)
		s.chunks = append(s.chunks, chunk)
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
		t := &s.node.streams
		t.mu.Lock()
		if t.in[s.key] == s {
			delete(t.in, s.key)
		}
		t.mu.Unlock()
	}
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
	for _, c := range s.chunks {
		chunkPool.Put(c)
	}
	s.queue, s.queued, s.chunks = nil, 0, nil
	s.mu.Unlock()
	select { // wake a Read blocked in another goroutine
	case s.ready <- struct{}{}:
	default:
	}
	if !ended {
		s.node.sendStream(s.key.node, opCancel, s.key.id, nil)
	}
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
			if err := s.deliver(seq, body[k], body[k+1:]); err != nil {
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

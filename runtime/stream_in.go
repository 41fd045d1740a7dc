package runtime

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

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
	// counted: the stream counts in its node's streams and window
	// (streamTable.receiving and windows) until it has ended and what it
	// queued is read or dropped.
	counted bool

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
func (n *Node) importStream(r codegen.StreamRef, from NodeID) (io.ReadCloser, error) {
	if r.Stream == 0 {
		return nil, nil
	}
	if r.Node != from {
		return nil, fmt.Errorf("%w: node %s sent a stream of node %s", ErrBadRef, from, r.Node)
	}
	s := &inStream{node: n, key: streamKey{r.Node, r.Stream}, ready: make(chan struct{}, 1), offered: make(chan struct{}, 1), counted: true}
	t := &n.streams
	t.mu.Lock()
	if t.in[s.key] != nil {
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: stream %d of node %s received twice", ErrBadRef, r.Stream, r.Node)
	}
	if held := t.receiving[r.Node]; held >= n.cfg.MaxStreamsPerPeer {
		t.mu.Unlock()
		n.sendStream(r.Node, opCancel, r.Stream, nil) // the sender closes its source
		return nil, fmt.Errorf("%w: node %s sent %d streams node %s has not finished (MaxStreamsPerPeer)", ErrTooManyRefs, r.Node, held, n.cfg.Name)
	}
	// The streams of one node share maxConnWindow: once they hold it, a
	// new one starts with minWindow, so that a peer cannot make this node
	// hold a full window of data for each of many streams it sends.
	s.window = max(minWindow, min(initialWindow, maxConnWindow-t.windows[r.Node]))
	s.ahead = s.window
	t.in[s.key] = s
	t.receiving[r.Node]++
	t.windows[r.Node] += s.window
	t.mu.Unlock()
	if p, _, err := n.route(r.Node, false); err == nil {
		// The calls made so far (the one that returns this stream among
		// them) do not make the connection busy: see connBusy.
		s.seenCalls.Store(p.nextCall.Load())
	}
	if err := n.sendStream(r.Node, opCredit, r.Stream, func(b []byte) []byte { return binary.AppendUvarint(b, uint64(s.ahead)) }); err != nil {
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
			if s.err != nil && len(s.queue) == 0 {
				s.uncount() // ended, and all read
			}
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
	case flags&(dataError|dataReset) == dataError|dataReset:
		s.setErr(streamResetError(string(data)))
	case flags&dataError != 0:
		s.setErr(&RemoteError{Message: string(data)})
	case flags&dataEOF != 0:
		s.setErr(io.EOF)
	case len(data) == 0:
		// A sender sends data only when it has some: empty chunks would
		// each hold a queue entry without counting against the window.
		return fmt.Errorf("stream %d of node %s: chunk %d holds no data", s.key.id, s.key.node, seq)
	default:
		if over := s.queued + s.filled + len(data) - s.ahead; over > 0 {
			return fmt.Errorf("stream %d of node %s: %d bytes beyond the granted window", s.key.id, s.key.node, over)
		}
		last := len(s.queue) - 1
		switch {
		case owner == nil && last >= 0 && s.owners[last] == nil:
			// A small chunk after a copied one joins it, so that a
			// window's worth of tiny chunks holds about the window, not
			// a slice and a queue entry for each.
			s.queue[last] = append(s.queue[last], data...)
		case owner == nil:
			s.queue = append(s.queue, append([]byte(nil), data...))
			s.owners = append(s.owners, nil)
		default:
			s.queue = append(s.queue, data)
			s.owners = append(s.owners, owner)
			kept = true
		}
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
		}
		t.mu.Unlock()
		if len(s.queue) == 0 {
			s.uncount()
		}
	}
}

// uncount takes the stream out of its node's counts, once (see counted);
// s.mu is held.
func (s *inStream) uncount() {
	if !s.counted {
		return
	}
	s.counted = false
	t := &s.node.streams
	t.mu.Lock()
	if t.windows[s.key.node] -= s.window; t.windows[s.key.node] <= 0 {
		delete(t.windows, s.key.node)
	}
	if t.receiving[s.key.node]--; t.receiving[s.key.node] <= 0 {
		delete(t.receiving, s.key.node)
	}
	t.mu.Unlock()
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
	s.uncount()
	s.mu.Unlock()
	select { // wake a Read blocked in another goroutine
	case s.ready <- struct{}{}:
	default:
	}
	if !ended {
		s.node.sendStream(s.key.node, opCancel, s.key.id, nil)
	}
}

// A streamResetError is a stream reset reported by the stream's sender or
// a relay (see dataReset): its text as sent, for which
// errors.Is(err, ErrStreamReset) holds.
type streamResetError string

func (e streamResetError) Error() string        { return string(e) }
func (e streamResetError) Is(target error) bool { return target == ErrStreamReset }

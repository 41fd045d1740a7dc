package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/transport"
)

// ErrStreamReset: a stream ended abnormally: its sender or receiver went
// away, it was cancelled, its frames arrived out of order, or a chunk
// could not be sent or relayed (a relay's next link with a smaller
// Config.MaxMessageSize, say); the error says which, and where.
var ErrStreamReset = errors.New("trellis: stream reset")

// Stream flow control. The receiver grants credit; the sender never has
// more bytes in flight than granted. The window starts at initialWindow
// (minWindow once the streams from the same node hold maxConnWindow) and
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
	// minWindow is the window a stream starts with when the others from
	// its node hold maxConnWindow already.
	minWindow = 16 << 10
	busyHold  = 50 * time.Millisecond
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
	dataError = 1 << 1 // the data is the text of the sender's read error
	// dataReset, with dataError: the stream failed in the machinery (the
	// text says why), and the receiver's Read fails with ErrStreamReset;
	// the receiver tells the sender to stop, in case it still runs (a
	// relay that could not forward a chunk sends it). A receiver that does
	// not know this flag takes it for a read error.
	dataReset = 1 << 2
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
	out  map[uint64]*outStream // streams this node sends, by ID
	// sending counts the streams in out by destination, which
	// Config.MaxStreamsPerPeer caps.
	sending map[NodeID]int
	in      map[streamKey]*inStream // streams this node receives
	// windows sums the windows of the streams received from each node,
	// which grow only while the sum stays within maxConnWindow;
	// receiving counts those streams (see inStream.counted).
	windows   map[NodeID]int
	receiving map[NodeID]int

	patience atomic.Int64 // if not 0, replaces offerWait (in tests)
	// chunkErr, if set, is the error of every chunk a pump sends: they
	// fail without being sent (in tests).
	chunkErr atomic.Pointer[error]
	filled   atomic.Uint64 // chunks read straight into a Read's buffer (fillStream)
	caught   atomic.Uint64 // of those, the chunks whose Read arrived in their middle
}

type streamKey struct {
	node NodeID
	id   uint64
}

func (t *streamTable) init() {
	t.out = make(map[uint64]*outStream)
	t.sending = make(map[NodeID]int)
	t.in = make(map[streamKey]*inStream)
	t.windows = make(map[NodeID]int)
	t.receiving = make(map[NodeID]int)
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

// chunkFault returns the error a test set for every chunk, or nil.
func (t *streamTable) chunkFault() error {
	if p := t.chunkErr.Load(); p != nil {
		return *p
	}
	return nil
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

// handleStream handles a one-way stream message from p (reader goroutine).
func (n *Node) handleStream(p *peer, payload []byte) error {
	var req request
	if err := parseRequest(payload, &req); err != nil {
		return &transport.ProtocolError{Reason: fmt.Sprintf("stream message: %v", err)}
	}
	if req.routed && !n.plausibleSource(p, req.src) {
		n.implausible(p, req.src, "stream")
		return nil // dropped: the stream's ends time out or are reset
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
			if err := q.sendErr(q.conn.SendBulk(context.Background(), kindStream, req.object, buf)); errors.Is(err, ErrTooLarge) {
				n.relayChunkRefused(q, &req, err)
			}
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
			if body[k]&(dataError|dataReset) == dataError|dataReset {
				// The sender may still run if a relay reset the stream.
				n.sendStream(from, opCancel, req.object, nil)
			}
		}
	default:
		return &transport.ProtocolError{Reason: fmt.Sprintf("unknown stream operation %d", req.method)}
	}
	return nil
}

// removeOut forgets a stream this node sends, once it has ended.
func (t *streamTable) removeOut(s *outStream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.out[s.id] != s {
		return
	}
	delete(t.out, s.id)
	if t.sending[s.dest]--; t.sending[s.dest] <= 0 {
		delete(t.sending, s.dest)
	}
}

// relayChunkRefused resets a stream one of whose chunks, routed from
// req.src to req.dst, exceeds the cap of the next hop q: the receiver is
// sent the reset in the chunk's place (and then cancels the sender), so
// that neither waits for ever.
func (n *Node) relayChunkRefused(q *peer, req *request, err error) {
	seq, k := binary.Uvarint(req.body)
	if k <= 0 || req.ttl == 0 {
		return
	}
	n.log.Warn("trellis: could not relay a stream's chunk", "source", req.src, "destination", req.dst, "next_hop", q.id, "err", err)
	why := fmt.Sprintf("%v: node %s could not relay chunk %d of stream %d of node %s to node %s: %v", ErrStreamReset, n.cfg.Name, seq, req.object, req.src, q.id, err)
	out := request{object: req.object, method: opData, routed: true, dst: req.dst, src: req.src, ttl: req.ttl - 1}
	buf := transport.GetBuffer()
	buf.Write(appendRequest(buf.AvailableBuffer(), &out))
	buf.Write(append(appendDataHeader(buf.AvailableBuffer(), seq, dataError|dataReset), why...))
	q.sendErr(q.conn.SendBulk(context.Background(), kindStream, req.object, buf))
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

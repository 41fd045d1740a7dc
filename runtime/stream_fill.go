package runtime

import (
	"encoding/binary"
	"time"

	"github.com/trellisrpc/trellis/transport"
)

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
	if parseRequest(head, &req) == nil && req.method == opData && (!req.routed || req.dst == n.cfg.ID && n.plausibleSource(p, req.src)) {
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

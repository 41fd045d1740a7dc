package runtime

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

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
	closed sync.Once // closes src
	pump   bool
	reason error // why the stream was cancelled, told to the receiver
}

// exportStream exports r to node dest. Cancelling ctx (the call's context)
// before the stream ends resets it.
func (n *Node) exportStream(ctx context.Context, r io.Reader, dest NodeID) (codegen.StreamRef, error) {
	if r == nil {
		return codegen.StreamRef{}, nil
	}
	t := &n.streams
	t.mu.Lock()
	if held := t.sending[dest]; held >= n.cfg.MaxStreamsPerPeer {
		// A peer that neither reads nor closes the streams it is sent
		// would otherwise make this node hold their sources for ever.
		t.mu.Unlock()
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		return codegen.StreamRef{}, fmt.Errorf("%w: node %s has %d streams of node %s it has not finished (MaxStreamsPerPeer)", ErrTooManyRefs, dest, held, n.cfg.Name)
	}
	t.next++
	s := &outStream{node: n, id: t.next, dest: dest, src: r, wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.out[s.id] = s
	t.sending[dest]++
	t.mu.Unlock()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { s.cancel(fmt.Errorf("%w: the call's context ended: %v", ErrStreamReset, context.Cause(ctx))) })
		go func() { <-s.done; stop() }()
	}
	return codegen.StreamRef{Node: n.cfg.ID, Stream: s.id}, nil
}

// cancel stops the stream: the pump ends and the source is closed, at once
// even while the pump is in its Read (Close must unblock a Read in progress,
// as for http.Request.Body: a source that blocks, such as a pipe, would
// hold the pump, and Node.Close, for ever). err, if not nil, is sent to the
// receiver.
func (s *outStream) cancel(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		running := s.pump
		s.reason = err
		s.mu.Unlock()
		close(s.done)
		s.node.streams.removeOut(s)
		s.closeSource()
		if !running && err != nil {
			s.node.sendData(s.dest, s.id, 0, dataError, []byte(err.Error()))
		}
	})
}

// closeSource closes the source if it is an io.Closer, once.
func (s *outStream) closeSource() {
	s.closed.Do(func() {
		if c, ok := s.src.(io.Closer); ok {
			c.Close()
		}
	})
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
	defer s.closeSource()
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
			s.fail(seq, err)
			return
		}
		buf.Write(appendDataHeader(buf.AvailableBuffer(), seq, 0))
		// A chunk fits the caps of both ends of the link (see
		// transport.Conn.MaxSend), envelope included.
		room := min(streamChunk, p.conn.MaxSend()-buf.Len())
		if room <= 0 {
			transport.PutBuffer(buf)
			s.fail(seq, fmt.Errorf("%w: a message cap of %d bytes leaves no room for data after the %d bytes of a chunk's header", ErrTooLarge, p.conn.MaxSend(), buf.Len()))
			return
		}
		nr, err := buf.ReadOnce(s.src, min(credit, room))
		if nr > 0 {
			s.mu.Lock()
			s.credit -= nr
			s.mu.Unlock()
			serr := s.node.streams.chunkFault()
			if serr == nil {
				serr = p.sendErr(p.conn.SendBulkInline(context.Background(), kindStream, s.id, buf))
			} else {
				transport.PutBuffer(buf)
			}
			if serr != nil {
				s.fail(seq, serr)
				return
			}
			seq++
		} else {
			transport.PutBuffer(buf)
		}
		select {
		case <-s.done: // cancelled while in Read: the reason, not Read's error
			cancelled()
			return
		default:
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

// fail ends a stream whose chunk seq could not be sent: it tells the
// receiver, whose Read then fails with ErrStreamReset and the reason
// (unless the connection is gone, which resets the stream there too), and
// logs it. The caller's deferred closeSource closes the source.
func (s *outStream) fail(seq uint64, err error) {
	n := s.node
	err = fmt.Errorf("%w: node %s could not send chunk %d of stream %d to node %s: %v", ErrStreamReset, n.cfg.Name, seq, s.id, s.dest, err)
	n.log.Warn("trellis: stream failed", "peer", s.dest, "stream", s.id, "err", err)
	n.sendData(s.dest, s.id, seq, dataError|dataReset, []byte(err.Error()))
	s.finish()
}

// finish forgets a stream whose pump has ended.
func (s *outStream) finish() {
	s.once.Do(func() {
		close(s.done)
		s.node.streams.removeOut(s)
	})
}

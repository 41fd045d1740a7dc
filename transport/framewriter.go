package transport

import (
	"net"
	"time"
)

// Sizes of the connection's write buffer and of the payloads it does not copy.
const (
	// writeBufferSize is the size of the write buffer: small frames are
	// batched in it and reach the socket when it is full or when the
	// writer runs out of work.
	writeBufferSize = 64 << 10
	// directWrite is the payload size from which a frame's payload is not
	// copied into the buffer but written from the message's own buffer.
	directWrite = 16 << 10
)

// frameWriter batches frames for the socket. Small frames are copied into
// its buffer. A large payload is not: it is written at once from the
// message's buffer, together with what is batched before it and its
// header, by one vectored write (writev) where the connection supports
// it (TCP; over TLS, one write after the other). Every write to the socket
// is bounded by Config.WriteTimeout. Only the holder of Conn.wmu uses it.
type frameWriter struct {
	c    *Conn
	buf  []byte      // the batched frames
	vec  [2][]byte   // backing array of bufs
	bufs net.Buffers // the slices of a vectored write
}

func newFrameWriter(c *Conn) *frameWriter {
	return &frameWriter{c: c, buf: make([]byte, 0, writeBufferSize)}
}

// Buffered returns the number of bytes batched and not yet written.
func (w *frameWriter) Buffered() int { return len(w.buf) }

// writeFrame writes one frame: a header for h (whose Length it sets) and
// payload. A small frame is batched; a large payload is written at once,
// with everything batched before it.
func (w *frameWriter) writeFrame(h Header, payload []byte) error {
	h.Length = uint32(len(payload))
	if len(payload) >= directWrite {
		w.buf = w.appendHeader(w.buf, h)
		return w.writeWith(payload)
	}
	if len(w.buf)+HeaderSize+len(payload) > cap(w.buf) {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	w.buf = append(w.appendHeader(w.buf, h), payload...)
	return nil
}

func (w *frameWriter) appendHeader(b []byte, h Header) []byte {
	var hdr [HeaderSize]byte
	putHeader(hdr[:], h)
	return append(b, hdr[:]...)
}

// Flush writes the batched frames.
func (w *frameWriter) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	return w.writeWith(nil)
}

// writeWith writes the batched bytes, then payload, and empties the buffer.
func (w *frameWriter) writeWith(payload []byte) error {
	nc := w.c.nc
	nc.SetWriteDeadline(time.Now().Add(w.c.cfg.WriteTimeout))
	var err error
	if len(payload) == 0 {
		_, err = nc.Write(w.buf)
	} else {
		w.vec = [2][]byte{w.buf, payload}
		w.bufs = w.vec[:]
		_, err = w.bufs.WriteTo(nc)
		w.vec, w.bufs = [2][]byte{}, nil // keep no reference to payload
	}
	w.buf = w.buf[:0]
	return err
}

package transport

import (
	"fmt"
	"io"
)

// Sizes of the connection's read buffer and of its reads.
const (
	// readBufferSize is the size of the read buffer: small frames arrive
	// batched in it.
	readBufferSize = 64 << 10
	// directRead is the size from which the rest of a payload is read
	// straight from the socket into its destination, bypassing the buffer.
	directRead = 16 << 10
	// smallFill is how much more than it needs a read into the buffer asks
	// for while bulk payloads arrive: a header and the start of its payload
	// (enough for Body.Peek).
	smallFill = HeaderSize + MaxPeek
)

// connReader is the buffered reader under the frame reader. Unlike a
// bufio.Reader it reads the part of a payload that does not fit its buffer
// straight into the payload's destination; and while it reads a bulk
// payload, or the header after one, it fills its buffer with only what is
// needed (and room for a header and a peek), so that the start of a
// following bulk payload is not pulled into the buffer only to be copied
// out of it (bulk frames tend to follow one another).
type connReader struct {
	rd   io.Reader
	buf  []byte
	r, w int   // buf[r:w] is buffered
	bulk bool  // reading a bulk payload, or what follows one: fill little
	err  error // the error of the underlying reader, sticky
}

func newConnReader(rd io.Reader) *connReader {
	return &connReader{rd: rd, buf: make([]byte, readBufferSize)}
}

// buffered returns the number of bytes buffered.
func (b *connReader) buffered() int { return b.w - b.r }

// fill reads once from the underlying reader, at most max bytes, after
// moving the buffered bytes to the front. It returns the reader's error,
// also when some bytes arrived with it.
func (b *connReader) fill(max int) error {
	if b.err != nil {
		return b.err
	}
	if b.r > 0 {
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
	}
	end := min(len(b.buf), b.w+max)
	for range 100 { // a reader returning 0, nil for ever is broken
		n, err := b.rd.Read(b.buf[b.w:end])
		if n < 0 || n > end-b.w {
			b.err = fmt.Errorf("%T.Read returned %d for a buffer of %d bytes", b.rd, n, end-b.w)
			return b.err
		}
		b.w += n
		if err != nil {
			b.err = err
			return err
		}
		if n > 0 {
			return nil
		}
	}
	b.err = io.ErrNoProgress
	return b.err
}

// readFull reads exactly len(p) bytes, as io.ReadFull does: io.EOF when
// nothing was read, io.ErrUnexpectedEOF when the end came in the middle.
func (b *connReader) readFull(p []byte) error {
	n, empty := 0, 0
	for n < len(p) {
		k, err := b.readSome(p[n:])
		n += k
		if err != nil {
			return fullErr(n, err)
		}
		if k == 0 {
			if empty++; empty == 100 { // a reader returning 0, nil for ever is broken
				b.err = io.ErrNoProgress
			}
		}
	}
	return nil
}

// readSome reads into p (not empty) from the buffer or, when it is empty,
// with one read from the underlying reader: straight into p when p is
// large, else through the buffer. It returns an error only with no bytes.
func (b *connReader) readSome(p []byte) (int, error) {
	if b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		if len(p) >= directRead {
			k, err := b.rd.Read(p)
			if k < 0 || k > len(p) {
				b.err = fmt.Errorf("%T.Read returned %d for a buffer of %d bytes", b.rd, k, len(p))
				return 0, b.err
			}
			b.bulk = true
			if err != nil {
				b.err = err
				if k == 0 {
					return 0, err
				}
			}
			return k, nil
		}
		max := len(b.buf)
		if b.bulk {
			max = len(p) + smallFill
		}
		if err := b.fill(max); err != nil && b.r == b.w {
			return 0, err
		}
	}
	c := copy(p, b.buf[b.r:b.w])
	b.r += c
	return c, nil
}

// fullErr is the error of a readFull that got n bytes and then err.
func fullErr(n int, err error) error {
	if n > 0 && err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// peek returns the next n bytes (n at most the buffer size) without
// consuming them, reading as little as it needs.
func (b *connReader) peek(n int) ([]byte, error) {
	for b.buffered() < n {
		if err := b.fill(max(n-b.buffered(), smallFill)); err != nil && b.buffered() < n {
			return b.buf[b.r:b.w], fullErr(b.buffered(), err)
		}
	}
	return b.buf[b.r : b.r+n], nil
}

// discard skips n bytes.
func (b *connReader) discard(n int) error {
	for n > 0 {
		if b.r == b.w {
			if err := b.fill(len(b.buf)); err != nil && b.r == b.w {
				return fullErr(1, err) // inside a payload: the end is unexpected
			}
		}
		k := min(n, b.buffered())
		b.r += k
		n -= k
	}
	return nil
}

package transport

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// A Buffer holds the payload of an outgoing message. Get one with GetBuffer,
// write the payload into it and hand it to Conn.Send, which owns it from then
// on and returns it to the pool once written.
type Buffer struct {
	bytes.Buffer
	once onceReader // for ReadOnce, kept here so that it does not allocate
}

// maxPooled is the largest buffer returned to the pool; larger ones are left
// to the garbage collector so that one big message does not pin its memory.
const maxPooled = 256 << 10

var bufferPool = sync.Pool{New: func() any { return new(Buffer) }}

// GetBuffer returns an empty buffer from the pool.
func GetBuffer() *Buffer { return bufferPool.Get().(*Buffer) }

// PutBuffer returns b to the pool. Only the owner of a buffer that was not
// sent may call it.
func PutBuffer(b *Buffer) {
	if b == nil || b.Cap() > maxPooled {
		return
	}
	b.Reset()
	bufferPool.Put(b)
}

// ReadOnce appends the bytes of a single r.Read of at most max bytes to b,
// reading them straight into b's spare capacity (no intermediate copy). It
// returns what that Read returned. A Buffer that holds n bytes and has
// room for n+max+bytes.MinRead does not grow.
func (b *Buffer) ReadOnce(r io.Reader, max int) (int, error) {
	b.Grow(max + bytes.MinRead)
	b.once = onceReader{r: r, max: max}
	n, _ := b.ReadFrom(&b.once) // onceReader never fails: the error is kept
	err := b.once.err
	b.once = onceReader{}
	return int(n), err
}

// onceReader reads from r once, then reports io.EOF; it keeps r's error
// for ReadOnce, so that bytes.Buffer.ReadFrom stops after one read.
type onceReader struct {
	r    io.Reader
	max  int
	done bool
	err  error
}

func (o *onceReader) Read(p []byte) (int, error) {
	if o.done {
		return 0, io.EOF
	}
	o.done = true
	p = p[:min(len(p), o.max)]
	n, err := o.r.Read(p)
	if n < 0 || n > len(p) {
		n, err = 0, fmt.Errorf("transport: %T.Read returned %d for a buffer of %d bytes", o.r, n, len(p))
	}
	o.err = err
	return n, nil
}

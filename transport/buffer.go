package transport

import (
	"bytes"
	"sync"
)

// A Buffer holds the payload of an outgoing message. Get one with GetBuffer,
// write the payload into it and hand it to Conn.Send, which owns it from then
// on and returns it to the pool once written.
type Buffer struct {
	bytes.Buffer
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

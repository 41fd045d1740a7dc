package transport

import (
	"fmt"
	"sync"
)

// A Payload is the buffer of a received message that a Handler took with
// Conn.TakePayload: it stays valid after HandleMessage returns, until its
// owner calls Release. Taking the payload saves a copy of large messages
// whose bytes are consumed later, such as a stream's chunks.
type Payload struct {
	b []byte
}

// Bytes returns the message. The slice is valid until Release.
func (p *Payload) Bytes() []byte { return p.b }

// Release hands the buffer back for reuse by the connections' readers.
// The owner must not use the Payload afterwards, and calls it once.
func (p *Payload) Release() {
	if cap(p.b) != MaxFramePayload {
		p.b = nil
		return
	}
	p.b = p.b[:0]
	payloadPool.Put(p)
}

// NewPayload returns a Payload of n bytes (at most MaxFramePayload, or it
// panics) from the buffers the connections' readers use: a BodyHandler that
// reads a body into a buffer it keeps takes one, and releases it when done.
func NewPayload(n int) *Payload {
	if n < 0 || n > MaxFramePayload {
		panic(fmt.Sprintf("transport: NewPayload(%d): the most a frame carries is %d", n, MaxFramePayload))
	}
	b, p := payloadBuffer(n)
	if p == nil {
		p = &Payload{}
	}
	p.b = b
	return p
}

// payloadPool holds full-size Payloads released by their owners.
var payloadPool sync.Pool

// smallPayload is the capacity a reader allocates for a small message
// after its buffer was taken; larger messages get a full-size buffer from
// payloadPool.
const smallPayload = 4 << 10

// payloadBuffer returns a buffer of length n for an unfragmented message
// and, for a full-size one, the Payload it belongs to (which a taker gets,
// so that taking and releasing allocate nothing).
func payloadBuffer(n int) ([]byte, *Payload) {
	if n <= smallPayload {
		return make([]byte, n, smallPayload), nil
	}
	p, ok := payloadPool.Get().(*Payload)
	if !ok {
		p = &Payload{b: make([]byte, 0, MaxFramePayload)}
	}
	return p.b[:n], p
}

// TakePayload hands the payload of the message being handled to the
// caller, who then owns it (see Payload). Only a Handler may call it,
// from HandleMessage; it returns nil for a message that arrived in
// fragments, whose payload cannot be taken (copy it instead).
func (c *Conn) TakePayload() *Payload {
	if c.fr == nil {
		return nil
	}
	return c.fr.take()
}

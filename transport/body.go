package transport

import (
	"errors"
	"fmt"
	"io"
)

// A BodyHandler is a Handler that may read the payload of some messages
// itself, from the connection, rather than receive it in a buffer: a
// stream's data can then go from the socket straight into the buffer of the
// Read waiting for it, without a copy. Only messages that arrive whole, in
// one frame, qualify; the caps (MaxFramePayload, Config.MaxMessageSize)
// have been checked when WantBody is asked.
type BodyHandler interface {
	Handler
	// WantBody reports whether the message of kind kind whose single
	// frame carries n bytes goes to HandleBody instead of HandleMessage.
	// It is called on the reader goroutine, for every such message, so it
	// must be cheap.
	WantBody(kind Kind, n int) bool
	// HandleBody receives one whole message whose payload is still on
	// the connection: body reads it. body is valid only until HandleBody
	// returns; what it has not read by then is skipped. A read error of
	// body (the connection failing) closes the connection, whatever
	// HandleBody returns; a non-nil error is a protocol violation by the
	// peer, as for HandleMessage.
	HandleBody(kind Kind, id uint64, body *Body) error
}

// MaxPeek is the most Body.Peek returns.
const MaxPeek = 256

// errBodyDone reports a Body used after its HandleBody returned.
var errBodyDone = errors.New("transport: message body used after HandleBody returned")

// A Body is the payload of one message that a BodyHandler reads from the
// connection. Its methods read only within the payload; they are called
// on the reader goroutine, from HandleBody. The first read error is kept:
// every later call returns it.
type Body struct {
	fr     *frameReader
	left   int   // bytes of the payload not yet consumed
	err    error // the first read error (a *readError)
	active bool  // HandleBody is running
}

// Len returns the number of payload bytes not yet consumed.
func (b *Body) Len() int { return b.left }

// check reports why b cannot be read, if it cannot.
func (b *Body) check() error {
	switch {
	case b.err != nil:
		return b.err
	case !b.active:
		return errBodyDone
	}
	return nil
}

// fail keeps the first read error.
func (b *Body) fail(err error) error {
	b.err = payloadError(err)
	return b.err
}

// Peek returns the next min(n, Len(), MaxPeek) bytes without consuming
// them. The slice is valid until the next call on b.
func (b *Body) Peek(n int) ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	n = min(n, b.left, MaxPeek)
	p, err := b.fr.r.peek(n)
	if err != nil {
		return nil, b.fail(err)
	}
	return p, nil
}

// Discard skips the next n bytes; it fails if fewer are left.
func (b *Body) Discard(n int) error {
	if err := b.check(); err != nil {
		return err
	}
	if n < 0 || n > b.left {
		return fmt.Errorf("transport: discard %d bytes of a body of %d", n, b.left)
	}
	if err := b.fr.r.discard(n); err != nil {
		return b.fail(err)
	}
	b.left -= n
	return nil
}

// ReadFull reads exactly len(p) bytes into p, straight from the socket
// for the most part; it fails if fewer are left.
func (b *Body) ReadFull(p []byte) error {
	if err := b.check(); err != nil {
		return err
	}
	if len(p) > b.left {
		return fmt.Errorf("transport: read %d bytes of a body of %d", len(p), b.left)
	}
	if err := b.fr.r.readFull(p); err != nil {
		return b.fail(err)
	}
	b.left -= len(p)
	return nil
}

// Read implements io.Reader over the rest of the payload: it returns what
// is buffered, or what one read from the socket brings (straight into p
// when p is large), and io.EOF at the end of the payload.
func (b *Body) Read(p []byte) (int, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	if b.left == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	k, err := b.fr.r.readSome(p[:min(len(p), b.left)])
	if err != nil {
		return 0, b.fail(err)
	}
	b.left -= k
	return k, nil
}

// Bytes reads the rest of the payload into a buffer and returns it, valid
// until HandleBody returns. Conn.TakePayload may then take that buffer, as
// from HandleMessage.
func (b *Body) Bytes() ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	fr := b.fr
	if cap(fr.buf) < b.left {
		fr.buf, fr.bufOwner = payloadBuffer(b.left)
	}
	fr.buf = fr.buf[:b.left]
	if err := fr.r.readFull(fr.buf); err != nil {
		return nil, b.fail(err)
	}
	b.left = 0
	fr.whole = true
	return fr.buf, nil
}

// end is called after HandleBody: it skips what is left of the payload
// and returns the read error, if any.
func (b *Body) end() error {
	if b.err == nil && b.active && b.left > 0 {
		if err := b.fr.r.discard(b.left); err != nil {
			b.fail(err)
		}
	}
	b.active, b.left = false, 0
	return b.err
}

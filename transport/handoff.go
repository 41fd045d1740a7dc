package transport

import (
	"errors"
	"time"
)

// A Handler method runs on the connection's reader goroutine, so while it
// runs nothing is read. A handler that serves work inline and may run long
// (a remote call run on the reader to save a goroutine hand-off) takes a
// ReadToken first; any goroutine may then call ReadOn with it while the
// method still runs, and reading goes on in a new goroutine: the method's
// goroutine stops reading when the method returns.

// A ReadToken designates one message being handled (see Conn.ReadOn).
type ReadToken uint64

// The states of Conn.handling, in its low two bits; the rest counts the
// messages handled.
const (
	readIdle  = 0 // between messages
	readBusy  = 1 // a Handler method runs on the reader goroutine
	readMoved = 2 // reading moved to another goroutine while it ran
	readState = 3 // the mask of the state bits
)

// errMoved ends a reader goroutine whose reading moved to another one.
var errMoved = errors.New("transport: reading moved to another goroutine")

// beginHandling marks the start of a Handler method on the reader
// goroutine and returns its token.
func (c *Conn) beginHandling() ReadToken {
	next := (c.handling.Load()&^readState + readState + 1) | readBusy
	c.handling.Store(next)
	return ReadToken(next)
}

// endHandling marks its end and reports whether this goroutine still reads.
func (c *Conn) endHandling(t ReadToken) bool {
	return c.handling.CompareAndSwap(uint64(t), uint64(t)&^readState|readIdle)
}

// ReadToken returns the token of the message being handled. Only a
// Handler may call it, from HandleMessage; the message's payload must no
// longer be used once ReadOn may be called with the token.
func (c *Conn) ReadToken() ReadToken {
	return ReadToken(c.handling.Load())
}

// ReadOn makes the connection read on in a new goroutine if the Handler
// method that took t (see ReadToken) is still running; otherwise it does
// nothing. Any goroutine may call it, any number of times.
func (c *Conn) ReadOn(t ReadToken) {
	if uint64(t)&readState == readBusy && c.handling.CompareAndSwap(uint64(t), uint64(t)&^readState|readMoved) {
		go c.readLoop(c.handler, c.fr)
	}
}

// InputPending reports whether bytes of further frames have already been
// read from the socket: a Handler serving work inline may then leave its
// replies to the writer, which batches them, rather than write each
// itself. Only a Handler may call it, from HandleMessage.
func (c *Conn) InputPending() bool {
	return c.fr != nil && c.fr.r.buffered() > 0
}

// Received returns when the header of the last frame read arrived: the
// connection reads the clock for each frame it receives (for its
// keepalive), and this is that reading. Called by a Handler from
// HandleMessage, it is when the message's last frame arrived, without
// reading the clock again. The time carries a monotonic clock reading.
func (c *Conn) Received() time.Time {
	return c.start.Add(time.Duration(c.lastRecv.Load()))
}

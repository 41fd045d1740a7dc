package runtime

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/transport"
)

// inlineBudget is how long a call served on the connection's reader
// goroutine may hold it before reading moves to another goroutine.
//
// Most handlers are short: serving them on the reader saves the hand-off
// to a worker goroutine, which on small machines is a large part of a
// call's latency. A handler that runs longer (it blocks, calls back the
// caller, or waits for a slow socket) is not interrupted: after
// inlineBudget, a watchdog makes the connection read on in a new goroutine
// (transport.Conn.ReadOn), so the handler then runs as if on a worker and
// the connection is never held longer than the budget (plus timer
// latency).
const inlineBudget = 50 * time.Microsecond

// A watchdog moves a connection's reading to another goroutine when the
// call served on its reader outlasts inlineBudget. It holds the token of
// the call being served; after a move, the next call served inline (on
// the new reader) arms it anew, and the old call's disarm does nothing.
type watchdog struct {
	conn  *transport.Conn
	once  sync.Once
	timer *time.Timer
	token atomic.Uint64 // the transport.ReadToken armed, 0 when disarmed
}

// arm starts the budget of the call whose token is t.
func (w *watchdog) arm(t transport.ReadToken) {
	w.once.Do(func() {
		w.timer = time.AfterFunc(time.Hour, w.fire)
		w.timer.Stop()
	})
	w.token.Store(uint64(t))
	w.timer.Reset(inlineBudget)
}

// disarm ends the budget of the call whose token is t, if still armed.
func (w *watchdog) disarm(t transport.ReadToken) {
	if w.token.CompareAndSwap(uint64(t), 0) {
		w.timer.Stop()
	}
}

func (w *watchdog) fire() {
	if t := w.token.Load(); t != 0 {
		w.conn.ReadOn(transport.ReadToken(t))
	}
}

// serveInline serves sc on the connection's reader goroutine (the caller),
// under the watchdog. sc's arguments have been copied out of the message.
func (p *peer) serveInline(sc *ServerCall) {
	// Calls already read wait behind this one: their replies and this one's
	// go out together (the writer batches), as a server that serves on its
	// reader flushes when it has no input left.
	sc.batched = p.conn.InputPending()
	t := p.conn.ReadToken()
	p.watchdog.arm(t)
	sc.serve()
	p.watchdog.disarm(t)
}

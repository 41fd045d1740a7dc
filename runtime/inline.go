package runtime

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/transport"
)

// Calls are served on the connection's reader goroutine. Most handlers are
// short, and serving them there saves the hand-off to another goroutine,
// which on small machines is a large part of a call's latency. A handler
// that runs longer (it blocks, calls back the caller, or waits for a slow
// socket) is not interrupted: a monitor makes the connection read on in a
// new goroutine (transport.Conn.ReadOn), so the handler then runs as if on
// a goroutine of its own, and a connection is never held longer than two
// ticks of the monitor (see inlineTick).
//
// The monitor polls rather than arming a timer per call: arming a timer
// that is due before the others wakes an idle thread on most calls, which
// costs more than the hand-off it saves. It ticks only while calls are
// served, and sleeps after inlineIdle without any.
//
// A method whose call outlasted the budget (one that calls back its caller
// or reads a stream from it, say) has its next asideCalls calls served on
// goroutines of their own, where each that is short brings inline serving
// one call closer: so handlers that block do not pay a hand-off each, nor
// wait for each other on the reader.
//
// A peer has at most maxAside calls served aside at once; its next calls
// are served inline, so that a peer sending many requests at once does not
// start as many handlers before the first reply (and what it builds) is
// counted (see transport.Conn.SendReply): when an inline call blocks, the
// monitor reads on, at most one more call per tick.
//
// The monitor ticks every inlineTick (a slower tick wakes the machine
// less often while calls are served): a handler that blocks holds its
// connection up to two ticks once, then its method goes aside.
const (
	inlineBudget = 200 * time.Microsecond
	inlineTick   = time.Millisecond
	inlineIdle   = 20 * time.Millisecond
	asideCalls   = 64
	maxAside     = 16
)

// A watchdog is the monitor's view of one connection: the token of the
// call being served on its reader, and since when.
type watchdog struct {
	conn    *transport.Conn
	token   atomic.Uint64 // the transport.ReadToken armed, 0 when none
	since   atomic.Int64  // when it was armed, in monitor time
	watched atomic.Bool   // added to the monitor, by the first call served
}

// An inlineMonitor watches the calls served on the readers of a node's
// connections.
type inlineMonitor struct {
	start  time.Time
	arms   atomic.Uint64 // calls armed so far: activity
	active atomic.Bool   // the monitor ticks
	wake   chan struct{} // capacity 1: a call was armed while it slept

	mu       sync.Mutex
	watching map[*watchdog]struct{}
}

func newInlineMonitor() *inlineMonitor {
	return &inlineMonitor{start: time.Now(), wake: make(chan struct{}, 1), watching: map[*watchdog]struct{}{}}
}

func (m *inlineMonitor) now() int64 { return int64(time.Since(m.start)) }

// watch adds a connection's watchdog; forget removes it.
func (m *inlineMonitor) watch(w *watchdog) {
	m.mu.Lock()
	m.watching[w] = struct{}{}
	m.mu.Unlock()
}

func (m *inlineMonitor) forget(w *watchdog) {
	m.mu.Lock()
	delete(m.watching, w)
	m.mu.Unlock()
}

// serveInline serves sc on the connection's reader goroutine (the caller)
// under the node's monitor. sc's arguments have been copied out of the
// message.
func (p *peer) serveInline(sc *serverCall) {
	// Calls already read wait behind this one: their replies and this one's
	// go out together (the writer batches), as a server that serves on its
	// reader flushes when it has no input left.
	sc.batched = p.conn.InputPending()
	m, w := p.node.inline, &p.watchdog
	if !w.watched.Load() && w.watched.CompareAndSwap(false, true) {
		m.watch(w) // forgotten when the connection closes (peer.HandleClosed)
	}
	t := uint64(p.conn.ReadToken())
	sc.started = m.now()
	w.since.Store(sc.started)
	w.token.Store(t)
	m.arms.Add(1)
	if !m.active.Load() {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
	sc.serve()
	moved := !w.token.CompareAndSwap(t, 0) // reading moved on (another call may have armed it since)
	if moved || sc.end()-w.since.Load() >= int64(inlineBudget) {
		sc.entry.aside.Store(asideCalls)
	}
}

// serveAside serves sc on a goroutine of its own, the caller's, counted in
// the peer's aside calls.
func (sc *serverCall) serveAside() {
	if ic := sc.node.icept.Load(); ic != nil && (len(ic.server) > 0 || len(ic.observers) > 0) {
		growStackDeep(0)
	} else {
		growStack(0)
	}
	m, p := sc.entry, sc.peer
	defer p.aside.Add(-1)
	sc.started = sc.node.inline.now()
	sc.serve()
	if time.Duration(sc.end()-sc.started) < inlineBudget {
		if a := m.aside.Load(); a > 0 {
			m.aside.CompareAndSwap(a, a-1)
		}
	}
}

// end returns the monitor's clock when sc's handler returned, as the
// server interceptors' chain read it, or else now.
func (sc *serverCall) end() int64 {
	if sc.ended != 0 {
		return sc.ended
	}
	return sc.node.inline.now()
}

// asideStack is the stack a goroutine serving a call aside grows to before
// it serves it; deepAsideStack the same when server interceptors wrap the
// handler (their frames, and those of a tracer recording a span, took an
// 8 KiB stack past its end: the stack was copied in the middle of every
// call served aside, 0.09 µs per call on average in bench's
// trellis-metrics).
const (
	asideStack     = 4 << 10
	deepAsideStack = 12 << 10
)

// growStack grows the goroutine's stack, at its start, to hold asideStack
// bytes more: a new goroutine starts with a small stack, which is copied
// into one twice as large each time the calls on it go deeper than it is,
// and a served call (decoding, the handler, the interceptors, encoding the
// reply) goes deeper than the initial stack. Growing it while it holds
// nothing copies nothing; growing it in the middle of the call copies all
// of it, once per call served aside. The stack is returned when the
// goroutine ends.
//
//go:noinline
func growStack(i int) byte {
	var b [asideStack]byte
	b[i] = 1
	return b[i]
}

// growStackDeep is growStack to deepAsideStack.
//
//go:noinline
func growStackDeep(i int) byte {
	var b [deepAsideStack]byte
	b[i] = 1
	return b[i]
}

// run is the monitor's goroutine; it ends when stop is closed.
func (m *inlineMonitor) run(stop <-chan struct{}) {
	for {
		select {
		case <-m.wake:
		case <-stop:
			return
		}
		m.active.Store(true)
		m.tick(stop)
		m.active.Store(false)
		if m.busy() { // armed after the last look, while it was still active
			select {
			case m.wake <- struct{}{}:
			default:
			}
		}
	}
}

// tick checks the watched calls every inlineTick until none has been
// armed for inlineIdle.
func (m *inlineMonitor) tick(stop <-chan struct{}) {
	t := time.NewTicker(inlineTick)
	defer t.Stop()
	lastArms, idleSince := m.arms.Load(), m.now()
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		now := m.now()
		m.mu.Lock()
		for w := range m.watching {
			if tok := w.token.Load(); tok != 0 && now-w.since.Load() >= int64(inlineBudget) && w.token.CompareAndSwap(tok, 0) {
				w.conn.ReadOn(transport.ReadToken(tok))
			}
		}
		m.mu.Unlock()
		if a := m.arms.Load(); a != lastArms || m.busy() {
			lastArms, idleSince = a, now
		} else if now-idleSince >= int64(inlineIdle) {
			return
		}
	}
}

// busy reports whether a call is armed.
func (m *inlineMonitor) busy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for w := range m.watching {
		if w.token.Load() != 0 {
			return true
		}
	}
	return false
}

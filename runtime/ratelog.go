package runtime

import (
	"sync"
	"time"
)

// logEvery is how often a node logs one kind of hostile input from one
// peer; what happens in between is counted and reported with the next record.
const logEvery = 10 * time.Second

// maxLogSlots bounds the keys a logLimiter remembers: beyond it, the slots
// that have not logged within logEvery are forgotten.
const maxLogSlots = 1024

// A logLimiter lets one log record through per kind of event and peer in
// each logEvery, and counts the events it holds back, so that a hostile
// peer cannot make a node log in proportion to what it sends.
type logLimiter struct {
	mu    sync.Mutex
	slots map[logKey]*logSlot
	now   func() time.Time // time.Now; tests replace it
}

type logKey struct {
	what string
	peer NodeID
}

type logSlot struct {
	last time.Time // when a record was last let through
	held int       // events held back since
}

// allow reports whether the event what from peer may be logged now and, if
// so, how many such events were held back since the last record.
func (l *logLimiter) allow(what string, peer NodeID) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	k := logKey{what, peer}
	s := l.slots[k]
	if s != nil && now.Sub(s.last) < logEvery {
		s.held++
		return false, 0
	}
	if s == nil {
		if l.slots == nil {
			l.slots = make(map[logKey]*logSlot)
		}
		if len(l.slots) >= maxLogSlots {
			l.prune(now)
		}
		s = &logSlot{}
		l.slots[k] = s
	}
	held, s.held, s.last = s.held, 0, now
	return true, held
}

// prune forgets the slots that have not logged within logEvery, or all of
// them if every slot is recent (so that the map stays bounded; at worst a
// peer's next event is logged early). l.mu is held.
func (l *logLimiter) prune(now time.Time) {
	for k, s := range l.slots {
		if now.Sub(s.last) >= logEvery {
			delete(l.slots, k)
		}
	}
	if len(l.slots) >= maxLogSlots {
		clear(l.slots)
	}
}

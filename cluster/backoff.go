package cluster

import (
	"math/rand/v2"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// maxDialBackoff caps the wait between two dials of a neighbour that does
// not answer.
const maxDialBackoff = 5 * time.Second

// dialBackoff spaces out the dials of neighbours that failed: after each
// failure the wait doubles (from the reconciliation interval, up to
// maxDialBackoff) and is drawn at random from its upper half, so that
// members do not dial a recovering node in step. Cluster.mu guards it.
type dialBackoff struct {
	base  time.Duration
	rng   *rand.Rand // the jitter's source (nil: the global one)
	state map[nodeid.ID]backoffState
}

type backoffState struct {
	wait time.Duration // the current ceiling
	next time.Time     // no dial before
}

// due reports whether id may be dialed at now.
func (b *dialBackoff) due(id nodeid.ID, now time.Time) bool {
	s, ok := b.state[id]
	return !ok || !now.Before(s.next)
}

// failed records a failed dial of id at now.
func (b *dialBackoff) failed(id nodeid.ID, now time.Time) time.Duration {
	if b.state == nil {
		b.state = make(map[nodeid.ID]backoffState)
	}
	s := b.state[id]
	if s.wait == 0 {
		s.wait = b.base
	} else {
		s.wait = min(2*s.wait, maxDialBackoff)
	}
	var jitter time.Duration
	if b.rng != nil {
		jitter = time.Duration(b.rng.Int64N(int64(s.wait/2 + 1)))
	} else {
		jitter = rand.N(s.wait/2 + 1)
	}
	d := s.wait/2 + jitter
	s.next = now.Add(d)
	b.state[id] = s
	return d
}

// forget drops the state of id (connected, no longer a neighbour, or heard
// again: its next dial is due at once).
func (b *dialBackoff) forget(id nodeid.ID) { delete(b.state, id) }

// keep drops the state of every node that is not in ids.
func (b *dialBackoff) keep(ids []nodeid.ID) {
	for id := range b.state {
		found := false
		for _, x := range ids {
			found = found || x == id
		}
		if !found {
			delete(b.state, id)
		}
	}
}

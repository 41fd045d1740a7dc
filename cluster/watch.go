package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// DefaultChangeBuffer is the number of changes a subscription queues when
// Subscribe is given no buffer.
const DefaultChangeBuffer = 64

// ErrSubscriptionClosed is returned by Subscription.Next once the
// subscription or its cluster is closed and every queued change was read,
// and by Cluster.Wait once the cluster is closed.
var ErrSubscriptionClosed = errors.New("cluster: subscription closed")

// A Change is a topology committed by this member, as an application sees
// it: the topology, and how this member's neighbours changed since the
// previous Change delivered to the same subscription.
type Change struct {
	// Epoch is the committed topology's epoch.
	Epoch uint64
	// Topology is the committed topology (members and edges).
	Topology topology.Topology
	// Added and Removed are this member's neighbours that the topology
	// added and removed, ordered by ID.
	Added, Removed []topology.Member
	// Skipped counts the committed epochs folded into this change because
	// the subscriber was behind (its queue was full): 0 for a subscriber
	// that keeps up. Added and Removed then span the skipped epochs too.
	Skipped int
}

// String describes the change in one line.
func (ch Change) String() string {
	names := func(ms []topology.Member) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.Name
		}
		return out
	}
	s := fmt.Sprintf("epoch %d: %d members, neighbours +%v -%v", ch.Epoch, len(ch.Topology.Members), names(ch.Added), names(ch.Removed))
	if ch.Skipped > 0 {
		s += fmt.Sprintf(" (%d epochs skipped)", ch.Skipped)
	}
	return s
}

// A Subscription receives the topologies this member commits, in the order
// of their epochs. It never blocks the cluster: its queue holds at most the
// buffer given to Subscribe, and when it is full the newest change is
// folded into the last queued one (see Change.Skipped), so a slow
// subscriber sees fewer, coarser changes but never an epoch out of order,
// and always ends up at the latest topology. Close it when done.
type Subscription struct {
	c    *Cluster
	self nodeid.ID
	max  int

	mu     sync.Mutex
	queue  []pendingChange
	last   topology.Topology // the topology of the newest queued or delivered change
	wake   chan struct{}     // capacity 1: something was queued, or closed
	closed bool
}

// pendingChange is a queued change with the topology it is relative to.
type pendingChange struct {
	from    topology.Topology
	to      topology.Topology
	skipped int
}

// Subscribe returns a subscription to the topologies this member commits
// from now on, whose queue holds buffer changes (DefaultChangeBuffer if
// buffer <= 0). If a topology is committed already, the first change is
// that topology, with all the member's neighbours in Added.
func (c *Cluster) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultChangeBuffer
	}
	s := &Subscription{c: c, self: c.self, max: buffer, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.topicsClosed {
		s.closed = true
		return s
	}
	if c.committed.Epoch > 0 {
		s.queue = append(s.queue, pendingChange{to: c.committed})
		s.last = c.committed
		s.wake <- struct{}{}
	}
	if c.subs == nil {
		c.subs = make(map[*Subscription]struct{})
	}
	c.subs[s] = struct{}{}
	return s
}

// Watch calls f with every change a subscription of buffer changes
// receives, on a goroutine of its own, until stop is called or the cluster
// is closed. f may be slow: changes are then folded as for a Subscription.
// stop does not wait for a call of f in progress.
func (c *Cluster) Watch(buffer int, f func(Change)) (stop func()) {
	s := c.Subscribe(buffer)
	go func() {
		for {
			ch, err := s.Next(context.Background())
			if err != nil {
				return
			}
			f(ch)
		}
	}()
	return func() { s.Close() }
}

// Next returns the next change, waiting for one until ctx is done. After
// Close, or once the cluster is closed, it returns the changes still queued
// and then ErrSubscriptionClosed.
func (s *Subscription) Next(ctx context.Context) (Change, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			p := s.queue[0]
			s.queue[0] = pendingChange{}
			s.queue = s.queue[1:]
			if len(s.queue) > 0 {
				s.signal()
			}
			s.mu.Unlock()
			return p.change(s.self), nil
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Change{}, ErrSubscriptionClosed
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return Change{}, fmt.Errorf("cluster: waiting for a topology change: %w", ctx.Err())
		}
	}
}

// Close ends the subscription: Next returns what is queued, then
// ErrSubscriptionClosed. Closing twice is harmless.
func (s *Subscription) Close() {
	s.c.mu.Lock()
	delete(s.c.subs, s)
	s.c.mu.Unlock()
	s.close()
}

func (s *Subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.signal()
	s.mu.Unlock()
}

// signal wakes Next; s.mu is held.
func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// publish queues t, folding it into the newest queued change when the
// queue is full. It never blocks.
func (s *Subscription) publish(t topology.Topology) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || t.Epoch <= s.last.Epoch {
		return
	}
	if len(s.queue) < s.max {
		s.queue = append(s.queue, pendingChange{from: s.last, to: t})
	} else {
		p := &s.queue[len(s.queue)-1]
		p.to = t
		p.skipped++
	}
	s.last = t
	s.signal()
}

// change returns the Change from p.from to p.to as member self sees it.
func (p pendingChange) change(self nodeid.ID) Change {
	ch := Change{Epoch: p.to.Epoch, Topology: p.to, Skipped: p.skipped}
	before, after := p.from.Neighbours(self), p.to.Neighbours(self)
	for _, id := range after {
		if !slices.Contains(before, id) {
			m, _ := p.to.Lookup(id)
			ch.Added = append(ch.Added, m)
		}
	}
	for _, id := range before {
		if !slices.Contains(after, id) {
			m, _ := p.from.Lookup(id)
			ch.Removed = append(ch.Removed, m)
		}
	}
	return ch
}

// committedLocked tells the subscriptions that t was committed; c.mu is
// held, so that they see the commits in their order.
func (c *Cluster) committedLocked(t topology.Topology) {
	c.invalidate()
	for s := range c.subs {
		s.publish(t)
	}
}

// closeTopics closes every subscription (their queued changes can still be
// read) and refuses new ones.
func (c *Cluster) closeTopics() {
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	if !c.topicsClosed && c.closed != nil {
		close(c.closed)
	}
	c.topicsClosed = true
	c.mu.Unlock()
	for s := range subs {
		s.close()
	}
}

// Neighbours returns this member's neighbours in the committed topology,
// ordered by ID.
func (c *Cluster) Neighbours() []topology.Member {
	t := c.Topology()
	var out []topology.Member
	for _, id := range t.Neighbours(c.self) {
		if m, ok := t.Lookup(id); ok {
			out = append(out, m)
		}
	}
	return out
}

package membership

import (
	"context"
	"errors"
	"sync"
)

// DefaultEventBuffer is the queue length of a subscription made with buffer <= 0.
const DefaultEventBuffer = 1024

// ErrClosed is returned by operations on a closed node or subscription.
var ErrClosed = errors.New("membership: closed")

// EventHub fans events out to subscriptions. Publish never blocks: each
// subscription has its own bounded queue, and when a queue is full its oldest event
// is dropped, counted in Dropped, and reported in the Missed field of the next
// event the subscriber receives. A slow subscriber therefore loses old events but
// never delays the failure detector or other subscribers; on seeing Missed > 0 it
// should reconcile with the member list. Discovery backends use an EventHub to
// offer the same subscription semantics.
type EventHub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// NewEventHub returns an empty hub.
func NewEventHub() *EventHub {
	return &EventHub{subs: make(map[*Subscription]struct{})}
}

// Subscribe returns a subscription that receives every event published from now
// on, with a queue of buffer events (DefaultEventBuffer if buffer <= 0). On a closed
// hub the subscription is already closed.
func (h *EventHub) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	s := &Subscription{hub: h, buf: make([]Event, buffer), ready: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.closed = true
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Publish queues e on every subscription. It never blocks.
func (h *EventHub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.push(e)
	}
}

// Close closes every subscription: each returns its queued events, then ErrClosed.
func (h *EventHub) Close() {
	h.mu.Lock()
	subs := h.subs
	h.subs = make(map[*Subscription]struct{})
	h.closed = true
	h.mu.Unlock()
	for s := range subs {
		s.close()
	}
}

func (h *EventHub) remove(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// Subscription is a stream of events with a bounded queue (see EventHub for the
// overflow policy). It is safe for concurrent use.
type Subscription struct {
	hub   *EventHub
	ready chan struct{} // holds a token when the queue may be non-empty or closed

	mu      sync.Mutex
	buf     []Event // ring
	head, n int
	dropped uint64
	closed  bool
}

func (s *Subscription) push(e Event) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.n == len(s.buf) {
		old := s.buf[s.head]
		s.buf[s.head] = Event{}
		s.head = (s.head + 1) % len(s.buf)
		s.n--
		s.dropped++
		carry := old.Missed + 1
		if s.n > 0 {
			s.buf[s.head].Missed += carry
		} else {
			e.Missed += carry
		}
	}
	s.buf[(s.head+s.n)%len(s.buf)] = e
	s.n++
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

func (s *Subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.signal()
}

// Next returns the oldest queued event, waiting for one if the queue is empty. It
// returns ctx.Err() if ctx ends first, and ErrClosed once the subscription is
// closed and its queue drained.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		if e, ok, closed := s.pop(); ok {
			return e, nil
		} else if closed {
			return Event{}, ErrClosed
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// TryNext returns the oldest queued event without waiting; ok is false if there
// is none.
func (s *Subscription) TryNext() (e Event, ok bool) {
	e, ok, _ = s.pop()
	return e, ok
}

func (s *Subscription) pop() (e Event, ok, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return Event{}, false, s.closed
	}
	e = s.buf[s.head]
	s.buf[s.head] = Event{}
	s.head = (s.head + 1) % len(s.buf)
	s.n--
	if s.n > 0 || s.closed {
		s.signal() // let another waiter in
	}
	return e, true, s.closed
}

// Dropped returns how many events this subscription has dropped because its queue
// was full.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close stops the subscription: queued events are discarded and Next returns
// ErrClosed. Closing twice is harmless.
func (s *Subscription) Close() {
	if s.hub != nil {
		s.hub.remove(s)
	}
	s.mu.Lock()
	s.closed = true
	for i := range s.buf {
		s.buf[i] = Event{}
	}
	s.n = 0
	s.mu.Unlock()
	s.signal()
}

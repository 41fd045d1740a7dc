package feed

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/runtime"
)

// A Hub implements Feed on the node that publishes: it keeps the proxies of
// the subscribers it was passed, by topic, and calls them in Publish.
type Hub struct {
	mu   sync.Mutex
	subs map[string][]subscription // by topic
	seq  map[string]int            // last sequence number, by topic
}

// A subscription is a Subscriber proxy and the node that passed it.
type subscription struct {
	from runtime.NodeID
	s    Subscriber
}

// NewHub returns a Hub without subscribers.
func NewHub() *Hub {
	return &Hub{subs: make(map[string][]subscription), seq: make(map[string]int)}
}

// Subscribe implements Feed. s is a proxy of the caller's object; the Hub
// keeps it beyond the call, which keeps the object exported on the caller's
// node until the Hub releases it.
func (h *Hub) Subscribe(ctx context.Context, topic string, s Subscriber) error {
	if s == nil {
		return fmt.Errorf("feed: nil subscriber for %q", topic)
	}
	info, _ := runtime.CallInfoFrom(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[topic] = append(h.subs[topic], subscription{from: info.Caller, s: s})
	return nil
}

// Unsubscribe implements Feed: it forgets the caller's subscribers of topic
// and releases their proxies at once (runtime.Release), rather than
// waiting for the garbage collector to find them unreachable.
func (h *Hub) Unsubscribe(ctx context.Context, topic string) error {
	info, _ := runtime.CallInfoFrom(ctx)
	h.mu.Lock()
	var dropped []Subscriber
	kept := h.subs[topic][:0]
	for _, sub := range h.subs[topic] {
		if sub.from == info.Caller {
			dropped = append(dropped, sub.s)
		} else {
			kept = append(kept, sub)
		}
	}
	if len(kept) == 0 {
		delete(h.subs, topic)
	} else {
		h.subs[topic] = kept
	}
	h.mu.Unlock()
	for _, s := range dropped {
		if err := runtime.Release(s); err != nil {
			return err
		}
	}
	return nil
}

// Publish sends an event with text to every subscriber of topic, calling
// them back one after the other, and returns how many received it.
func (h *Hub) Publish(ctx context.Context, topic, text string) (int, error) {
	h.mu.Lock()
	h.seq[topic]++
	e := Event{Topic: topic, Seq: h.seq[topic], Text: text, At: time.Now()}
	subs := append([]subscription(nil), h.subs[topic]...)
	h.mu.Unlock()
	delivered := 0
	for _, sub := range subs {
		if err := sub.s.Event(ctx, e); err != nil {
			return delivered, fmt.Errorf("feed: delivering %s #%d to node %s: %w", topic, e.Seq, sub.from, err)
		}
		delivered++
	}
	return delivered, nil
}

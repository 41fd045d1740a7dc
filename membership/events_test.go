package membership

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

func ev(i int) Event { return Event{Kind: Joined, Member: Member{ID: nodeid.ID(i)}} }

func TestSubscriptionOrder(t *testing.T) {
	h := NewEventHub()
	s := h.Subscribe(8)
	for i := 1; i <= 5; i++ {
		h.Publish(ev(i))
	}
	for i := 1; i <= 5; i++ {
		e, err := s.Next(context.Background())
		if err != nil || e.Member.ID != nodeid.ID(i) || e.Missed != 0 {
			t.Fatalf("event %d = %v, %v", i, e, err)
		}
	}
}

func TestSubscriptionOverflowDropsOldest(t *testing.T) {
	h := NewEventHub()
	slow := h.Subscribe(3)
	fast := h.Subscribe(100)
	for i := 1; i <= 10; i++ {
		h.Publish(ev(i)) // must not block although slow never reads
	}
	if got := slow.Dropped(); got != 7 {
		t.Fatalf("Dropped = %d, want 7", got)
	}
	e, _ := slow.TryNext()
	if e.Member.ID != 8 || e.Missed != 7 {
		t.Fatalf("first kept event = id %d missed %d, want id 8 missed 7", e.Member.ID, e.Missed)
	}
	for _, want := range []nodeid.ID{9, 10} {
		if e, ok := slow.TryNext(); !ok || e.Member.ID != want || e.Missed != 0 {
			t.Fatalf("got %v %v, want id %d", e, ok, want)
		}
	}
	if fast.Dropped() != 0 {
		t.Fatal("the fast subscriber lost events")
	}
	// Capacity one: every new event replaces the previous and carries the count.
	one := h.Subscribe(1)
	h.Publish(ev(1))
	h.Publish(ev(2))
	h.Publish(ev(3))
	if e, _ := one.TryNext(); e.Member.ID != 3 || e.Missed != 2 {
		t.Fatalf("capacity 1: got id %d missed %d, want id 3 missed 2", e.Member.ID, e.Missed)
	}
}

func TestSubscriptionNextWaitsAndHonoursContext(t *testing.T) {
	h := NewEventHub()
	s := h.Subscribe(0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on empty = %v, want deadline exceeded", err)
	}
	got := make(chan Event)
	go func() {
		e, _ := s.Next(context.Background())
		got <- e
	}()
	h.Publish(ev(42))
	select {
	case e := <-got:
		if e.Member.ID != 42 {
			t.Fatalf("got %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not wake up")
	}
}

func TestSubscriptionClose(t *testing.T) {
	h := NewEventHub()
	s := h.Subscribe(4)
	h.Publish(ev(1))
	h.Close()
	if e, err := s.Next(context.Background()); err != nil || e.Member.ID != 1 {
		t.Fatalf("queued event after hub close: %v %v", e, err)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after drain: %v, want ErrClosed", err)
	}
	if _, err := h.Subscribe(1).Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
	s2 := NewEventHub()
	sub := s2.Subscribe(1)
	sub.Close()
	sub.Close()
	s2.Publish(ev(1))
	if _, err := sub.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed subscription: %v", err)
	}
}

func TestSubscriptionConcurrent(t *testing.T) {
	h := NewEventHub()
	s := h.Subscribe(10000)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Publish(ev(g*1000 + i + 1))
			}
		}()
	}
	wg.Wait()
	n := 0
	for {
		if _, ok := s.TryNext(); !ok {
			break
		}
		n++
	}
	if n != 4000 {
		t.Fatalf("received %d events, want 4000", n)
	}
}

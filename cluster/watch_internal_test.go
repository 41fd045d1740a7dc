package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// ringOf returns the ring topology of epoch e over the first n of ids.
func ringOf(e uint64, ids []nodeid.ID, n int) topology.Topology {
	ms := make([]topology.Member, n)
	for i := range n {
		ms[i] = topology.Member{ID: ids[i], Name: fmt.Sprintf("N%d", i)}
	}
	t := topology.Compute(topology.Ring{}, ms, nil)
	t.Epoch = e
	return t
}

func testIDs(n int) []nodeid.ID {
	ids := make([]nodeid.ID, n)
	for i := range ids {
		ids[i] = nodeid.ID(i + 1)
	}
	return ids
}

// commitForTest publishes t as the cluster's commit does.
func (c *Cluster) commitForTest(t topology.Topology) {
	c.mu.Lock()
	c.committed = t
	c.committedLocked(t)
	c.mu.Unlock()
}

func TestSubscriptionDeliversEveryEpochInOrder(t *testing.T) {
	ids := testIDs(8)
	c := &Cluster{self: ids[0]}
	sub := c.Subscribe(4)
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var prev topology.Topology
	for e := uint64(1); e <= 200; e++ {
		// The member count goes up and down, so neighbours come and go.
		n := 1 + int(e%8)
		next := ringOf(e, ids, n)
		c.commitForTest(next)
		ch, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Epoch != e || ch.Skipped != 0 || !ch.Topology.Equal(next) {
			t.Fatalf("change %v, want epoch %d unskipped", ch, e)
		}
		want := pendingChange{from: prev, to: next}.change(ids[0])
		if fmt.Sprint(ch.Added, ch.Removed) != fmt.Sprint(want.Added, want.Removed) {
			t.Fatalf("epoch %d: neighbours +%v -%v, want +%v -%v", e, ch.Added, ch.Removed, want.Added, want.Removed)
		}
		prev = next
	}
	// A subscriber that reads in bursts no longer than its buffer misses
	// nothing either.
	for e := uint64(201); e <= 240; e++ {
		c.commitForTest(ringOf(e, ids, 3))
		if e%4 == 0 {
			for want := e - 3; want <= e; want++ {
				ch, err := sub.Next(ctx)
				if err != nil || ch.Epoch != want || ch.Skipped != 0 {
					t.Fatalf("burst: change %v, %v; want epoch %d", ch, err, want)
				}
			}
		}
	}
}

func TestSlowSubscriberNeverBlocks(t *testing.T) {
	ids := testIDs(8)
	c := &Cluster{self: ids[0]}
	c.commitForTest(ringOf(1, ids, 2))
	slow := c.Subscribe(2) // never read until the end
	defer slow.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := uint64(2); e <= 10000; e++ {
			c.commitForTest(ringOf(e, ids, 1+int(e%8)))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing to a subscriber that does not read blocked the cluster")
	}
	if n := len(slow.queue); n > 2 {
		t.Fatalf("the slow subscriber's queue holds %d changes, its buffer is 2", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	first, _ := slow.Next(ctx)
	if first.Epoch != 1 || len(first.Added) != 1 || first.Skipped != 0 {
		t.Fatalf("first change %v; want the committed epoch 1 with its neighbour", first)
	}
	// The last queued change holds the latest topology, with what did not
	// fit folded in: the subscriber is never left behind.
	last, err := slow.Next(ctx)
	if err != nil || last.Epoch != 10000 || last.Skipped != 9998 {
		t.Fatalf("folded change %v (%v), want epoch 10000 with 9998 skipped", last, err)
	}
	want := pendingChange{from: first.Topology, to: last.Topology}.change(ids[0])
	if fmt.Sprint(last.Added, last.Removed) != fmt.Sprint(want.Added, want.Removed) {
		t.Fatalf("folded neighbours +%v -%v, want +%v -%v", last.Added, last.Removed, want.Added, want.Removed)
	}
	c.commitForTest(ringOf(10001, ids, 8))
	if next, err := slow.Next(ctx); err != nil || next.Epoch != 10001 || next.Skipped != 0 {
		t.Fatalf("after catching up: %v, %v; want epoch 10001", next, err)
	}
}

func TestSubscriptionClose(t *testing.T) {
	c := &Cluster{self: 1}
	sub := c.Subscribe(0)
	c.commitForTest(ringOf(1, testIDs(2), 2))
	c.closeTopics()
	ctx := context.Background()
	if ch, err := sub.Next(ctx); err != nil || ch.Epoch != 1 {
		t.Fatalf("a queued change is still read after close: %v, %v", ch, err)
	}
	if _, err := sub.Next(ctx); err != ErrSubscriptionClosed {
		t.Fatalf("Next after close: %v", err)
	}
	if _, err := c.Subscribe(1).Next(ctx); err != ErrSubscriptionClosed {
		t.Fatalf("Subscribe after close: %v", err)
	}
	sub.Close() // twice is harmless
}

package membershiptest_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/membershiptest"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestFakeClockTicker(t *testing.T) {
	c := membershiptest.NewFakeClock(t0)
	tk := c.NewTicker(100 * time.Millisecond)
	c.Advance(99 * time.Millisecond)
	select {
	case <-tk.C():
		t.Fatal("ticked early")
	default:
	}
	c.Advance(time.Millisecond)
	select {
	case got := <-tk.C():
		if !got.Equal(t0.Add(100 * time.Millisecond)) {
			t.Fatalf("tick at %v", got)
		}
	default:
		t.Fatal("no tick at 100ms")
	}
	// A slow receiver loses ticks instead of receiving a burst.
	c.Advance(time.Second)
	<-tk.C()
	select {
	case <-tk.C():
		t.Fatal("ticks queued up")
	default:
	}
	tk.Stop()
	c.Advance(time.Second)
	select {
	case <-tk.C():
		t.Fatal("stopped ticker ticked")
	default:
	}
	c.Set(t0) // backwards: ignored
	if !c.Now().Equal(t0.Add(2100 * time.Millisecond)) {
		t.Fatalf("clock at %v", c.Now())
	}
}

func addr(i byte) netip.AddrPort { return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, i}), 1) }

func TestNetworkConditions(t *testing.T) {
	c := membershiptest.NewFakeClock(t0)
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 7, Clock: c, Manual: true,
		Conditions: membershiptest.Conditions{Loss: 0.3, Duplicate: 0.2, Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}})
	a, _ := nw.Listen(addr(1), true)
	b, _ := nw.Listen(addr(2), true)
	if _, err := nw.Listen(addr(2), true); err == nil {
		t.Fatal("address reused")
	}
	const n = 10000
	for range n {
		a.WriteTo([]byte("x"), b.LocalAddr())
	}
	if at, ok := nw.NextDelivery(); !ok || at.Before(t0.Add(10*time.Millisecond)) || !at.Before(t0.Add(15*time.Millisecond)) {
		t.Fatalf("first delivery at %v", at)
	}
	got := 0
	nw.DeliverDue(t0.Add(time.Second), func(to, from netip.AddrPort, p []byte) {
		if to != addr(2) || from != addr(1) || string(p) != "x" {
			t.Fatalf("delivery %v %v %q", to, from, p)
		}
		got++
	})
	// Expected: n × 0.7 × 1.2 = 8400.
	if got < 8000 || got > 8800 {
		t.Fatalf("%d of %d delivered, want about 8400", got, n)
	}
	// Partition and per-sender silence.
	nw.SetConditions(membershiptest.Conditions{})
	nw.Partition([]netip.AddrPort{addr(1)}, []netip.AddrPort{addr(2)})
	a.Broadcast([]byte("p"))
	nw.Heal()
	nw.SetSenderConditions(addr(2), membershiptest.Conditions{Loss: 1})
	b.Broadcast([]byte("q"))
	var seen []string
	nw.DeliverDue(t0.Add(time.Hour), func(to, from netip.AddrPort, p []byte) { seen = append(seen, to.String()+string(p)) })
	if len(seen) != 1 || seen[0] != addr(1).String()+"p" { // only a's own loopback copy
		t.Fatalf("delivered %v, want only a's echo of p", seen)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteTo([]byte("x"), addr(2)); err == nil {
		t.Fatal("write after close")
	}
}

// Real Nodes, goroutines and all, on the in-memory network and the fake clock:
// time moves only when the test says so.
func TestNodesOnFakeClock(t *testing.T) {
	c := membershiptest.NewFakeClock(t0)
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 1})
	var nodes []*membership.Node
	var subs []*membership.Subscription
	for i := byte(1); i <= 2; i++ {
		ep, _ := nw.Listen(addr(i), true)
		n, err := membership.New(membership.Config{Name: fmt.Sprintf("f%d", i), Keys: [][]byte{[]byte("fake-clock-key-0123")},
			Transport: ep, Clock: c})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, n.Subscribe(0))
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	// advanceUntil moves fake time in 10 ms steps, giving the nodes' goroutines
	// a moment of real time after each, until an event matches.
	advanceUntil := func(sub *membership.Subscription, kind membership.EventKind, limit time.Duration) time.Duration {
		start := c.Now()
		for c.Now().Sub(start) < limit {
			c.Advance(10 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
			ev, err := sub.Next(ctx)
			cancel()
			for err == nil {
				if ev.Kind == kind {
					return c.Now().Sub(start)
				}
				ev, err = sub.Next(ctx)
			}
		}
		t.Fatalf("no %v within %v of fake time", kind, limit)
		return 0
	}
	advanceUntil(subs[0], membership.Joined, 5*time.Second)
	nodes[1].Close()
	took := advanceUntil(subs[0], membership.Failed, 10*time.Second)
	if took < membership.DefaultSuspectAfter || took > 2*membership.DefaultFailAfter {
		t.Fatalf("failure after %v of fake time", took)
	}
}

package membership_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/membershiptest"
	"github.com/trellisrpc/trellis/nodeid"
)

// These tests run real Nodes (their goroutines, the system clock) on the
// in-memory network, with a fast heartbeat so that they finish quickly. Every wait
// is for an event, bounded by a deadline.

const fastInterval = 20 * time.Millisecond

// checkGoroutines fails the test if the goroutine count has not returned to its
// value at the call within a bounded wait after the test.
func checkGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d after the test, %d before\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
				return
			}
			runtime.Gosched()
			time.Sleep(5 * time.Millisecond) // polling a count: no event to wait for
		}
	})
}

type liveNode struct {
	*membership.Node
	sub     *membership.Subscription
	pending []membership.Event // read but not yet matched by await
}

func startNode(t *testing.T, nw *membershiptest.Network, i int, mutate func(*membership.Config)) *liveNode {
	t.Helper()
	ep, err := nw.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), 7947), true)
	if err != nil {
		t.Fatal(err)
	}
	cfg := membership.Config{Name: fmt.Sprintf("n%d", i), ID: nodeid.ID(0x2000 + i), Keys: [][]byte{testKey},
		Transport: ep, Interval: fastInterval}
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := membership.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := &liveNode{Node: n, sub: n.Subscribe(0)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return ln
}

// await returns the first event, in arrival order, that matches and was not
// returned before, reading more events if needed and failing after the bound.
func (ln *liveNode) await(t *testing.T, what string, match func(membership.Event) bool) membership.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; ; i++ {
		for i >= len(ln.pending) {
			ev, err := ln.sub.Next(ctx)
			if err != nil {
				t.Fatalf("%s: waiting for %s: %v", ln.Local().Name, what, err)
			}
			ln.pending = append(ln.pending, ev)
		}
		if ev := ln.pending[i]; match(ev) {
			ln.pending = append(ln.pending[:i], ln.pending[i+1:]...)
			return ev
		}
	}
}

func is(kind membership.EventKind, id nodeid.ID) func(membership.Event) bool {
	return func(ev membership.Event) bool { return ev.Kind == kind && ev.Member.ID == id }
}

func TestNodeLifecycle(t *testing.T) {
	checkGoroutines(t)
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 1})
	a, b, c := startNode(t, nw, 1, nil), startNode(t, nw, 2, nil), startNode(t, nw, 3, nil)
	for _, x := range []*liveNode{a, b, c} {
		for _, y := range []*liveNode{a, b, c} {
			if x != y {
				x.await(t, "join of "+y.Local().Name, is(membership.Joined, y.ID()))
			}
		}
	}
	if l, ok := c.Leader(); !ok || l.ID != a.ID() {
		t.Fatalf("leader %v, want n1 (started first)", l)
	}
	if err := c.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.await(t, "n3 left", is(membership.Left, c.ID()))
	b.await(t, "n3 left", is(membership.Left, c.ID()))
	if _, err := c.sub.Next(context.Background()); !errors.Is(err, membership.ErrClosed) {
		// Drain what was queued before Leave; the subscription ends with ErrClosed.
		for err == nil {
			_, err = c.sub.Next(context.Background())
		}
		if !errors.Is(err, membership.ErrClosed) {
			t.Fatalf("subscription after Leave: %v", err)
		}
	}
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b.await(t, "n1 failed", is(membership.Failed, a.ID()))
	ev := b.await(t, "leader change from n1", func(ev membership.Event) bool {
		return ev.Kind == membership.LeaderChanged && ev.Previous == a.ID()
	})
	if ev.Member.ID != b.ID() {
		t.Fatalf("LeaderChanged %v, want n2 after n1", ev)
	}
	// Defaults scaled to the 20 ms interval: FailAfter = 6 intervals = 120 ms.
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("failure declared after %v: faster than SuspectAfter", d)
	}
	if ms := b.Members(); len(ms) != 1 || !ms[0].Local {
		t.Fatalf("members %v, want only n2", ms)
	}
	b.Close()
	if len(b.Members()) != 0 {
		t.Fatal("members after Close")
	}
	if _, ok := b.Leader(); ok {
		t.Fatal("leader after Close")
	}
}

func TestNodeStartAndCloseRules(t *testing.T) {
	checkGoroutines(t)
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 2})
	if _, err := membership.New(membership.Config{}); !errors.Is(err, membership.ErrNoKeys) {
		t.Fatalf("New without keys: %v", err)
	}
	n := startNode(t, nw, 1, nil)
	if err := n.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, membership.ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	// Start with a dead context fails cleanly.
	ep, _ := nw.Listen(netip.MustParseAddrPort("10.1.0.9:7947"), true)
	m, err := membership.New(membership.Config{Keys: [][]byte{testKey}, Transport: ep})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with cancelled ctx: %v", err)
	}
	// Leave with a dead context still stops the node, and says why nothing was announced.
	if err := m.Leave(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Leave with cancelled ctx: %v", err)
	}
	if err := m.Start(context.Background()); !errors.Is(err, membership.ErrClosed) {
		t.Fatalf("Start after Leave: %v", err)
	}
}

func TestNodeMetaUpdate(t *testing.T) {
	checkGoroutines(t)
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 3})
	a := startNode(t, nw, 1, func(c *membership.Config) { c.Meta = []byte("v1") })
	b := startNode(t, nw, 2, nil)
	ev := b.await(t, "join", is(membership.Joined, a.ID()))
	if string(ev.Member.Meta) != "v1" {
		t.Fatalf("meta at join %q", ev.Member.Meta)
	}
	if err := a.SetMeta(make([]byte, membership.MaxMetaLen+1)); err == nil {
		t.Fatal("oversized meta accepted")
	}
	if err := a.SetMeta([]byte("v2")); err != nil {
		t.Fatal(err)
	}
	ev = b.await(t, "update", is(membership.Updated, a.ID()))
	if string(ev.Member.Meta) != "v2" {
		t.Fatalf("meta after update %q", ev.Member.Meta)
	}
	// Callers get copies: scribbling on one changes nothing inside the node.
	for _, m := range b.Members() {
		if m.ID == a.ID() {
			m.Meta[0] = 'X'
		}
	}
	for _, m := range b.Members() {
		if m.ID == a.ID() && string(m.Meta) != "v2" {
			t.Fatalf("member list aliased by a caller: meta %q", m.Meta)
		}
	}
}

// A change of metadata goes out at once rather than with the next heartbeat,
// up to an interval later: whatever the phase of the heartbeats, the other
// member sees it within a few network delays.
func TestMetaChangeSentAtOnce(t *testing.T) {
	s := newSim(t, 7, membershiptest.Conditions{Delay: time.Millisecond})
	nodes := s.addN(2)
	a, b := nodes[0], nodes[1]
	s.runUntil(5*time.Second, "the two members see each other", s.allSee("n1,n2"))
	metaOf := func(sn *simNode, id nodeid.ID) string {
		for _, m := range sn.node.Members() {
			if m.ID == id {
				return string(m.Meta)
			}
		}
		return ""
	}
	for i := range 8 {
		// Each change at another phase of a's heartbeats (every
		// DefaultInterval): 0, 1/8, ... 7/8 of an interval after the last.
		s.run(membership.DefaultInterval + membership.DefaultInterval*time.Duration(i)/8)
		want := fmt.Sprint("v", i)
		if err := a.node.SetMeta([]byte(want)); err != nil {
			t.Fatal(err)
		}
		took := s.runUntil(membership.DefaultInterval, "b sees a's new metadata", func() bool { return metaOf(b, a.id) == want })
		if took > 10*time.Millisecond {
			t.Errorf("change %d: b saw a's new metadata after %v, want within 10 ms (a 1 ms network)", i, took)
		}
	}
	// A flood of changes is pushed at most once a tick, the last one
	// included: the node does not flood the cluster.
	s.run(membership.DefaultInterval)
	before := a.node.Stats().PacketsSent
	for i := range 100 {
		if err := a.node.SetMeta([]byte(fmt.Sprint("flood", i))); err != nil {
			t.Fatal(err)
		}
	}
	s.runUntil(membership.DefaultInterval, "b sees the last of a flood of changes", func() bool { return metaOf(b, a.id) == "flood99" })
	if sent := a.node.Stats().PacketsSent - before; sent > 3 {
		t.Errorf("a flood of 100 changes sent %d packets, want at most 3", sent)
	}
}

// During a key rotation nodes hold the old and the new key in different orders and
// still accept each other; a node with neither key is refused and counted.
func TestNodeKeyRotation(t *testing.T) {
	checkGoroutines(t)
	k1, k2, k3 := []byte("rotation-key-one-0000"), []byte("rotation-key-two-0000"), []byte("rotation-key-three-00")
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 4})
	a := startNode(t, nw, 1, func(c *membership.Config) { c.Keys = [][]byte{k1, k2} })
	b := startNode(t, nw, 2, func(c *membership.Config) { c.Keys = [][]byte{k2, k1} })
	x := startNode(t, nw, 3, func(c *membership.Config) { c.Keys = [][]byte{k3} })
	a.await(t, "b joins a", is(membership.Joined, b.ID()))
	b.await(t, "a joins b", is(membership.Joined, a.ID()))
	// Finish the rotation: a signs with k2 now, and b drops k1.
	if err := a.SetKeys([][]byte{k2}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetKeys([][]byte{k2}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetKeys(nil); !errors.Is(err, membership.ErrNoKeys) {
		t.Fatalf("empty keyring accepted: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Stats().Forged == 0 || b.Stats().Forged == 0 {
		if time.Now().After(deadline) {
			t.Fatal("packets signed with an unknown key were not counted as forged")
		}
		time.Sleep(fastInterval) // a counter has no event to wait for
	}
	// Let several detection periods pass: the rotation must not cost a failure.
	time.Sleep(20 * fastInterval)
	for _, n := range []*liveNode{a, b} {
		if n.Stats().Failures != 0 {
			t.Errorf("%s: %d failures during rotation", n.Local().Name, n.Stats().Failures)
		}
		for _, m := range n.Members() {
			if m.ID == x.ID() {
				t.Errorf("%s accepted a node with a foreign key", n.Local().Name)
			}
		}
	}
}

// Real UDP sockets on 127.0.0.1, unicast seeds only: no privileges needed.
func TestNodeUDPUnicastSeeds(t *testing.T) {
	checkGoroutines(t)
	mk := func(name string, bind string, seeds ...string) *liveNode {
		n, err := membership.New(membership.Config{Name: name, Keys: [][]byte{testKey}, DisableMulticast: true,
			BindAddr: bind, Seeds: seeds, Interval: fastInterval})
		if err != nil {
			t.Fatal(err)
		}
		ln := &liveNode{Node: n, sub: n.Subscribe(0)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return ln
	}
	// The seed's own seed is a dead address: it learns the others from their packets.
	seed := mk("seed", "127.0.0.1:0", "127.0.0.1:1")
	port := seed.Local().PacketAddr.Port()
	others := []*liveNode{
		mk("u1", "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", port)),
		mk("u2", "127.0.0.1:0", fmt.Sprintf("localhost:%d", port)),
		mk("u3", "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", port)),
	}
	all := append([]*liveNode{seed}, others...)
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range all {
		for len(n.Members()) != 4 {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %v", n.Local().Name, n.Members())
			}
			n.await(t, "a join", func(ev membership.Event) bool { return ev.Kind == membership.Joined })
		}
	}
	others[2].Close()
	for _, n := range all[:3] {
		n.await(t, "u3 failed", is(membership.Failed, others[2].ID()))
	}
}

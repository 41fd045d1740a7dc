package membership_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/membershiptest"
)

// fakeResolver answers look-ups with the addresses it is set to, or fails.
type fakeResolver struct {
	mu      sync.Mutex
	addrs   []netip.Addr
	fail    bool
	lookups int
	changed chan struct{} // closed and replaced at every look-up
}

func newFakeResolver(addrs ...string) *fakeResolver {
	r := &fakeResolver{changed: make(chan struct{})}
	r.set(addrs...)
	return r
}

func (r *fakeResolver) set(addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs, r.fail = nil, false
	for _, a := range addrs {
		r.addrs = append(r.addrs, netip.MustParseAddr(a))
	}
}

func (r *fakeResolver) failing() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = true
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	close(r.changed)
	r.changed = make(chan struct{})
	if r.fail || host != "seeds.test" {
		return nil, errors.New("no such host")
	}
	return slices.Clone(r.addrs), nil
}

// awaitLookups waits until the resolver has answered n more look-ups.
func (r *fakeResolver) awaitLookups(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for range n {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the seed names were not resolved again %d times within 10 s", n)
		}
	}
}

// TestSeedNamesResolvedAgain checks that a seed's host name is resolved
// again every SeedRefresh, so that a member heartbeats the address the name
// has now; that a failing look-up keeps the addresses the name last had;
// and that a name's addresses are capped.
func TestSeedNamesResolvedAgain(t *testing.T) {
	checkGoroutines(t)
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 1})
	quiet := func(c *membership.Config) { c.DisableMulticast = true }
	first, second := startNode(t, nw, 1, quiet), startNode(t, nw, 2, quiet)
	r := newFakeResolver("10.1.0.1")
	n := startNode(t, nw, 9, func(c *membership.Config) {
		c.DisableMulticast = true
		c.Seeds = []string{"seeds.test:7947"}
		c.SeedRefresh = 10 * time.Millisecond
		c.Resolver = r
	})
	first.await(t, "n9 found through the seed name", is(membership.Joined, n.ID()))

	// The name moves to the second node: only the heartbeats to the new
	// address can tell it of n9.
	r.set("10.1.0.2")
	second.await(t, "n9 found through the seed name's new address", is(membership.Joined, n.ID()))
	want := []netip.AddrPort{netip.MustParseAddrPort("10.1.0.2:7947")}
	if got := n.SeedAddrs(); !slices.Equal(got, want) {
		t.Fatalf("seeds %v, want %v", got, want)
	}

	// A failing look-up keeps the last addresses.
	r.failing()
	r.awaitLookups(t, 3)
	if got := n.SeedAddrs(); !slices.Equal(got, want) {
		t.Fatalf("after failed look-ups the seeds are %v, want the last addresses %v", got, want)
	}

	// A name with many addresses: the lowest MaxSeedAddrs of them.
	var many []string
	for i := 200; i > 100; i-- {
		many = append(many, netip.AddrFrom4([4]byte{10, 2, 0, byte(i)}).String())
	}
	r.set(many...)
	r.awaitLookups(t, 2)
	got := n.SeedAddrs()
	if len(got) != membership.MaxSeedAddrs || got[0] != netip.MustParseAddrPort("10.2.0.101:7947") {
		t.Fatalf("a name with %d addresses gave the seeds %v, want the lowest %d", len(many), got, membership.MaxSeedAddrs)
	}
}

func TestBadSeedRefused(t *testing.T) {
	for _, seed := range []string{"host:0", "host:x", "host:70000", ":7947"} {
		_, err := membership.New(membership.Config{Keys: [][]byte{testKey}, Seeds: []string{seed}})
		if err == nil {
			t.Errorf("seed %q accepted", seed)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestUnresolvedSeedWarned checks that a seed name that does not resolve
// is logged as a warning when the member starts, rather than dropped in
// silence (the member then heartbeats nobody through it).
func TestUnresolvedSeedWarned(t *testing.T) {
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 1})
	var logs lockedBuffer
	r := newFakeResolver()
	r.failing()
	startNode(t, nw, 1, func(c *membership.Config) {
		c.DisableMulticast = true
		c.Seeds = []string{"nowhere.test:7947"}
		c.SeedRefresh = time.Hour
		c.Resolver = r
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	if got := logs.String(); !strings.Contains(got, "seed does not resolve") || !strings.Contains(got, "nowhere.test:7947") {
		t.Fatalf("logs after starting with an unresolvable seed:\n%s\nwant a warning naming the seed", got)
	}
}

// TestForgedPacketsWarned checks that a member warns, once for many
// packets, when it drops heartbeats that fail authentication: a member
// started with another cluster key otherwise forms its own cluster in
// silence.
func TestForgedPacketsWarned(t *testing.T) {
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 1})
	var logs lockedBuffer
	n := startNode(t, nw, 1, func(c *membership.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	startNode(t, nw, 2, func(c *membership.Config) {
		c.Keys = [][]byte{[]byte("another cluster's key, 32 bytes.")}
	})
	deadline := time.Now().Add(10 * time.Second)
	for n.Stats().Forged < 3 { // no event to await: the packets are only counted
		if time.Now().After(deadline) {
			t.Fatalf("n1 counted %d forged packets in 10 s, want 3", n.Stats().Forged)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := strings.Count(logs.String(), "fail authentication"); got != 1 {
		t.Fatalf("after %d forged packets n1 warned %d times, want once:\n%s", n.Stats().Forged, got, logs.String())
	}
}

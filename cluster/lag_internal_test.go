package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// gossipDiscovery is a membership whose metadata spreads in spread.
type gossipDiscovery struct {
	noDiscovery
	spread time.Duration
}

func (d gossipDiscovery) MetaSpread() time.Duration { return d.spread }

// A leader takes a member still advertising the epoch before its last commit
// for one that missed the commit only once the backend's metadata has had
// time to spread: with memberlist's gossip, 1 s was too short, and the
// leader cascaded the same topology again and again.
func TestLaggingWaitsForTheMetadataToSpread(t *testing.T) {
	ids := []nodeid.ID{1, 2, 3}
	committed := topology.Topology{Epoch: 5}
	var live []membership.Member
	for i, id := range ids {
		committed.Members = append(committed.Members, topology.Member{ID: id, Name: fmt.Sprint("N", i+1)})
		live = append(live, membership.Member{ID: id, Name: fmt.Sprint("N", i+1), Meta: encodeMeta(ballots{Epoch: 4, Last: 4}, nil, nil)})
	}
	self := membership.Member{ID: 1, Name: "N1"}
	for _, tc := range []struct {
		name  string
		disc  membership.Discovery
		since time.Duration
		lag   bool
	}{
		{"heartbeats, 0.5 s after the commit", noDiscovery{self}, 500 * time.Millisecond, false},
		{"heartbeats, 1.5 s after", noDiscovery{self}, 1500 * time.Millisecond, true},
		{"gossip spreading in 6 s, 1.5 s after", gossipDiscovery{noDiscovery{self}, 6 * time.Second}, 1500 * time.Millisecond, false},
		{"gossip spreading in 6 s, 7 s after", gossipDiscovery{noDiscovery{self}, 6 * time.Second}, 7 * time.Second, true},
		{"a spread shorter than the grace, 0.5 s after", gossipDiscovery{noDiscovery{self}, 100 * time.Millisecond}, 500 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{self: 1, disc: tc.disc}
			a := c.advertisedEpochs(live, committed, tc.since)
			if want := []string{"N2", "N3"}; tc.lag != slices.Equal(a.lagging, want) || !tc.lag && len(a.lagging) > 0 {
				t.Errorf("lagging = %v, want lagging %v", a.lagging, tc.lag)
			}
		})
	}
}

// A leader retrying a failed cascade for the same members waits twice as
// long each time, up to maxRetryWait; other members, or a success, start
// afresh.
func TestRetryBackoff(t *testing.T) {
	t0 := time.Unix(1000, 0)
	step := 100 * time.Millisecond
	var b retryBackoff
	if b.holds("A B", t0) {
		t.Fatal("holds before any failure")
	}
	var waits []time.Duration
	now := t0
	for range 6 {
		b.failed("A B", now, step)
		waits = append(waits, b.wait)
		if !b.holds("A B", now.Add(b.wait-time.Millisecond)) || b.holds("A B", now.Add(b.wait)) {
			t.Fatalf("after a wait of %v: holds %v just before its end, %v at its end", b.wait,
				b.holds("A B", now.Add(b.wait-time.Millisecond)), b.holds("A B", now.Add(b.wait)))
		}
		now = now.Add(b.wait)
	}
	if want := []time.Duration{100, 200, 400, 800, 1000, 1000}; !slices.Equal(waits, scale(want, time.Millisecond)) {
		t.Errorf("waits %v, want %v ms", waits, want)
	}
	if b.holds("A B C", t0.Add(time.Nanosecond)) {
		t.Error("holds for other members")
	}
	b.failed("A C", now, step)
	if b.wait != step {
		t.Errorf("other members start at %v, want %v", b.wait, step)
	}
}

func scale(ds []time.Duration, unit time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d * unit
	}
	return out
}

package cluster

import (
	"testing"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

func TestDialBackoffGrowsWithJitterAndResets(t *testing.T) {
	b := dialBackoff{base: 100 * time.Millisecond}
	now := time.Unix(0, 0)
	id := nodeid.ID(7)
	if !b.due(id, now) {
		t.Fatal("a neighbour never dialed is not due")
	}
	ceiling := b.base
	for i := range 10 {
		d := b.failed(id, now)
		if d < ceiling/2 || d > ceiling {
			t.Fatalf("failure %d: wait %v, want within [%v, %v]", i+1, d, ceiling/2, ceiling)
		}
		if b.due(id, now.Add(d-time.Nanosecond)) || !b.due(id, now.Add(d)) {
			t.Fatalf("failure %d: due before or not after the wait %v", i+1, d)
		}
		ceiling = min(2*ceiling, maxDialBackoff)
	}
	// Waits differ between members: jitter.
	seen := map[time.Duration]bool{}
	for range 20 {
		c := dialBackoff{base: b.base}
		seen[c.failed(id, now)] = true
	}
	if len(seen) < 2 {
		t.Fatal("every member would wait the same time")
	}
	b.forget(id)
	if !b.due(id, now) || b.failed(id, now) > b.base {
		t.Fatal("a forgotten neighbour does not start over")
	}
	b.keep(nil)
	if len(b.state) != 0 {
		t.Fatal("keep(nil) kept state")
	}
}

package topology

import (
	"os"
	"slices"
	"testing"
	"time"
)

// TestFiguresScale prints what the topology layer costs at N = 16, 64, 256
// and 1,000 for each built-in strategy: the leader's Compute on a join, a
// member's Routes, the routing table's size and the longest route. It runs
// only with TRELLIS_FIGURES=1 (see membership/memberlist/FIGURES.md):
//
//	TRELLIS_FIGURES=1 go test -run TestFiguresScale -v ./topology
func TestFiguresScale(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") != "1" {
		t.Skip("set TRELLIS_FIGURES=1 to measure")
	}
	for _, s := range builtin() {
		for _, n := range []int{16, 64, 256, 1000} {
			ms := testMembers(n)
			prev := Compute(s, ms[:n-1], nil)
			compute := median(9, func() { Compute(s, ms, &prev) })
			top := Compute(s, ms, &prev)
			routes := median(9, func() { Routes(top, ms[n/2].ID) })
			rt := Routes(top, ms[n/2].ID)
			deg := 0
			for _, m := range ms {
				deg = max(deg, len(top.Neighbours(m.ID)))
			}
			diam := -2
			if n <= 256 || s.Name() != "bus" {
				diam = Diameter(top)
			} else {
				diam = 1
			}
			t.Logf("%-9s N=%4d: compute %9v  routes/node %9v  edges %6d  max degree %4d  table %4d entries  longest route %3d hops",
				s.Name(), n, compute, routes, len(top.Edges), deg, len(rt.Destinations()), diam)
		}
	}
}

// median runs f k times and returns the median duration.
func median(k int, f func()) time.Duration {
	ds := make([]time.Duration, k)
	for i := range ds {
		start := time.Now()
		f()
		ds[i] = time.Since(start)
	}
	slices.Sort(ds)
	return ds[k/2]
}

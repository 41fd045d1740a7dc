package topology

import (
	"math/bits"
	"testing"
)

// hypercubeMaxN is the largest number of members for which the hypercube
// bounds are verified exhaustively (256 with -short).
const hypercubeMaxN = 1024

// TestHypercubeBounds verifies, for every N from 1 to 1024, the bounds
// documented on Hypercube: with d = ⌈log2 N⌉, the graph is connected, every
// member has at most d edges and is at most d hops from any other, and for
// N ≥ 3 every member has at least two edges and no single member's failure
// disconnects the others. It also pins the exact figures: the largest
// degree is d, the smallest max(2, popcount(N−1)) for N ≥ 3, and the
// diameter as hypercubeDiameter gives it.
func TestHypercubeBounds(t *testing.T) {
	maxN := hypercubeMaxN
	if testing.Short() {
		maxN = 256
	}
	all := testMembers(maxN)
	for n := 1; n <= maxN; n++ {
		top := Compute(Hypercube{}, all[:n], nil)
		g := newGraph(top)
		d := bits.Len(uint(n - 1))
		lo, hi := degrees(top)
		if hi > d {
			t.Errorf("N=%d: largest degree %d > ⌈log2 N⌉ = %d", n, hi, d)
		}
		if n >= 3 && lo < 2 {
			t.Errorf("N=%d: smallest degree %d < 2", n, lo)
		}
		dia := diameterBitset(g.adj)
		switch {
		case dia < 0:
			t.Errorf("N=%d: not connected", n)
		case dia > d:
			t.Errorf("N=%d: diameter %d > ⌈log2 N⌉ = %d", n, dia, d)
		}
		if n >= 3 {
			if cut := articulationPoints(g.adj); len(cut) > 0 {
				t.Errorf("N=%d: the failure of label %v disconnects the others", n, cut)
			}
		}
		if want := hypercubeDiameter(n); dia != want {
			t.Errorf("N=%d: diameter %d, want %d", n, dia, want)
		}
		if n >= 2 && hi != d {
			t.Errorf("N=%d: largest degree %d, want exactly %d", n, hi, d)
		}
		// The newest member, label N−1, has the fewest edges: one per set
		// bit of N−1, or two with the cover edge.
		if want := max(2, bits.OnesCount(uint(n-1))); n >= 3 && lo != want {
			t.Errorf("N=%d: smallest degree %d, want max(2, popcount(N−1)) = %d", n, lo, want)
		}
	}
}

// hypercubeDiameter returns the exact diameter of the hypercube over n
// members, as TestHypercubeBounds measures it for n ≤ 1024: d = ⌈log2 n⌉,
// except for n = 3 (the triangle, 1) and n = 2^(d−1)+1 ≥ 5 (d−1: the lone
// upper label 2^(d−1) is one hop from labels 0 and 1, so within d−1 hops
// of every lower label).
func hypercubeDiameter(n int) int {
	d := bits.Len(uint(n - 1))
	switch {
	case n == 3:
		return 1
	case n >= 5 && n == 1<<(d-1)+1:
		return d - 1
	}
	return d
}

// TestHypercubeChurn checks that a join only adds the newcomer's edges and
// replaces at most one cover edge, and so does the departure of the newest
// member, for N up to 130.
func TestHypercubeChurn(t *testing.T) {
	all := testMembers(131)
	for n := 2; n <= 130; n++ {
		prev := Compute(Hypercube{}, all[:n-1], nil)
		next := Compute(Hypercube{}, all[:n], &prev)
		added, removed := edgeChanges(prev, next)
		newcomer := all[n-1].ID
		for _, e := range added {
			if e.A != newcomer && e.B != newcomer {
				t.Errorf("join to N=%d added %v between older members", n, e)
			}
		}
		if len(removed) > 1 {
			t.Errorf("join to N=%d removed %v, want at most one cover edge", n, removed)
		}
		// The departure of the newest member is the same change reversed.
		back := Compute(Hypercube{}, all[:n-1], &next)
		if a, r := edgeChanges(next, back); len(a) != len(removed) || len(r) != len(added) {
			t.Errorf("newest member leaving N=%d: %d added, %d removed; want %d, %d", n, len(a), len(r), len(removed), len(added))
		}
	}
}

// diameterBitset returns the diameter of the graph adj, or -1 if it is not
// connected. It grows, for all members at once, the set of members within r
// hops (a bitset per member) until every set is full: O(n²·deg/64) per hop.
func diameterBitset(adj [][]int) int {
	n := len(adj)
	w := (n + 63) / 64
	cur, next := make([]uint64, n*w), make([]uint64, n*w)
	for v := range n {
		cur[v*w+v/64] |= 1 << (v % 64)
	}
	full := func(s []uint64) bool {
		for v := range n {
			count := 0
			for _, x := range s[v*w : (v+1)*w] {
				count += bits.OnesCount64(x)
			}
			if count != n {
				return false
			}
		}
		return true
	}
	for r := 0; ; r++ {
		if full(cur) {
			return r
		}
		changed := false
		for v := range n {
			row := next[v*w : (v+1)*w]
			copy(row, cur[v*w:(v+1)*w])
			for _, u := range adj[v] {
				for i, x := range cur[u*w : (u+1)*w] {
					row[i] |= x
				}
			}
			for i := range row {
				changed = changed || row[i] != cur[v*w+i]
			}
		}
		if !changed {
			return -1
		}
		cur, next = next, cur
	}
}

// articulationPoints returns the vertices of the connected graph adj whose
// removal disconnects it (Hopcroft–Tarjan).
func articulationPoints(adj [][]int) []int {
	n := len(adj)
	order, low := make([]int, n), make([]int, n)
	for i := range order {
		order[i] = -1
	}
	var cut []int
	counter := 0
	var visit func(v, parent int)
	visit = func(v, parent int) {
		order[v], low[v] = counter, counter
		counter++
		children, isCut := 0, false
		for _, u := range adj[v] {
			switch {
			case order[u] < 0:
				children++
				visit(u, v)
				low[v] = min(low[v], low[u])
				if parent >= 0 && low[u] >= order[v] {
					isCut = true
				}
			case u != parent:
				low[v] = min(low[v], order[u])
			}
		}
		if parent < 0 && children > 1 {
			isCut = true
		}
		if isCut {
			cut = append(cut, v)
		}
	}
	visit(0, -1)
	return cut
}

package topology

import (
	"fmt"
	"slices"

	"github.com/trellisrpc/trellis/nodeid"
)

// testID returns the id of the i-th test member. Multiplying by an odd
// constant is a bijection modulo 2^64, so ids are distinct and non-zero, and
// they are not in membership order: tests catch any confusion of the two.
func testID(i int) nodeid.ID {
	return nodeid.ID(uint64(i+1) * 0x9e3779b97f4a7c15)
}

// testMembers returns n members in membership order, named as in the
// reference scenario: "LeaderNode", "Node1", "Node2"...
func testMembers(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		name := "LeaderNode"
		if i > 0 {
			name = fmt.Sprintf("Node%d", i)
		}
		ms[i] = Member{ID: testID(i), Name: name, Addr: fmt.Sprintf("127.0.0.1:%d", 7000+i)}
	}
	return ms
}

// labelEdges returns the sorted, normalised edges between the members of ms
// at the given pairs of positions.
func labelEdges(ms []Member, pairs ...[2]int) []Edge {
	edges := make([]Edge, 0, len(pairs))
	for _, p := range pairs {
		edges = append(edges, NewEdge(ms[p[0]].ID, ms[p[1]].ID))
	}
	slices.SortFunc(edges, compareEdges)
	return edges
}

// edgeChanges returns the edges in next and not in prev, and those in prev
// and not in next.
func edgeChanges(prev, next Topology) (added, removed []Edge) {
	for _, e := range next.Edges {
		if !prev.HasEdge(e.A, e.B) {
			added = append(added, e)
		}
	}
	for _, e := range prev.Edges {
		if !next.HasEdge(e.A, e.B) {
			removed = append(removed, e)
		}
	}
	return added, removed
}

// degrees returns the smallest and largest number of edges of a member of t.
func degrees(t Topology) (lo, hi int) {
	if len(t.Members) == 0 {
		return 0, 0
	}
	deg := make(map[nodeid.ID]int, len(t.Members))
	for _, e := range t.Edges {
		deg[e.A]++
		deg[e.B]++
	}
	lo = len(t.Members)
	for _, m := range t.Members {
		lo, hi = min(lo, deg[m.ID]), max(hi, deg[m.ID])
	}
	return lo, hi
}

// allPairsDistances is an oracle independent of the package's searches:
// Floyd–Warshall over member positions, -1 for unreachable pairs.
func allPairsDistances(t Topology) [][]int {
	n := len(t.Members)
	pos := make(map[nodeid.ID]int, n)
	for i, m := range t.Members {
		pos[m.ID] = i
	}
	const inf = 1 << 30
	d := make([][]int, n)
	for i := range d {
		d[i] = make([]int, n)
		for j := range d[i] {
			if i != j {
				d[i][j] = inf
			}
		}
	}
	for _, e := range t.Edges {
		a, b := pos[e.A], pos[e.B]
		d[a][b], d[b][a] = 1, 1
	}
	for k := range n {
		for i := range n {
			for j := range n {
				d[i][j] = min(d[i][j], d[i][k]+d[k][j])
			}
		}
	}
	for i := range d {
		for j := range d[i] {
			if d[i][j] == inf {
				d[i][j] = -1
			}
		}
	}
	return d
}

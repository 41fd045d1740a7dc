package topology

import "math/bits"

// Hypercube connects the members as a hypercube of dimension
// d = ⌈log2 N⌉ from which the labels N..2^d−1 are missing.
//
// Members are labelled 0..N−1 in membership order, and two members are
// connected when their labels differ in exactly one bit. When
// N = 2^(d−1)+1 (N = 3, 5, 9, 17, ...), the member labelled 2^(d−1) is
// alone in the upper half and its only neighbour is label 0, so a cover
// edge joins it to label 1, which stands in for its missing neighbour along
// bit 0, label 2^(d−1)+1, with the top bit folded away.
//
// For every N ≥ 2 the result is connected, and each member has at most d
// edges and is at most d hops from any other:
//
//   - A path from label a to label b that first clears, one at a time, the
//     bits set in a and not in b, then sets the bits set in b and not in a,
//     only visits labels no greater than a or b, which are all present; it
//     takes as many hops as a and b have differing bits, at most d.
//   - A label has at most one neighbour per bit, d in all. The cover edge
//     only exists when label 1 lacks its neighbour 2^(d−1)+1 = N and label
//     2^(d−1) has one neighbour, so neither exceeds d.
//
// For N ≥ 3 every member has at least two edges, so no single failure cuts a
// member off. The tests verify for every N up to 1024 that the bounds above
// hold, that no single failure disconnects the others either, and these
// exact figures: the largest degree is d; the smallest, that of the newest
// member, is max(2, popcount(N−1)); the diameter is d, except 1 for N = 3
// and d−1 for N = 2^(d−1)+1 ≥ 5.
//
// Labels follow membership order, so a join (the newcomer is last) only
// adds the newcomer's edges and replaces at most one cover edge, and so
// does the departure of the newest member; the departure of an older member
// relabels every member that joined after it. Hypercube ignores the
// previous topology.
type Hypercube struct{}

// Name returns "hypercube".
func (Hypercube) Name() string { return "hypercube" }

// Edges returns the edges of the hypercube over members; see [Hypercube].
func (Hypercube) Edges(members []Member, _ *Topology) []Edge {
	n := len(members)
	if n < 2 {
		return nil
	}
	d := bits.Len(uint(n - 1)) // ⌈log2 n⌉ for n ≥ 2
	edges := make([]Edge, 0, n*d/2+1)
	for i := range n {
		for k := range d {
			if j := i ^ 1<<k; j > i && j < n {
				edges = append(edges, NewEdge(members[i].ID, members[j].ID))
			}
		}
	}
	if n >= 3 && n == 1<<(d-1)+1 {
		edges = append(edges, NewEdge(members[1].ID, members[n-1].ID))
	}
	return edges
}

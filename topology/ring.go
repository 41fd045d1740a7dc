package topology

import (
	"slices"

	"github.com/trellisrpc/trellis/nodeid"
)

// Ring connects the members in one cycle: from three members on, each
// keeps two connections and any single failure leaves the others connected.
//
// Without a previous topology the cycle follows membership order: members
// L, N1, N2, N3 (in join order) form L–N1–N2–N3–L. One member has no edge;
// two members have the single edge between them.
//
// With a previous topology prev whose edges form a ring over its members
// (whatever strategy made it, and in whatever order its edges are listed),
// Ring keeps churn low by this rule:
//
//  1. Read prev's ring order: start at prev's leader and step first to
//     whichever of its two neighbours comes earlier in prev's member list,
//     then follow the cycle.
//  2. Drop the members that left, keeping the others (the survivors) in that
//     cyclic order.
//  3. Rotate the survivors to start at the anchor: the first member of the
//     new member list that is a survivor (the leader, unless the leader is
//     itself new).
//  4. Append the newcomers (members not in prev), in membership order, so
//     that they sit between the last survivor and the anchor.
//
// A join to a ring of three or more therefore removes one edge (last
// survivor – anchor) and adds two, and a leave that leaves three or more
// removes the two edges of the member that left and adds the one between
// its neighbours; smaller rings only gain or lose edges. When the member list
// is in join order, as membership keeps it, the cycle stays in membership
// order and prev changes nothing; prev matters when the survivors' order in
// prev differs from the member list, as after a partition heals. A prev that
// is not a ring is ignored.
type Ring struct{}

// Name returns "ring".
func (Ring) Name() string { return "ring" }

// Edges returns the edges of the ring over members; see [Ring].
func (Ring) Edges(members []Member, prev *Topology) []Edge {
	return cycleEdges(ringSequence(memberIDs(members), prev))
}

// ringSequence returns the cyclic order of the new ring over ids, following
// the rule documented on Ring.
func ringSequence(ids []nodeid.ID, prev *Topology) []nodeid.ID {
	if prev == nil {
		return ids
	}
	order, ok := ringOrder(*prev)
	if !ok {
		return ids
	}
	current := make(map[nodeid.ID]struct{}, len(ids))
	for _, id := range ids {
		current[id] = struct{}{}
	}
	survived := make(map[nodeid.ID]struct{}, len(order))
	survivors := make([]nodeid.ID, 0, len(ids))
	for _, id := range order {
		if _, ok := current[id]; ok {
			survivors = append(survivors, id)
			survived[id] = struct{}{}
		}
	}
	if len(survivors) == 0 {
		return ids
	}
	seq := make([]nodeid.ID, 0, len(ids))
	var newcomers []nodeid.ID
	for _, id := range ids {
		if _, ok := survived[id]; !ok {
			newcomers = append(newcomers, id)
		} else if len(seq) == 0 {
			// The anchor: rotate the survivors to start here.
			at := slices.Index(survivors, id)
			seq = append(seq, survivors[at:]...)
			seq = append(seq, survivors[:at]...)
		}
	}
	return append(seq, newcomers...)
}

// ringOrder returns the members of t in ring order, and whether t's edges
// form a ring over its members: no edge for one member, the one edge for
// two, a single cycle through all of them for three or more. The order
// starts at the leader and steps first to whichever of the leader's two
// neighbours comes earlier in t.Members. Edges need not be sorted or
// normalised, but duplicate members, self loops and edges to non-members
// disqualify t.
func ringOrder(t Topology) ([]nodeid.ID, bool) {
	n := len(t.Members)
	g := newGraph(t)
	if len(g.index) != n || slices.Contains(g.ids, nodeid.None) {
		return nil, false // duplicate or missing ids
	}
	edges := 0
	for _, ns := range g.adj {
		edges += len(ns)
	}
	if edges/2 != len(normalise(t.Edges)) {
		return nil, false // an edge newGraph ignored: self loop or non-member
	}
	switch {
	case n <= 1:
		return g.ids, edges == 0
	case n == 2:
		return g.ids, edges == 2
	}
	for _, ns := range g.adj {
		if len(ns) != 2 {
			return nil, false
		}
	}
	// Step from the leader (index 0) to its neighbour earlier in t.Members,
	// then keep going the same way until back at the leader.
	order := make([]nodeid.ID, 1, n)
	order[0] = g.ids[0]
	prev, cur := 0, min(g.adj[0][0], g.adj[0][1])
	for cur != 0 {
		order = append(order, g.ids[cur])
		next := g.adj[cur][0]
		if next == prev {
			next = g.adj[cur][1]
		}
		prev, cur = cur, next
	}
	if len(order) != n {
		return nil, false // several disjoint cycles
	}
	return order, true
}

// cycleEdges returns the edges of the cycle visiting seq in order: none for
// fewer than two ids, one edge for two.
func cycleEdges(seq []nodeid.ID) []Edge {
	switch n := len(seq); {
	case n < 2:
		return nil
	case n == 2:
		return []Edge{NewEdge(seq[0], seq[1])}
	}
	edges := make([]Edge, 0, len(seq))
	for i, id := range seq {
		edges = append(edges, NewEdge(id, seq[(i+1)%len(seq)]))
	}
	return edges
}

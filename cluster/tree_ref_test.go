package cluster

import (
	"slices"

	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/nodeid"
)

// childrenReference is the first, map-based implementation of children, kept
// as the specification the faster one is checked against.
//
// It returns the members to which self forwards the proposal: its
// children in the breadth-first tree rooted at the leader over the old and
// new edges (neighbours visited in ID order, so every member computes the
// same tree).
func childrenReference(p *controlplane.Proposal, self nodeid.ID) []controlplane.Member {
	in := make(map[nodeid.ID]controlplane.Member, len(p.Members))
	for _, m := range p.Members {
		in[m.ID] = m
	}
	adj := make(map[nodeid.ID][]nodeid.ID)
	for _, es := range [][]controlplane.Edge{p.Edges, p.Previous} {
		for _, e := range es {
			_, a := in[e.A]
			_, b := in[e.B]
			if a && b {
				adj[e.A] = append(adj[e.A], e.B)
				adj[e.B] = append(adj[e.B], e.A)
			}
		}
	}
	parent := map[nodeid.ID]nodeid.ID{p.Leader: p.Leader}
	queue := []nodeid.ID{p.Leader}
	var kids []controlplane.Member
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		nbs := adj[u]
		slices.Sort(nbs)
		for _, v := range slices.Compact(nbs) {
			if _, seen := parent[v]; seen {
				continue
			}
			parent[v] = u
			queue = append(queue, v)
			if u == self {
				kids = append(kids, in[v])
			}
		}
	}
	return kids
}

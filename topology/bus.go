package topology

// Bus connects every pair of members (a full mesh): N(N−1)/2 edges and one
// hop between any two members. A join adds the newcomer's N−1 edges and a
// leave removes the leaver's, whatever the order. Bus ignores the previous
// topology. It serves at most MaxBusMembers members (see MaxMembers).
type Bus struct{}

// MaxMembers returns MaxBusMembers.
func (Bus) MaxMembers() int { return MaxBusMembers }

// Name returns "bus".
func (Bus) Name() string { return "bus" }

// Edges returns an edge between each pair of members.
func (Bus) Edges(members []Member, _ *Topology) []Edge {
	n := len(members)
	edges := make([]Edge, 0, n*(n-1)/2)
	for i := range members {
		for _, m := range members[i+1:] {
			edges = append(edges, NewEdge(members[i].ID, m.ID))
		}
	}
	return edges
}

// MaxBusMembers is the largest membership a bus is computed for. Beyond it a
// full mesh costs more than it gives: N(N−1)/2 connections (32,640 at 256
// members, 499,500 at 1,000), a proposal that carries every edge (about 0.6
// MB at 256 members, 9 MB at 1,000, sent to each member) and a Compute of
// over half a second at 1,000 (membership/memberlist/FIGURES.md). The
// cluster's leader refuses to push a bus for more members, logging an error
// that wraps ErrTooManyMembers, and keeps the last committed topology.
const MaxBusMembers = 128

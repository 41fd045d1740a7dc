package topology

// Bus connects every pair of members (a full mesh): N(N−1)/2 edges and one
// hop between any two members. A join adds the newcomer's N−1 edges and a
// leave removes the leaver's, whatever the order. Bus ignores the previous
// topology.
type Bus struct{}

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

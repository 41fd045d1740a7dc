package topology

// Star connects the leader (the first member) to every other member and no
// other pair: N−1 edges, at most two hops between members. The leader
// carries every relayed call, and the death of the leader moves the hub to
// the next leader, replacing every edge. Star ignores the previous topology.
type Star struct{}

// Name returns "star".
func (Star) Name() string { return "star" }

// Edges returns an edge from members[0] to each other member.
func (Star) Edges(members []Member, _ *Topology) []Edge {
	if len(members) < 2 {
		return nil
	}
	edges := make([]Edge, 0, len(members)-1)
	for _, m := range members[1:] {
		edges = append(edges, NewEdge(members[0].ID, m.ID))
	}
	return edges
}

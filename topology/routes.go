package topology

import (
	"slices"

	"github.com/trellisrpc/trellis/nodeid"
)

// RoutingTable tells one node, for every member it can reach in a topology,
// to which neighbour to hand a call for that member.
//
// Routes follow shortest paths along the edges. Where several shortest
// paths exist, the next hop is the neighbour with the smallest id, so every
// node agrees on the path [Path] reports. The zero RoutingTable has no route.
type RoutingTable struct {
	self  nodeid.ID
	epoch uint64
	hops  map[nodeid.ID]hop
}

// hop is the route to one destination.
type hop struct {
	next     nodeid.ID
	distance int
}

// Routes returns the routing table of self in t. If self is not a member of
// t, the table has no route.
func Routes(t Topology, self nodeid.ID) RoutingTable {
	rt := RoutingTable{self: self, epoch: t.Epoch}
	g := newGraph(t)
	src, ok := g.index[self]
	if !ok {
		return rt
	}
	// Breadth-first search from self, recording for every member the first
	// hop of its shortest path. A member is only processed once every member
	// one hop closer has been, so taking the smallest first hop among its
	// discoverers gives the smallest first hop over all its shortest paths.
	n := len(g.ids)
	dist := make([]int, n)
	first := make([]int, n)
	for i := range dist {
		dist[i] = -1
	}
	dist[src] = 0
	queue := make([]int, 0, n)
	for _, v := range g.adj[src] {
		dist[v], first[v] = 1, v
		queue = append(queue, v)
	}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, v := range g.adj[u] {
			switch {
			case dist[v] < 0:
				dist[v], first[v] = dist[u]+1, first[u]
				queue = append(queue, v)
			case dist[v] == dist[u]+1 && g.ids[first[u]] < g.ids[first[v]]:
				first[v] = first[u]
			}
		}
	}
	rt.hops = make(map[nodeid.ID]hop, n)
	for i, d := range dist {
		if d > 0 {
			rt.hops[g.ids[i]] = hop{next: g.ids[first[i]], distance: d}
		}
	}
	return rt
}

// Self returns the node the table belongs to.
func (rt RoutingTable) Self() nodeid.ID { return rt.self }

// Epoch returns the epoch of the topology the table was computed from.
func (rt RoutingTable) Epoch() uint64 { return rt.epoch }

// NextHop returns the neighbour to which a call for dst is handed, and
// whether dst is reachable. The node itself is not a destination: NextHop
// reports false for it, and for members out of reach or not in the topology.
func (rt RoutingTable) NextHop(dst nodeid.ID) (nodeid.ID, bool) {
	h, ok := rt.hops[dst]
	return h.next, ok
}

// Distance returns the number of hops to dst, and whether dst is reachable
// (never for the node itself).
func (rt RoutingTable) Distance(dst nodeid.ID) (int, bool) {
	h, ok := rt.hops[dst]
	return h.distance, ok
}

// Destinations returns the reachable members other than the node itself,
// sorted by id.
func (rt RoutingTable) Destinations() []nodeid.ID {
	ds := make([]nodeid.ID, 0, len(rt.hops))
	for id := range rt.hops {
		ds = append(ds, id)
	}
	slices.Sort(ds)
	return ds
}

// Path returns the members a call from src to dst visits, src and dst
// included, when every node on the way routes by its own [Routes] table.
// It is a shortest path; it is []nodeid.ID{src} when src == dst and nil when
// either is not a member of t or dst is out of src's reach.
func Path(t Topology, src, dst nodeid.ID) []nodeid.ID {
	g := newGraph(t)
	s, okS := g.index[src]
	d, okD := g.index[dst]
	if !okS || !okD {
		return nil
	}
	// A node's next hop is its smallest neighbour one hop closer to dst,
	// which one search from dst answers for every node on the way.
	dist := g.distances(d)
	if dist[s] < 0 {
		return nil
	}
	path := make([]nodeid.ID, 0, dist[s]+1)
	path = append(path, src)
	for u := s; u != d; {
		for _, v := range g.adj[u] { // sorted by id: the first match is the smallest
			if dist[v] == dist[u]-1 {
				u = v
				break
			}
		}
		path = append(path, g.ids[u])
	}
	return path
}

// Diameter returns the largest number of hops between two members of t:
// 0 for fewer than two members, -1 when t is not connected.
func Diameter(t Topology) int {
	g := newGraph(t)
	diameter := 0
	for i := range g.ids {
		for _, d := range g.distances(i) {
			if d < 0 {
				return -1
			}
			diameter = max(diameter, d)
		}
	}
	return diameter
}

// Connected reports whether every member of t can reach every other along
// the edges. A topology with no member or one member is connected.
func Connected(t Topology) bool {
	if len(t.Members) == 0 {
		return true
	}
	return !slices.Contains(newGraph(t).distances(0), -1)
}

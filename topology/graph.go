package topology

import (
	"cmp"
	"slices"

	"github.com/trellisrpc/trellis/nodeid"
)

// graph is a topology in index form, for the search algorithms: members are
// numbered by their position in Topology.Members.
type graph struct {
	ids   []nodeid.ID       // index → id
	index map[nodeid.ID]int // id → index
	adj   [][]int           // index → neighbour indices, sorted by neighbour id
}

// newGraph returns the graph of t. Edges that do not join two distinct
// members are ignored; duplicated edges count once.
func newGraph(t Topology) *graph {
	g := &graph{
		ids:   memberIDs(t.Members),
		index: make(map[nodeid.ID]int, len(t.Members)),
		adj:   make([][]int, len(t.Members)),
	}
	for i, id := range g.ids {
		g.index[id] = i
	}
	type pair struct{ a, b int }
	var pairs []pair // the edges between two distinct members
	degree := make([]int, len(g.ids))
	for _, e := range t.Edges {
		a, okA := g.index[e.A]
		b, okB := g.index[e.B]
		if !okA || !okB || a == b {
			continue
		}
		pairs = append(pairs, pair{a, b})
		degree[a]++
		degree[b]++
	}
	backing := make([]int, 2*len(pairs)) // one allocation for all the lists
	for i, d := range degree {
		g.adj[i], backing = backing[:0:d], backing[d:]
	}
	for _, p := range pairs {
		g.adj[p.a] = append(g.adj[p.a], p.b)
		g.adj[p.b] = append(g.adj[p.b], p.a)
	}
	for i, ns := range g.adj {
		slices.SortFunc(ns, func(x, y int) int { return cmp.Compare(g.ids[x], g.ids[y]) })
		g.adj[i] = slices.Compact(ns)
	}
	return g
}

// distances returns the number of hops from src to every member, or -1 for
// members src cannot reach.
func (g *graph) distances(src int) []int {
	dist := make([]int, len(g.ids))
	for i := range dist {
		dist[i] = -1
	}
	dist[src] = 0
	queue := []int{src}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, v := range g.adj[u] {
			if dist[v] < 0 {
				dist[v] = dist[u] + 1
				queue = append(queue, v)
			}
		}
	}
	return dist
}

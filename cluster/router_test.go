package cluster

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// ring6 is the ring 1-2-3-4-5-6-1.
func ring6() topology.Topology {
	t := topology.Topology{Epoch: 1}
	for i := nodeid.ID(1); i <= 6; i++ {
		t.Members = append(t.Members, topology.Member{ID: i})
		t.Edges = append(t.Edges, topology.NewEdge(i, i%6+1))
	}
	return t
}

// TestRouterPlausibleSource checks which neighbours a routed call from
// each source may come through, on node 1 of a ring of six, with all its
// links up and with its link to 2 down.
func TestRouterPlausibleSource(t *testing.T) {
	up := func(nodeid.ID) bool { return true }
	down2 := func(id nodeid.ID) bool { return id != 2 }
	tests := []struct {
		name      string
		connected func(nodeid.ID) bool
		src, via  nodeid.ID
		want      bool
	}{
		{"next to the source", up, 3, 2, true},
		{"the long way round", up, 3, 6, false},
		{"the antipode, one way", up, 4, 2, true},
		{"the antipode, the other way", up, 4, 6, true},
		{"a neighbour is its own source", up, 2, 2, true},
		{"a neighbour through the other", up, 2, 6, false},
		{"not a neighbour", up, 3, 4, false},
		{"not a member", up, 9, 2, false},
		{"around the link down", down2, 3, 6, true},
		{"around the link down to its end", down2, 2, 6, true},
		{"still not through a non-neighbour", down2, 3, 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(ring6(), 1, tt.connected)
			if got := r.PlausibleSource(tt.src, tt.via); got != tt.want {
				t.Errorf("PlausibleSource(%d, %d) = %v, want %v", tt.src, tt.via, got, tt.want)
			}
		})
	}
}

// bus4 is the full mesh of 1, 2, 3 and 4.
func bus4() topology.Topology {
	t := topology.Topology{Epoch: 1}
	for i := nodeid.ID(1); i <= 4; i++ {
		t.Members = append(t.Members, topology.Member{ID: i})
		for j := i + 1; j <= 4; j++ {
			t.Edges = append(t.Edges, topology.NewEdge(i, j))
		}
	}
	return t
}

// TestRouterRelaysOnlyNearer checks the next hop a relay chooses for a
// call that came from a neighbour: a connected neighbour nearer to the
// destination, never back, never a detour.
func TestRouterRelaysOnlyNearer(t *testing.T) {
	linksDown := func(down ...nodeid.ID) func(nodeid.ID) bool {
		return func(id nodeid.ID) bool { return !slices.Contains(down, id) }
	}
	tests := []struct {
		name      string
		t         topology.Topology
		connected func(nodeid.ID) bool
		dst, from nodeid.ID
		want      nodeid.ID // nodeid.None: the relay fails the call
	}{
		{"ring: the primary next hop", ring6(), linksDown(), 3, 6, 2},
		{"ring: the antipode, from the primary next hop", ring6(), linksDown(), 4, 2, 6},
		{"ring: the antipode, primary link down", ring6(), linksDown(2), 4, 6, nodeid.None},
		{"ring: no detour the long way round", ring6(), linksDown(2), 3, 6, nodeid.None},
		{"ring: not a member", ring6(), linksDown(), 9, 6, nodeid.None},
		{"bus: the destination's link down, no detour", bus4(), linksDown(4), 4, 2, nodeid.None},
		{"bus: direct", bus4(), linksDown(), 4, 2, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(tt.t, 1, tt.connected)
			got, ok := r.NextHopAvoiding(tt.dst, tt.from)
			if !ok {
				got = nodeid.None
			}
			if got != tt.want {
				t.Errorf("NextHopAvoiding(%d, %d) = %d, want %d", tt.dst, tt.from, got, tt.want)
			}
		})
	}
}

// TestRelaysNeverCycle walks calls hop by hop, as nodes relay them, over
// every built-in strategy with every member's links down in turn (a dead
// member: each neighbour sees its own link to it down, and routes around
// it) and with random sets of cut links: a call must reach its destination
// or fail, never visit a node twice. Before relays routed only to nearer
// neighbours, a bus whose member died passed calls to it round its other
// members until the hop budget ran out.
func TestRelaysNeverCycle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []topology.Strategy{topology.Ring{}, topology.Bus{}, topology.Star{}, topology.Hypercube{}} {
		for n := 3; n <= 9; n++ {
			var ms []topology.Member
			for i := range n {
				ms = append(ms, topology.Member{ID: nodeid.ID(10 + i)})
			}
			top := topology.Compute(s, ms, nil)
			top.Epoch = 1
			var faults [][]topology.Edge
			for _, m := range ms { // a member dies
				var cut []topology.Edge
				for _, e := range top.Edges {
					if e.A == m.ID || e.B == m.ID {
						cut = append(cut, e)
					}
				}
				faults = append(faults, cut)
			}
			for range 20 { // random cables cut
				var cut []topology.Edge
				for _, e := range top.Edges {
					if rng.IntN(4) == 0 {
						cut = append(cut, e)
					}
				}
				faults = append(faults, cut)
			}
			for _, cut := range faults {
				walkAll(t, s.Name(), top, cut)
			}
		}
	}
}

// walkAll relays a call from every member to every other over top with the
// links cut down, each node seeing only its own links.
func walkAll(t *testing.T, name string, top topology.Topology, cut []topology.Edge) {
	t.Helper()
	routers := make(map[nodeid.ID]*router)
	for _, m := range top.Members {
		self := m.ID
		routers[self] = newRouter(top, self, func(nb nodeid.ID) bool {
			return top.HasEdge(self, nb) && !slices.Contains(cut, topology.NewEdge(self, nb))
		})
	}
	for _, src := range top.Members {
		for _, dst := range top.Members {
			if src.ID == dst.ID {
				continue
			}
			path := []nodeid.ID{src.ID}
			next, ok := routers[src.ID].NextHop(dst.ID)
			if !ok || !routers[src.ID].connected(next) {
				continue // the caller fails it
			}
			for from, at := src.ID, next; at != dst.ID; {
				if slices.Contains(path, at) {
					t.Fatalf("%s of %d, links %v cut: a call %d -> %d goes round %v then %d", name, len(top.Members), cut, src.ID, dst.ID, path, at)
				}
				path = append(path, at)
				next, ok := routers[at].NextHopAvoiding(dst.ID, from)
				if !ok {
					break // the relay fails it
				}
				from, at = at, next
			}
		}
	}
}

// TestRouterPlausibleSourceOnProposal checks that node 1 of the ring of six,
// having prepared a ring without 2 (1-3-4-5-6-1) but not yet committed it,
// accepts the calls its members route along it once they have committed it
// first, and still refuses a source no topology places behind the link.
func TestRouterPlausibleSourceOnProposal(t *testing.T) {
	up := func(nodeid.ID) bool { return true }
	next := topology.Topology{Epoch: 2, Members: []topology.Member{{ID: 1}, {ID: 3}, {ID: 4}, {ID: 5}, {ID: 6}},
		Edges: []topology.Edge{topology.NewEdge(1, 3), topology.NewEdge(3, 4), topology.NewEdge(4, 5), topology.NewEdge(5, 6), topology.NewEdge(6, 1)}}
	tests := []struct {
		name     string
		src, via nodeid.ID
		before   bool // before the proposal is prepared
		after    bool
	}{
		{"behind the new edge", 4, 3, false, true},
		{"the new neighbour itself", 3, 3, false, true},
		{"behind the old edge", 3, 2, true, true},
		{"the antipode of the old ring", 4, 6, true, true},
		{"not behind the link on any topology", 5, 2, false, false},
		{"not a neighbour on any topology", 5, 4, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(ring6(), 1, up)
			if got := r.PlausibleSource(tt.src, tt.via); got != tt.before {
				t.Errorf("before the proposal: PlausibleSource(%d, %d) = %v, want %v", tt.src, tt.via, got, tt.before)
			}
			r.propose(next)
			if got := r.PlausibleSource(tt.src, tt.via); got != tt.after {
				t.Errorf("with the proposal prepared: PlausibleSource(%d, %d) = %v, want %v", tt.src, tt.via, got, tt.after)
			}
		})
	}
}

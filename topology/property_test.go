package topology

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
)

// randomMembers returns n members with distinct random non-zero ids.
func randomMembers(r *rand.Rand, n int) []Member {
	seen := make(map[nodeid.ID]bool, n)
	ms := make([]Member, 0, n)
	for len(ms) < n {
		id := nodeid.ID(r.Uint64())
		if id == nodeid.None || seen[id] {
			continue
		}
		seen[id] = true
		ms = append(ms, Member{ID: id, Name: fmt.Sprintf("n%d", len(ms)), Addr: fmt.Sprintf("10.0.0.%d:7000", len(ms))})
	}
	return ms
}

// TestPropertyStrategies checks every built-in strategy on random member
// lists: the topology is valid and connected, and computing it again gives
// an identical value.
func TestPropertyStrategies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 150 {
		ms := randomMembers(r, 1+r.IntN(40))
		for _, s := range builtin() {
			top := Compute(s, ms, nil)
			if err := top.Validate(); err != nil {
				t.Fatalf("trial %d, %s, N=%d: %v", trial, s.Name(), len(ms), err)
			}
			if !Connected(top) {
				t.Fatalf("trial %d, %s, N=%d: not connected", trial, s.Name(), len(ms))
			}
			if again := Compute(s, slices.Clone(ms), nil); !again.Equal(top) {
				t.Fatalf("trial %d, %s, N=%d: computed twice, got %v then %v", trial, s.Name(), len(ms), top.Edges, again.Edges)
			}
		}
	}
}

// TestPropertyRoutes checks routing tables and paths against an
// independent all-pairs oracle on random topologies: every member reaches
// every other, next hops are neighbours on a shortest path with the
// smallest id, and paths follow the tables hop by hop with the shortest
// length.
func TestPropertyRoutes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 40 {
		ms := randomMembers(r, 1+r.IntN(24))
		for _, s := range builtin() {
			top := Compute(s, ms, nil)
			checkRoutes(t, fmt.Sprintf("trial %d, %s, N=%d", trial, s.Name(), len(ms)), top)
		}
	}
}

// checkRoutes checks Routes and Path for every pair of members of the
// connected topology top.
func checkRoutes(t *testing.T, label string, top Topology) {
	t.Helper()
	dist := allPairsDistances(top)
	tables := make(map[nodeid.ID]RoutingTable, len(top.Members))
	for _, m := range top.Members {
		tables[m.ID] = Routes(top, m.ID)
	}
	for i, src := range top.Members {
		rt := tables[src.ID]
		if got := len(rt.Destinations()); got != len(top.Members)-1 {
			t.Fatalf("%s: %v reaches %d members, want %d", label, src.ID, got, len(top.Members)-1)
		}
		for j, dst := range top.Members {
			if i == j {
				continue
			}
			next, _ := rt.NextHop(dst.ID)
			d, _ := rt.Distance(dst.ID)
			if d != dist[i][j] {
				t.Fatalf("%s: distance %v→%v = %d, want %d", label, src.ID, dst.ID, d, dist[i][j])
			}
			// The next hop is the smallest neighbour one hop closer.
			var want nodeid.ID
			for _, nb := range top.Neighbours(src.ID) {
				k := slices.IndexFunc(top.Members, func(m Member) bool { return m.ID == nb })
				if dist[k][j] == d-1 {
					want = nb
					break
				}
			}
			if next != want {
				t.Fatalf("%s: next hop %v→%v = %v, want %v", label, src.ID, dst.ID, next, want)
			}
			path := Path(top, src.ID, dst.ID)
			if len(path) != d+1 || path[0] != src.ID || path[d] != dst.ID {
				t.Fatalf("%s: Path(%v, %v) = %v, want %d hops", label, src.ID, dst.ID, path, d)
			}
			for h := range d {
				if !top.HasEdge(path[h], path[h+1]) {
					t.Fatalf("%s: Path(%v, %v) = %v leaves the edges", label, src.ID, dst.ID, path)
				}
				if hop, _ := tables[path[h]].NextHop(dst.ID); hop != path[h+1] {
					t.Fatalf("%s: Path(%v, %v) = %v, but %v routes to %v", label, src.ID, dst.ID, path, path[h], hop)
				}
			}
		}
	}
}

// scrambled wraps a strategy and returns its edges shuffled, reversed and
// duplicated: an equivalent answer that Compute must normalise.
type scrambled struct {
	s Strategy
	r *rand.Rand
}

func (x scrambled) Name() string { return x.s.Name() }

func (x scrambled) Edges(members []Member, prev *Topology) []Edge {
	edges := x.s.Edges(members, prev)
	for _, e := range slices.Clone(edges) {
		edges = append(edges, Edge{A: e.B, B: e.A})
	}
	x.r.Shuffle(len(edges), func(i, j int) { edges[i], edges[j] = edges[j], edges[i] })
	return edges
}

// TestPropertyEquivalentInputs checks that equivalent inputs give identical
// topologies: edges returned in any order or orientation, a prev whose edges
// are listed in any order, and, for the strategies whose edges do not depend
// on membership order (bus entirely, star beyond the leader), any order of
// the members.
func TestPropertyEquivalentInputs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	shuffle := func(ms []Member) []Member {
		ms = slices.Clone(ms)
		r.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		return ms
	}
	for trial := range 200 {
		ms := randomMembers(r, 1+r.IntN(30))
		prevMembers := shuffle(randomMembers(r, r.IntN(8)))
		prevMembers = append(prevMembers, shuffle(ms)[:r.IntN(len(ms)+1)]...)
		prev := Compute(Ring{}, shuffle(prevMembers), nil)
		for _, s := range builtin() {
			want := Compute(s, ms, &prev)
			if got := Compute(scrambled{s, r}, ms, &prev); !got.Equal(want) {
				t.Fatalf("trial %d, %s: scrambled edges give %v, want %v", trial, s.Name(), got.Edges, want.Edges)
			}
			loose := prev
			loose.Edges = slices.Clone(prev.Edges)
			for i, e := range loose.Edges {
				if r.IntN(2) == 0 {
					loose.Edges[i] = Edge{A: e.B, B: e.A}
				}
			}
			r.Shuffle(len(loose.Edges), func(i, j int) { loose.Edges[i], loose.Edges[j] = loose.Edges[j], loose.Edges[i] })
			if got := Compute(s, ms, &loose); !got.Equal(want) {
				t.Fatalf("trial %d, %s: prev with shuffled edges gives %v, want %v", trial, s.Name(), got.Edges, want.Edges)
			}
		}
		if got, want := Compute(Bus{}, shuffle(ms), nil).Edges, Compute(Bus{}, ms, nil).Edges; !slices.Equal(got, want) {
			t.Fatalf("trial %d: bus depends on member order", trial)
		}
		rest := append([]Member{ms[0]}, shuffle(ms[1:])...)
		if got, want := Compute(Star{}, rest, nil).Edges, Compute(Star{}, ms, nil).Edges; !slices.Equal(got, want) {
			t.Fatalf("trial %d: star depends on the order of the members after the leader", trial)
		}
	}
}

// TestPropertyRingChurn runs random joins and leaves, with the member list
// in join order as membership keeps it, and checks that every ring is a
// single cycle with the documented churn, and that prev then changes
// nothing.
func TestPropertyRingChurn(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	pool := randomMembers(r, 600)
	members := []Member{pool[0]}
	pool = pool[1:]
	prev := Compute(Ring{}, members, nil)
	for step := range 500 {
		leaving := len(members) > 1 && (len(pool) == 0 || r.IntN(5) < 2)
		var gone nodeid.ID
		if leaving {
			k := r.IntN(len(members))
			gone = members[k].ID
			members = slices.Delete(members, k, k+1)
		} else {
			members = append(members, pool[0])
			pool = pool[1:]
		}
		next := Compute(Ring{}, members, &prev)
		if next.Epoch != prev.Epoch+1 {
			t.Fatalf("step %d: epoch %d after %d", step, next.Epoch, prev.Epoch)
		}
		if _, ok := ringOrder(next); !ok {
			t.Fatalf("step %d: %v is not a ring", step, next.Edges)
		}
		if fresh := Compute(Ring{}, members, nil); !slices.Equal(fresh.Edges, next.Edges) {
			t.Fatalf("step %d: prev changed the ring of a join-ordered list", step)
		}
		added, removed := edgeChanges(prev, next)
		n := len(members)
		switch {
		case !leaving && n >= 4 && (len(added) != 2 || len(removed) != 1):
			t.Fatalf("step %d: join to N=%d added %v, removed %v", step, n, added, removed)
		case leaving && n >= 3 && (len(added) != 1 || len(removed) != 2):
			t.Fatalf("step %d: leave to N=%d added %v, removed %v", step, n, added, removed)
		}
		for _, e := range removed {
			if leaving && e.A != gone && e.B != gone {
				t.Fatalf("step %d: removed %v, not an edge of the member that left", step, e)
			}
		}
		prev = next
	}
}

// TestPropertyRingHeal checks the prev rule against arbitrary changes of
// the member list, as when a partition heals: the result is one cycle, the
// survivors keep their cyclic order from prev, and the newcomers sit
// together in membership order.
func TestPropertyRingHeal(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for trial := range 300 {
		old := randomMembers(r, 1+r.IntN(20))
		r.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
		prev := Compute(Ring{}, old, nil)
		prevOrder, _ := ringOrder(prev)
		// Keep a random subset of the old members and add newcomers,
		// then shuffle the membership order.
		var members []Member
		for _, m := range old {
			if r.IntN(3) > 0 {
				members = append(members, m)
			}
		}
		members = append(members, randomMembers(r, r.IntN(6))...)
		r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		if len(members) == 0 {
			continue
		}
		next := Compute(Ring{}, members, &prev)
		order, ok := ringOrder(next)
		if !ok {
			t.Fatalf("trial %d: %v is not a ring", trial, next.Edges)
		}
		var survivorsBefore, survivorsAfter, newcomers []nodeid.ID
		for _, id := range prevOrder {
			if next.Contains(id) {
				survivorsBefore = append(survivorsBefore, id)
			}
		}
		for _, id := range order {
			if prev.Contains(id) {
				survivorsAfter = append(survivorsAfter, id)
			}
		}
		anchor := nodeid.None // the oldest survivor
		for _, m := range members {
			switch {
			case !prev.Contains(m.ID):
				newcomers = append(newcomers, m.ID)
			case anchor == nodeid.None:
				anchor = m.ID
			}
		}
		if !sameCycle(survivorsBefore, survivorsAfter) {
			t.Fatalf("trial %d: survivors %v became %v", trial, survivorsBefore, survivorsAfter)
		}
		if anchor != nodeid.None && !runBefore(order, newcomers, anchor) {
			t.Fatalf("trial %d: newcomers %v not together just before %v in %v", trial, newcomers, anchor, order)
		}
	}
}

// sameCycle reports whether b visits the same cycle as a: a rotation of a
// or of a reversed. Sequences of up to two ids only need the same members.
func sameCycle(a, b []nodeid.ID) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) <= 2 {
		x, y := slices.Clone(a), slices.Clone(b)
		slices.Sort(x)
		slices.Sort(y)
		return slices.Equal(x, y)
	}
	rev := slices.Clone(a)
	slices.Reverse(rev)
	for _, c := range [][]nodeid.ID{a, rev} {
		at := slices.Index(b, c[0])
		if at >= 0 && slices.Equal(append(slices.Clone(b[at:]), b[:at]...), c) {
			return true
		}
	}
	return false
}

// runBefore reports whether the ids of run appear next to each other, in
// order, right before anchor in the cycle order, read in either direction.
func runBefore(order, run []nodeid.ID, anchor nodeid.ID) bool {
	reversed := slices.Clone(order)
	slices.Reverse(reversed)
	for _, o := range [][]nodeid.ID{order, reversed} {
		at := slices.Index(o, anchor)
		rotated := append(slices.Clone(o[at:]), o[:at]...) // anchor first
		if slices.Equal(rotated[len(rotated)-len(run):], run) {
			return true
		}
	}
	return false
}

// TestPropertyInvalidTopologies feeds malformed topologies, such as a
// faulty peer might send before validation, to every function that reads
// one: none may panic.
func TestPropertyInvalidTopologies(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	id := func() nodeid.ID { return nodeid.ID(r.IntN(6)) } // None and duplicates included
	for trial := range 500 {
		var top Topology
		top.Strategy = []string{"ring", "star", "x"}[r.IntN(3)]
		for range r.IntN(6) {
			top.Members = append(top.Members, Member{ID: id()})
		}
		for range r.IntN(10) {
			top.Edges = append(top.Edges, Edge{A: id(), B: id()})
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("trial %d: %+v: panic %v", trial, top, p)
				}
			}()
			_ = top.Validate()
			_ = Diagram(top)
			_, _ = Diameter(top), Connected(top)
			a, b := id(), id()
			_, _ = top.Neighbours(a), top.HasEdge(a, b)
			_ = Path(top, a, b)
			_, _ = Routes(top, a).NextHop(b)
			_, _ = Diff(top, Topology{}, a)
			_ = Compute(Ring{}, []Member{{ID: 1}, {ID: 2}, {ID: 3}}, &top)
		}()
	}
}

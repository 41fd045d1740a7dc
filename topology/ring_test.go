package topology

import (
	"slices"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
)

// TestReferenceScenario follows the reference scenario step by step: the
// leader alone, Node1, Node2 and Node3 join, Node2 dies.
func TestReferenceScenario(t *testing.T) {
	all := testMembers(4) // LeaderNode, Node1, Node2, Node3
	steps := []struct {
		name                  string
		members               []Member
		diagram               string
		edges                 int
		added, removed        int
		removedEdge, addedOne []Edge // checked when non-nil
	}{
		{"leader alone", all[:1], "LeaderNode", 0, 0, 0, nil, nil},
		{"Node1 joins", all[:2], "LeaderNode -- Node1 -- LeaderNode", 1, 1, 0, nil, nil},
		{"Node2 joins", all[:3], "LeaderNode -- Node1 -- Node2 -- LeaderNode", 3, 2, 0, nil, nil},
		{"Node3 joins", all[:4], "LeaderNode -- Node1 -- Node2 -- Node3 -- LeaderNode", 4, 2, 1,
			labelEdges(all, [2]int{0, 2}), labelEdges(all, [2]int{2, 3}, [2]int{0, 3})},
		{"Node2 dies", []Member{all[0], all[1], all[3]}, "LeaderNode -- Node1 -- Node3 -- LeaderNode", 3, 1, 2,
			labelEdges(all, [2]int{1, 2}, [2]int{2, 3}), labelEdges(all, [2]int{1, 3})},
	}
	var prev *Topology
	for i, st := range steps {
		top := Compute(Ring{}, st.members, prev)
		if top.Epoch != uint64(i+1) {
			t.Errorf("%s: epoch %d, want %d", st.name, top.Epoch, i+1)
		}
		if got := Diagram(top); got != st.diagram {
			t.Errorf("%s: Diagram = %q, want %q", st.name, got, st.diagram)
		}
		if len(top.Edges) != st.edges {
			t.Errorf("%s: %d edges, want %d", st.name, len(top.Edges), st.edges)
		}
		if prev != nil {
			added, removed := edgeChanges(*prev, top)
			if len(added) != st.added || len(removed) != st.removed {
				t.Errorf("%s: added %v, removed %v; want %d added, %d removed", st.name, added, removed, st.added, st.removed)
			}
			if st.removedEdge != nil && !slices.Equal(removed, st.removedEdge) {
				t.Errorf("%s: removed %v, want %v", st.name, removed, st.removedEdge)
			}
			if st.addedOne != nil && !slices.Equal(added, st.addedOne) {
				t.Errorf("%s: added %v, want %v", st.name, added, st.addedOne)
			}
		}
		// The same step computed without history gives the same ring.
		if fresh := Compute(Ring{}, st.members, nil); !slices.Equal(fresh.Edges, top.Edges) {
			t.Errorf("%s: edges without prev %v, with prev %v", st.name, fresh.Edges, top.Edges)
		}
		prev = &top
	}
}

func TestRingEdges(t *testing.T) {
	ms := testMembers(5)
	tests := []struct {
		n    int
		want []Edge
	}{
		{0, []Edge{}},
		{1, []Edge{}},
		{2, labelEdges(ms, [2]int{0, 1})},
		{3, labelEdges(ms, [2]int{0, 1}, [2]int{1, 2}, [2]int{2, 0})},
		{4, labelEdges(ms, [2]int{0, 1}, [2]int{1, 2}, [2]int{2, 3}, [2]int{3, 0})},
		{5, labelEdges(ms, [2]int{0, 1}, [2]int{1, 2}, [2]int{2, 3}, [2]int{3, 4}, [2]int{4, 0})},
	}
	for _, tt := range tests {
		if got := Compute(Ring{}, ms[:tt.n], nil).Edges; !slices.Equal(got, tt.want) {
			t.Errorf("N=%d: edges %v, want %v", tt.n, got, tt.want)
		}
	}
}

// TestRingChurn checks, for N = 1..20, that a join removes one edge and adds
// two and that a leave, of any member, removes two and adds one, with the
// exceptions of the smallest rings.
func TestRingChurn(t *testing.T) {
	all := testMembers(21)
	for n := 1; n <= 20; n++ {
		prev := Compute(Ring{}, all[:n-1], nil)
		next := Compute(Ring{}, all[:n], &prev)
		added, removed := edgeChanges(prev, next)
		var wantAdded, wantRemoved int
		switch {
		case n == 2: // the first edge
			wantAdded = 1
		case n == 3: // the edge of two members stays, closing the triangle
			wantAdded = 2
		case n >= 4:
			wantAdded, wantRemoved = 2, 1
			// The edge last–leader gives way to last–newcomer and newcomer–leader.
			if want := labelEdges(all, [2]int{n - 2, 0}); !slices.Equal(removed, want) {
				t.Errorf("join to N=%d: removed %v, want %v", n, removed, want)
			}
			if want := labelEdges(all, [2]int{n - 2, n - 1}, [2]int{n - 1, 0}); !slices.Equal(added, want) {
				t.Errorf("join to N=%d: added %v, want %v", n, added, want)
			}
		}
		if len(added) != wantAdded || len(removed) != wantRemoved {
			t.Errorf("join to N=%d: %d added, %d removed; want %d, %d", n, len(added), len(removed), wantAdded, wantRemoved)
		}

		// Every member of the N-member ring leaves in turn.
		full := Compute(Ring{}, all[:n], nil)
		for k := range n {
			rest := slices.Delete(slices.Clone(all[:n]), k, k+1)
			after := Compute(Ring{}, rest, &full)
			added, removed := edgeChanges(full, after)
			var wantAdded, wantRemoved int
			switch m := n - 1; {
			case m >= 3:
				wantAdded, wantRemoved = 1, 2
				// The leaver's two neighbours are joined.
				ns := full.Neighbours(all[k].ID)
				if want := []Edge{NewEdge(ns[0], ns[1])}; !slices.Equal(added, want) {
					t.Errorf("N=%d, member %d leaves: added %v, want %v", n, k, added, want)
				}
			case m == 2:
				wantRemoved = 2
			case m == 1:
				wantRemoved = 1
			}
			if len(added) != wantAdded || len(removed) != wantRemoved {
				t.Errorf("N=%d, member %d leaves: %d added, %d removed; want %d, %d", n, k, len(added), len(removed), wantAdded, wantRemoved)
			}
			for _, e := range removed {
				if e.A != all[k].ID && e.B != all[k].ID {
					t.Errorf("N=%d, member %d leaves: removed %v, not one of its edges", n, k, e)
				}
			}
		}
	}
}

func TestRingWithPrev(t *testing.T) {
	ids := func(ms []Member, positions ...int) []Member {
		out := make([]Member, len(positions))
		for i, p := range positions {
			out[i] = ms[p]
		}
		return out
	}
	ms := testMembers(6) // A..F by position 0..5
	ringOver := func(positions ...int) *Topology {
		top := Topology{Epoch: 7, Strategy: "ring", Members: ids(ms, positions...)}
		top.Edges = normalise(cycleEdges(memberIDs(top.Members)))
		return &top
	}
	star := Compute(Star{}, ids(ms, 0, 1, 2, 3), nil)
	tests := []struct {
		name    string
		members []int
		prev    *Topology
		cycle   []int // expected cycle, by position in ms
	}{
		{"no prev", []int{0, 1, 2, 3}, nil, []int{0, 1, 2, 3}},
		{"prev not a ring", []int{0, 1, 2, 3}, &star, []int{0, 1, 2, 3}},
		{"leader dies", []int{1, 2, 3}, ringOver(0, 1, 2, 3), []int{1, 2, 3}},
		{"middle leaves, one joins", []int{0, 1, 3, 4}, ringOver(0, 1, 2, 3), []int{0, 1, 3, 4}},
		// After a partition heals, survivors keep the majority side's order
		// and the others are inserted before the leader, in membership order.
		{"heal", []int{0, 1, 2, 3, 4}, ringOver(0, 2, 4), []int{0, 2, 4, 1, 3}},
		// The survivors' order in prev wins over membership order.
		{"prev order kept", []int{0, 1, 2, 3}, ringOver(0, 3, 1, 2), []int{0, 3, 1, 2}},
		// The leader is new: the anchor is the oldest survivor.
		{"leader is new", []int{0, 1, 2, 3, 4}, ringOver(1, 2, 3), []int{1, 2, 3, 0, 4}},
		{"nobody survives", []int{4, 5}, ringOver(0, 1, 2), []int{4, 5}},
		{"prev of two", []int{0, 1, 2}, ringOver(1, 0), []int{0, 1, 2}},
	}
	for _, tt := range tests {
		got := Compute(Ring{}, ids(ms, tt.members...), tt.prev)
		want := normalise(cycleEdges(memberIDs(ids(ms, tt.cycle...))))
		if !slices.Equal(got.Edges, want) {
			t.Errorf("%s: edges %v, want the cycle %v", tt.name, got.Edges, tt.cycle)
		}
	}
}

func TestRingOrder(t *testing.T) {
	ms, six := testMembers(5), testMembers(6)
	ring := func(n int, pairs ...[2]int) Topology {
		return Topology{Strategy: "ring", Members: ms[:n], Edges: labelEdges(ms, pairs...)}
	}
	tests := []struct {
		name string
		top  Topology
		want []int // positions; nil when not a ring
	}{
		{"empty", ring(0), []int{}},
		{"one", ring(1), []int{0}},
		{"two", ring(2, [2]int{0, 1}), []int{0, 1}},
		{"two without edge", ring(2), nil},
		{"triangle", ring(3, [2]int{0, 2}, [2]int{2, 1}, [2]int{1, 0}), []int{0, 1, 2}},
		// The leader's earlier neighbour (position 1) comes first.
		{"four", ring(4, [2]int{0, 3}, [2]int{3, 1}, [2]int{1, 2}, [2]int{2, 0}), []int{0, 2, 1, 3}},
		{"path", ring(3, [2]int{0, 1}, [2]int{1, 2}), nil},
		{"two cycles", Topology{Members: six, Edges: labelEdges(six,
			[2]int{0, 1}, [2]int{1, 2}, [2]int{2, 0}, [2]int{3, 4}, [2]int{4, 5}, [2]int{5, 3})}, nil},
		{"degree three", ring(4, [2]int{0, 1}, [2]int{0, 2}, [2]int{0, 3}, [2]int{1, 2}), nil},
		{"invalid", Topology{Members: ms[:3], Edges: []Edge{{ms[0].ID, 1}}}, nil},
	}
	for _, tt := range tests {
		got, ok := ringOrder(tt.top)
		if tt.want == nil {
			if ok {
				t.Errorf("%s: ringOrder = %v, true; want not a ring", tt.name, got)
			}
			continue
		}
		want := make([]nodeid.ID, len(tt.want))
		for i, p := range tt.want {
			want[i] = tt.top.Members[p].ID
		}
		if !ok || !slices.Equal(got, want) {
			t.Errorf("%s: ringOrder = %v, %v; want %v, true", tt.name, got, ok, want)
		}
	}
}

package topology

import (
	"slices"
	"strings"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
)

func TestNewEdge(t *testing.T) {
	tests := []struct {
		a, b nodeid.ID
		want Edge
	}{
		{1, 2, Edge{1, 2}},
		{2, 1, Edge{1, 2}},
		{7, 7, Edge{7, 7}},
	}
	for _, tt := range tests {
		if got := NewEdge(tt.a, tt.b); got != tt.want {
			t.Errorf("NewEdge(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ms := []Member{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}, {ID: 3, Name: "c"}}
	tests := []struct {
		name    string
		top     Topology
		wantErr string // substring; empty for valid
	}{
		{"empty", Topology{}, ""},
		{"members only", Topology{Members: ms}, ""},
		{"sorted edges", Topology{Members: ms, Edges: []Edge{{1, 2}, {1, 3}, {2, 3}}}, ""},
		{"no id", Topology{Members: []Member{{ID: 0, Name: "x"}}}, "has no id"},
		{"duplicate member", Topology{Members: []Member{{ID: 1}, {ID: 1}}}, "appears twice"},
		{"self loop", Topology{Members: ms, Edges: []Edge{{2, 2}}}, "self loop"},
		{"not normalised", Topology{Members: ms, Edges: []Edge{{2, 1}}}, "not normalised"},
		{"unknown A", Topology{Members: ms, Edges: []Edge{{0, 1}}}, "0000000000000000 is not a member"},
		{"unknown B", Topology{Members: ms, Edges: []Edge{{1, 9}}}, "0000000000000009 is not a member"},
		{"duplicate edge", Topology{Members: ms, Edges: []Edge{{1, 2}, {1, 2}}}, "appears twice"},
		{"unsorted", Topology{Members: ms, Edges: []Edge{{1, 3}, {1, 2}}}, "not sorted"},
		{"unsorted by B", Topology{Members: ms, Edges: []Edge{{2, 3}, {1, 3}}}, "not sorted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.top.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTopologyQueries(t *testing.T) {
	ms := testMembers(4)
	top := Compute(Ring{}, ms, nil)
	for i, m := range ms {
		if !top.Contains(m.ID) {
			t.Errorf("Contains(member %d) = false", i)
		}
		got, ok := top.Lookup(m.ID)
		if !ok || got != m {
			t.Errorf("Lookup(member %d) = %v, %v; want %v, true", i, got, ok, m)
		}
	}
	if top.Contains(testID(99)) || top.Contains(nodeid.None) {
		t.Error("Contains reports a non-member")
	}
	if _, ok := top.Lookup(testID(99)); ok {
		t.Error("Lookup finds a non-member")
	}
	// Ring 0–1–2–3–0: member 0 neighbours 1 and 3, not 2.
	want := []nodeid.ID{ms[1].ID, ms[3].ID}
	if want[1] < want[0] {
		want[0], want[1] = want[1], want[0]
	}
	if got := top.Neighbours(ms[0].ID); !slices.Equal(got, want) {
		t.Errorf("Neighbours(leader) = %v, want %v", got, want)
	}
	if got := top.Neighbours(testID(99)); got != nil {
		t.Errorf("Neighbours(non-member) = %v, want nil", got)
	}
	tests := []struct {
		a, b int
		want bool
	}{
		{0, 1, true}, {1, 0, true}, {1, 2, true}, {2, 3, true}, {3, 0, true},
		{0, 2, false}, {1, 3, false}, {0, 0, false}, {0, 99, false},
	}
	for _, tt := range tests {
		if got := top.HasEdge(testID(tt.a), testID(tt.b)); got != tt.want {
			t.Errorf("HasEdge(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestEqual(t *testing.T) {
	base := Compute(Ring{}, testMembers(4), nil)
	clone := func(f func(*Topology)) Topology {
		c := Topology{Epoch: base.Epoch, Strategy: base.Strategy,
			Members: append([]Member(nil), base.Members...),
			Edges:   append([]Edge(nil), base.Edges...)}
		f(&c)
		return c
	}
	tests := []struct {
		name string
		u    Topology
		want bool
	}{
		{"same", clone(func(*Topology) {}), true},
		{"epoch", clone(func(c *Topology) { c.Epoch++ }), false},
		{"strategy", clone(func(c *Topology) { c.Strategy = "star" }), false},
		{"member name", clone(func(c *Topology) { c.Members[2].Name = "x" }), false},
		{"member addr", clone(func(c *Topology) { c.Members[2].Addr = "x" }), false},
		{"member order", clone(func(c *Topology) { c.Members[1], c.Members[2] = c.Members[2], c.Members[1] }), false},
		{"edges", clone(func(c *Topology) { c.Edges = c.Edges[1:] }), false},
	}
	for _, tt := range tests {
		if got := base.Equal(tt.u); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
		if got := tt.u.Equal(base); got != tt.want {
			t.Errorf("%s: Equal (swapped) = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !(Topology{}).Equal(Topology{Members: []Member{}, Edges: []Edge{}}) {
		t.Error("nil and empty slices differ")
	}
}

// listStrategy returns fixed edges, for testing Compute.
type listStrategy []Edge

func (listStrategy) Name() string                       { return "list" }
func (s listStrategy) Edges([]Member, *Topology) []Edge { return s }

func TestCompute(t *testing.T) {
	ms := []Member{{ID: 5, Name: "a"}, {ID: 3, Name: "b"}, {ID: 9, Name: "c"}}
	// Unsorted, un-normalised and duplicated edges are put in order.
	s := listStrategy{{9, 3}, {5, 3}, {3, 9}, {9, 5}, {3, 5}}
	got := Compute(s, ms, nil)
	want := Topology{Epoch: 1, Strategy: "list", Members: ms, Edges: []Edge{{3, 5}, {3, 9}, {5, 9}}}
	if !got.Equal(want) {
		t.Fatalf("Compute = %+v, want %+v", got, want)
	}
	next := Compute(s, ms, &got)
	if next.Epoch != 2 {
		t.Errorf("epoch after 1 = %d, want 2", next.Epoch)
	}
	prev := Topology{Epoch: 41}
	if e := Compute(Ring{}, ms, &prev).Epoch; e != 42 {
		t.Errorf("epoch after 41 = %d, want 42", e)
	}
	// Compute copies its input.
	ms[0].Name = "changed"
	if got.Members[0].Name != "a" {
		t.Error("Compute kept the caller's slice")
	}
	if e := Compute(Ring{}, nil, nil); e.Edges == nil || len(e.Members) != 0 {
		t.Errorf("Compute with no member = %+v, want non-nil empty edges", e)
	}
}

func TestComputePanics(t *testing.T) {
	ms := []Member{{ID: 1}, {ID: 2}}
	tests := []struct {
		name    string
		s       Strategy
		members []Member
	}{
		{"self loop", listStrategy{{1, 1}}, ms},
		{"non-member", listStrategy{{1, 3}}, ms},
		{"duplicate member", Ring{}, []Member{{ID: 1}, {ID: 1}}},
		{"no id", Ring{}, []Member{{ID: 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Compute did not panic")
				}
			}()
			Compute(tt.s, tt.members, nil)
		})
	}
}

package topology

import (
	"math/bits"
	"slices"
	"strings"
	"testing"
)

// TestStrategyEdges pins the exact edges of every strategy for small N.
func TestStrategyEdges(t *testing.T) {
	ms := testMembers(8)
	type p = [2]int
	tests := []struct {
		s    Strategy
		n    int
		want []Edge
	}{
		{Star{}, 1, labelEdges(ms)},
		{Star{}, 2, labelEdges(ms, p{0, 1})},
		{Star{}, 4, labelEdges(ms, p{0, 1}, p{0, 2}, p{0, 3})},
		{Bus{}, 1, labelEdges(ms)},
		{Bus{}, 2, labelEdges(ms, p{0, 1})},
		{Bus{}, 4, labelEdges(ms, p{0, 1}, p{0, 2}, p{0, 3}, p{1, 2}, p{1, 3}, p{2, 3})},
		{Hypercube{}, 1, labelEdges(ms)},
		{Hypercube{}, 2, labelEdges(ms, p{0, 1})},
		{Hypercube{}, 3, labelEdges(ms, p{0, 1}, p{0, 2}, p{1, 2})}, // cover edge 1–2
		{Hypercube{}, 4, labelEdges(ms, p{0, 1}, p{0, 2}, p{1, 3}, p{2, 3})},
		{Hypercube{}, 5, labelEdges(ms, p{0, 1}, p{0, 2}, p{0, 4}, p{1, 3}, p{2, 3}, p{1, 4})}, // cover edge 1–4
		{Hypercube{}, 6, labelEdges(ms, p{0, 1}, p{0, 2}, p{0, 4}, p{1, 3}, p{1, 5}, p{2, 3}, p{4, 5})},
		{Hypercube{}, 7, labelEdges(ms, p{0, 1}, p{0, 2}, p{0, 4}, p{1, 3}, p{1, 5}, p{2, 3}, p{2, 6}, p{4, 5}, p{4, 6})},
		{Hypercube{}, 8, labelEdges(ms, p{0, 1}, p{0, 2}, p{0, 4}, p{1, 3}, p{1, 5}, p{2, 3}, p{2, 6}, p{3, 7},
			p{4, 5}, p{4, 6}, p{5, 7}, p{6, 7})},
	}
	for _, tt := range tests {
		if got := Compute(tt.s, ms[:tt.n], nil).Edges; !slices.Equal(got, tt.want) {
			t.Errorf("%s, N=%d: edges %v, want %v", tt.s.Name(), tt.n, got, tt.want)
		}
	}
}

// TestStrategyShapes checks every strategy for N = 1..20: validity, edge
// count, connectivity, and degree and diameter bounds.
func TestStrategyShapes(t *testing.T) {
	log2 := func(n int) int { return bits.Len(uint(n - 1)) } // ⌈log2 n⌉
	type shape struct {
		edges          int // -1: not checked
		minDeg, maxDeg int
		minDia, maxDia int
	}
	tests := []struct {
		s     Strategy
		shape func(n int) shape
	}{
		{Ring{}, func(n int) shape {
			switch n {
			case 1:
				return shape{0, 0, 0, 0, 0}
			case 2:
				return shape{1, 1, 1, 1, 1}
			}
			return shape{n, 2, 2, n / 2, n / 2}
		}},
		{Star{}, func(n int) shape {
			if n == 1 {
				return shape{0, 0, 0, 0, 0}
			}
			return shape{n - 1, 1, n - 1, min(n-1, 2), min(n-1, 2)}
		}},
		{Bus{}, func(n int) shape {
			return shape{n * (n - 1) / 2, n - 1, n - 1, min(n-1, 1), min(n-1, 1)}
		}},
		{Hypercube{}, func(n int) shape {
			d := log2(n)
			switch n {
			case 1:
				return shape{0, 0, 0, 0, 0}
			case 2:
				return shape{1, 1, 1, 1, 1}
			}
			return shape{-1, 2, d, 1, d}
		}},
	}
	for _, tt := range tests {
		for n := 1; n <= 20; n++ {
			top := Compute(tt.s, testMembers(n), nil)
			want := tt.shape(n)
			if err := top.Validate(); err != nil {
				t.Errorf("%s, N=%d: %v", tt.s.Name(), n, err)
			}
			if top.Strategy != tt.s.Name() {
				t.Errorf("%s, N=%d: Strategy = %q", tt.s.Name(), n, top.Strategy)
			}
			if want.edges >= 0 && len(top.Edges) != want.edges {
				t.Errorf("%s, N=%d: %d edges, want %d", tt.s.Name(), n, len(top.Edges), want.edges)
			}
			if !Connected(top) {
				t.Errorf("%s, N=%d: not connected", tt.s.Name(), n)
			}
			if lo, hi := degrees(top); lo < want.minDeg || hi > want.maxDeg {
				t.Errorf("%s, N=%d: degrees in [%d, %d], want within [%d, %d]", tt.s.Name(), n, lo, hi, want.minDeg, want.maxDeg)
			}
			if d := Diameter(top); d < want.minDia || d > want.maxDia {
				t.Errorf("%s, N=%d: diameter %d, want within [%d, %d]", tt.s.Name(), n, d, want.minDia, want.maxDia)
			}
		}
	}
}

// TestStarBusChurn checks that star and bus only touch the edges of the
// member that joins or leaves, as long as the leader stays.
func TestStarBusChurn(t *testing.T) {
	all := testMembers(21)
	for _, s := range []Strategy{Star{}, Bus{}} {
		for n := 2; n <= 20; n++ {
			prev := Compute(s, all[:n-1], nil)
			next := Compute(s, all[:n], &prev)
			added, removed := edgeChanges(prev, next)
			newcomer := all[n-1].ID
			if len(removed) != 0 {
				t.Errorf("%s: join to N=%d removed %v", s.Name(), n, removed)
			}
			for _, e := range added {
				if e.A != newcomer && e.B != newcomer {
					t.Errorf("%s: join to N=%d added %v, not an edge of the newcomer", s.Name(), n, e)
				}
			}
			for k := 1; k < n; k++ {
				full := Compute(s, all[:n], nil)
				after := Compute(s, slices.Delete(slices.Clone(all[:n]), k, k+1), &full)
				added, removed := edgeChanges(full, after)
				if len(added) != 0 {
					t.Errorf("%s: member %d leaving N=%d added %v", s.Name(), k, n, added)
				}
				if want := len(full.Neighbours(all[k].ID)); len(removed) != want {
					t.Errorf("%s: member %d leaving N=%d removed %d edges, want %d", s.Name(), k, n, len(removed), want)
				}
			}
		}
	}
}

func TestStrategyByName(t *testing.T) {
	tests := []struct {
		name    string
		want    Strategy
		wantErr bool
	}{
		{"ring", Ring{}, false},
		{"star", Star{}, false},
		{"bus", Bus{}, false},
		{"hypercube", Hypercube{}, false},
		{"Ring", Ring{}, false},
		{"HYPERCUBE", Hypercube{}, false},
		{"mesh", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := StrategyByName(tt.name)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "ring, star, bus, hypercube") {
				t.Errorf("StrategyByName(%q) = %v, %v; want an error listing the names", tt.name, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("StrategyByName(%q) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	for _, name := range StrategyNames() {
		s, err := StrategyByName(name)
		if err != nil || s.Name() != name {
			t.Errorf("StrategyByName(%q) = %v, %v", name, s, err)
		}
	}
}

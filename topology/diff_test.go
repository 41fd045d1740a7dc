package topology

import (
	"slices"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
)

func TestDiff(t *testing.T) {
	all := testMembers(4) // LeaderNode, Node1, Node2, Node3
	three := Compute(Ring{}, all[:3], nil)
	four := Compute(Ring{}, all, &three)
	healed := Compute(Ring{}, []Member{all[0], all[1], all[3]}, &four)
	sorted := func(positions ...int) []nodeid.ID {
		var ids []nodeid.ID
		for _, p := range positions {
			ids = append(ids, all[p].ID)
		}
		slices.Sort(ids)
		return ids
	}
	tests := []struct {
		name        string
		prev, next  Topology
		self        int
		add, remove []nodeid.ID
	}{
		{"Node3 joins, leader", three, four, 0, sorted(3), sorted(2)},
		{"Node3 joins, Node2", three, four, 2, sorted(3), sorted(0)},
		{"Node3 joins, Node1", three, four, 1, nil, nil},
		{"Node3 joins, Node3", three, four, 3, sorted(0, 2), nil},
		{"Node2 dies, Node1", four, healed, 1, sorted(3), sorted(2)},
		{"Node2 dies, Node2", four, healed, 2, nil, sorted(1, 3)},
		{"same", four, four, 0, nil, nil},
		{"from nothing", Topology{}, four, 0, sorted(1, 3), nil},
	}
	for _, tt := range tests {
		add, remove := Diff(tt.prev, tt.next, all[tt.self].ID)
		if !slices.Equal(add, tt.add) || !slices.Equal(remove, tt.remove) {
			t.Errorf("%s: Diff = +%v -%v, want +%v -%v", tt.name, add, remove, tt.add, tt.remove)
		}
	}
}

func TestDialer(t *testing.T) {
	tests := []struct{ a, b, want nodeid.ID }{
		{1, 2, 1}, {2, 1, 1}, {0xffff_ffff_ffff_ffff, 3, 3}, {5, 5, 5},
	}
	for _, tt := range tests {
		if got := Dialer(tt.a, tt.b); got != tt.want {
			t.Errorf("Dialer(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

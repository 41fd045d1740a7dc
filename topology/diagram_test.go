package topology

import "testing"

func TestDiagram(t *testing.T) {
	ms := testMembers(5)
	unnamed := []Member{{ID: 0x2a}, {ID: 0x07}}
	heal := Compute(Ring{}, ms, &Topology{Strategy: "ring", Members: []Member{ms[0], ms[2], ms[4]},
		Edges: labelEdges(ms, [2]int{0, 2}, [2]int{2, 4}, [2]int{4, 0})})
	tests := []struct {
		name string
		top  Topology
		want string
	}{
		{"empty", Topology{}, ""},
		{"alone", Compute(Ring{}, ms[:1], nil), "LeaderNode"},
		{"alone, star", Compute(Star{}, ms[:1], nil), "LeaderNode"},
		{"ring of two", Compute(Ring{}, ms[:2], nil), "LeaderNode -- Node1 -- LeaderNode"},
		{"ring of five", Compute(Ring{}, ms, nil), "LeaderNode -- Node1 -- Node2 -- Node3 -- Node4 -- LeaderNode"},
		// The leader's earlier neighbour is Node2 (position 2 < 3).
		{"healed ring", heal, "LeaderNode -- Node2 -- Node4 -- Node1 -- Node3 -- LeaderNode"},
		{"ring without names", Compute(Ring{}, unnamed, nil), "000000000000002a -- 0000000000000007 -- 000000000000002a"},
		{"star", Compute(Star{}, ms[:4], nil), "LeaderNode -- Node1\nLeaderNode -- Node2\nLeaderNode -- Node3"},
		{"bus", Compute(Bus{}, ms[:3], nil), "LeaderNode -- Node1\nLeaderNode -- Node2\nNode1 -- Node2"},
		{"hypercube", Compute(Hypercube{}, ms[:4], nil),
			"LeaderNode -- Node1\nLeaderNode -- Node2\nNode1 -- Node3\nNode2 -- Node3"},
		// A topology named ring that is not one is drawn edge by edge.
		{"broken ring", Topology{Strategy: "ring", Members: ms[:3], Edges: labelEdges(ms, [2]int{1, 2})}, "Node1 -- Node2"},
		{"no edge", Topology{Strategy: "star", Members: ms[:3]}, ""},
	}
	for _, tt := range tests {
		if got := Diagram(tt.top); got != tt.want {
			t.Errorf("%s: Diagram =\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}

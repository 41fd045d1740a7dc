package topology_test

import (
	"fmt"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// The reference scenario: the leader is alone, three nodes join, Node2 dies.
func Example() {
	all := []topology.Member{
		{ID: 0x40, Name: "LeaderNode"},
		{ID: 0x10, Name: "Node1"},
		{ID: 0x30, Name: "Node2"},
		{ID: 0x20, Name: "Node3"},
	}
	steps := [][]topology.Member{
		all[:1], all[:2], all[:3], all,
		{all[0], all[1], all[3]}, // Node2 dies
	}
	var prev *topology.Topology
	for _, members := range steps {
		t := topology.Compute(topology.Ring{}, members, prev)
		fmt.Printf("epoch %d: %s\n", t.Epoch, topology.Diagram(t))
		prev = &t
	}
	// Output:
	// epoch 1: LeaderNode
	// epoch 2: LeaderNode -- Node1 -- LeaderNode
	// epoch 3: LeaderNode -- Node1 -- Node2 -- LeaderNode
	// epoch 4: LeaderNode -- Node1 -- Node2 -- Node3 -- LeaderNode
	// epoch 5: LeaderNode -- Node1 -- Node3 -- LeaderNode
}

func ExampleRoutes() {
	members := []topology.Member{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}, {ID: 3, Name: "c"}, {ID: 4, Name: "d"}, {ID: 5, Name: "e"}}
	t := topology.Compute(topology.Ring{}, members, nil)
	rt := topology.Routes(t, 1)
	next, _ := rt.NextHop(3)
	fmt.Println("from 1 to 3 via", uint64(next))
	fmt.Println("path 1 → 3:", topology.Path(t, 1, 3))
	fmt.Println("diameter:", topology.Diameter(t))
	// Output:
	// from 1 to 3 via 2
	// path 1 → 3: [0000000000000001 0000000000000002 0000000000000003]
	// diameter: 2
}

func ExampleDiff() {
	members := []topology.Member{{ID: 1, Name: "L"}, {ID: 2, Name: "N1"}, {ID: 3, Name: "N2"}, {ID: 4, Name: "N3"}}
	before := topology.Compute(topology.Ring{}, members, nil)
	after := topology.Compute(topology.Ring{}, []topology.Member{members[0], members[1], members[3]}, &before)
	add, remove := topology.Diff(before, after, 2)
	fmt.Println("N1 connects to", add, "and disconnects from", remove)
	for _, id := range add {
		fmt.Println("dialled by", topology.Dialer(2, id))
	}
	// Output:
	// N1 connects to [0000000000000004] and disconnects from [0000000000000003]
	// dialled by 0000000000000002
}

func ExampleCanCommit() {
	last := []nodeid.ID{1, 2, 3, 4}
	fmt.Println("3 of 4:", topology.CanCommit(topology.Majority{}, last, []nodeid.ID{1, 2, 3}))
	fmt.Println("2|2:  ", topology.CanCommit(topology.Majority{}, last, []nodeid.ID{1, 2}),
		topology.CanCommit(topology.Majority{}, last, []nodeid.ID{3, 4}))
	// Output:
	// 3 of 4: true
	// 2|2:   false false
}

func ExampleDiagram() {
	members := []topology.Member{{ID: 7, Name: "hub"}, {ID: 3, Name: "a"}, {ID: 9, Name: "b"}}
	fmt.Println(topology.Diagram(topology.Compute(topology.Star{}, members, nil)))
	// Output:
	// hub -- a
	// hub -- b
}

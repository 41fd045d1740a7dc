package cluster

import (
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

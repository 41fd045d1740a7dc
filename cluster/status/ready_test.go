package status

import (
	"strings"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

func TestNotReady(t *testing.T) {
	a, b, c := nodeid.ID(1), nodeid.ID(2), nodeid.ID(3)
	ring := topology.Topology{Epoch: 4, Members: []topology.Member{{ID: a}, {ID: b}, {ID: c}}, Edges: []topology.Edge{{A: a, B: b}, {A: a, B: c}, {A: b, B: c}}}
	tests := []struct {
		name   string
		joined bool
		top    topology.Topology
		peers  []nodeid.ID
		want   string // a part of the reason; "" for ready
	}{
		{"ready", true, ring, []nodeid.ID{b, c}, ""},
		{"not joined", false, topology.Topology{}, nil, "not a live member"},
		{"left", false, ring, []nodeid.ID{b, c}, "left the cluster"},
		{"no topology", true, topology.Topology{}, nil, "no committed topology"},
		{"not in topology", true, topology.Topology{Epoch: 2, Members: []topology.Member{{ID: b}, {ID: c}}, Edges: []topology.Edge{{A: b, B: c}}}, []nodeid.ID{b}, "not a member of the committed topology (epoch 2)"},
		{"missing connection", true, ring, []nodeid.ID{b}, "connections (1) differ from the edges of epoch 4 (2)"},
		{"extra connection", true, ring, []nodeid.ID{b, c, 9}, "connections (3) differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := notReady(a, tt.joined, tt.top, tt.peers)
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("notReady = %q, want %q", got, tt.want)
			}
		})
	}
}

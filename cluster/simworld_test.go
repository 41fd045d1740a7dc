package cluster_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster/sim"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// simWorld starts n members on a simulated network, one every 10 ms, so
// that a ring follows host order (n0-n1-...-n0), and waits until they
// agree. It must run inside a testing/synctest bubble; the caller closes
// the world.
func simWorld(t *testing.T, n int, cfg sim.WorldConfig) (*sim.Network, *sim.World) {
	t.Helper()
	nw := sim.NewNetwork(1, n, sim.LinkConditions{Delay: 500 * time.Microsecond, Jitter: 500 * time.Microsecond})
	ids := make([]nodeid.ID, n)
	for i := range ids {
		ids[i] = nodeid.ID(0x100 + i)
	}
	cfg.Net, cfg.IDs = nw, ids
	w, err := sim.NewWorld(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for h := range n {
		if err := w.Start(h); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	simAgree(t, nw, w, 5*time.Second)
	return nw, w
}

// simAgree waits until the live members of w have committed one topology
// of exactly themselves and are connected to exactly their neighbours, and
// returns it.
func simAgree(t *testing.T, nw *sim.Network, w *sim.World, within time.Duration) topology.Topology {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		top, why := simAgreement(nw, w)
		if why == "" {
			return top
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agreement within %v: %s", within, why)
		}
		time.Sleep(10 * time.Millisecond) // simulated time: polling costs nothing
	}
}

func simAgreement(nw *sim.Network, w *sim.World) (topology.Topology, string) {
	live := w.Live()
	first := live[0].Cluster.Topology()
	if len(first.Members) != len(live) {
		return first, fmt.Sprintf("%s's epoch %d has %d members, %d live", live[0].Name, first.Epoch, len(first.Members), len(live))
	}
	for _, m := range live {
		top := m.Cluster.Topology()
		if !top.Equal(first) || !top.Contains(m.ID) {
			return first, fmt.Sprintf("%s is at epoch %d, %s at epoch %d", live[0].Name, first.Epoch, m.Name, top.Epoch)
		}
		if !slices.Equal(m.Node.Peers(), top.Neighbours(m.ID)) {
			return first, fmt.Sprintf("%s is connected to %v, its neighbours are %v", m.Name, m.Node.Peers(), top.Neighbours(m.ID))
		}
	}
	if conns := nw.OpenConns(); len(conns) != len(first.Edges) {
		return first, fmt.Sprintf("%d connections, %d edges", len(conns), len(first.Edges))
	}
	return first, ""
}

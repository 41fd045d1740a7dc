package cluster_test

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/topology"
)

// These measurements run only when TRELLIS_FIGURES=1; they print the
// figures of the topology issue (go test -run Figures -v ./cluster).
func figures(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") != "1" {
		t.Skip("set TRELLIS_FIGURES=1 to measure")
	}
}

// startCluster starts n members with strategy s, joining one by one.
func startCluster(t *testing.T, s topology.Strategy, n int) []*member {
	seeds := []string{freeUDPAddr(t)}
	ms := []*member{startMemberWith(t, s, "LeaderNode", seeds[0], seeds...)}
	for i := 1; i < n; i++ {
		ms = append(ms, startMemberWith(t, s, fmt.Sprintf("Node%d", i), "", seeds...))
		seeds = append(seeds, ms[i].disc.Local().PacketAddr.String())
	}
	agree(t, ms, 30*time.Second)
	return ms
}

func TestFiguresFailover(t *testing.T) {
	figures(t)
	for _, n := range []int{8, 16} {
		ms := startCluster(t, topology.Ring{}, n)
		seed := ms[0].disc.Local().PacketAddr.String()
		var took []time.Duration
		for k := range 20 {
			victim := ms[1+k%(n-1)]
			for victim.dead {
				victim = ms[len(ms)-1] // replacements are appended
			}
			victim.kill()
			start := time.Now()
			agree(t, ms, 10*time.Second)
			took = append(took, time.Since(start))
			// A replacement keeps the cluster at n members.
			ms = append(ms, startMember(t, fmt.Sprintf("Spare%d", k), "", seed))
			agree(t, ms, 10*time.Second)
		}
		slices.Sort(took)
		t.Logf("N=%d: kill to agreed topology (connections == edges) over %d kills: min %v p50 %v p99 %v max %v",
			n, len(took), took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond),
			took[len(took)*99/100].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		for _, m := range ms {
			m.kill()
		}
	}
}

func TestFiguresStrategies(t *testing.T) {
	figures(t)
	const n = 16
	for _, s := range []topology.Strategy{topology.Ring{}, topology.Star{}, topology.Bus{}, topology.Hypercube{}} {
		ms := startCluster(t, s, n)
		top := agree(t, ms, 30*time.Second)
		lo, hi := n, 0
		for _, m := range ms {
			d := len(top.Neighbours(m.node.ID()))
			lo, hi = min(lo, d), max(hi, d)
		}
		ports := map[int]bool{}
		for _, m := range ms {
			ports[m.port] = true
		}
		conns, _ := establishedTo(ports)
		t.Logf("%-9s N=%d: %3d edges, %3d TCP connections, per node %d..%d, diameter %d",
			s.Name(), n, len(top.Edges), conns, lo, hi, topology.Diameter(top))
		for _, m := range ms {
			m.kill()
		}
	}
}

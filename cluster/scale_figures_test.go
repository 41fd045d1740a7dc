package cluster

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/wire"
	"github.com/trellisrpc/trellis/topology"
)

// Network assumed by the cascade simulation: one-way latency and the
// bandwidth of a member's link (what it sends to its children shares it).
const (
	simLatency   = 100 * time.Microsecond
	simBandwidth = 125e6 // bytes per second: 1 Gbit/s
)

// TestFiguresCascade simulates the leader's cascade after a join at N = 16,
// 64, 256 and 1,000 for each built-in strategy, and prints the time from the
// membership change to the last member's commit. Each member's work is
// measured on this machine with the real code (CBOR encoding and decoding of
// the proposal with the runtime's options, topologyOf, children, Routes); the
// network is modelled (simLatency one way, simBandwidth per link, the
// proposal sent to each child in turn). Runs only with TRELLIS_FIGURES=1:
//
//	TRELLIS_FIGURES=1 go test -run TestFiguresCascade -v ./cluster
func TestFiguresCascade(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") != "1" {
		t.Skip("set TRELLIS_FIGURES=1 to measure")
	}
	enc, err := codegen.CBOREncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := codegen.CBORDecOptions(wire.Limits{}).DecMode()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []topology.Strategy{topology.Ring{}, topology.Star{}, topology.Hypercube{}, topology.Bus{}} {
		for _, n := range []int{16, 64, 256, 1000} {
			if s.Name() == "bus" && n > topology.MaxBusMembers {
				t.Logf("%-9s N=%4d: refused (more than %d members)", s.Name(), n, topology.MaxBusMembers)
				continue
			}
			r := simulateCascade(t, s, n, enc, dec, false)
			t.Logf("%-9s N=%4d: compute %8v  proposal %7d B  tree depth %3d  per-hop prepare %8v commit %8v  prepare %9v  commit %9v  total %9v",
				s.Name(), n, r.compute.Round(time.Microsecond), r.size, r.depth, r.hopPrepare.Round(time.Microsecond),
				r.hopCommit.Round(time.Microsecond), r.prepare.Round(time.Microsecond), r.commit.Round(time.Microsecond),
				r.total.Round(time.Microsecond))
		}
	}
	// The same simulation, members doing what they did before the cascade
	// was optimised, for comparison.
	for _, s := range []topology.Strategy{topology.Ring{}, topology.Hypercube{}} {
		b := simulateCascade(t, s, 1000, enc, dec, true)
		r := simulateCascade(t, s, 1000, enc, dec, false)
		t.Logf("%-9s N=1000: before the optimisation total %v, after %v (%.2fx)", s.Name(), b.total.Round(time.Millisecond),
			r.total.Round(time.Millisecond), float64(b.total)/float64(r.total))
	}
}

type cascadeFigures struct {
	compute, hopPrepare, hopCommit, prepare, commit, total time.Duration
	size, depth                                            int
}

func simMembers(n int) []topology.Member {
	ms := make([]topology.Member, n)
	for i := range ms {
		ms[i] = topology.Member{ID: nodeid.ID(0x1000_0000 + 7919*uint64(i+1)), Name: fmt.Sprintf("node-%d", i),
			Addr: fmt.Sprintf("10.0.%d.%d:7001", i/256, i%256)}
	}
	return ms
}

// simulateCascade simulates one cascade. With baseline, members do what they
// did before the cascade was optimised: the map-based tree
// (childrenReference), and on commit the routing table and the topology's
// diagram for the log before forwarding the commit.
func simulateCascade(t *testing.T, s topology.Strategy, n int, enc cbor.EncMode, dec cbor.DecMode, baseline bool) cascadeFigures {
	ms := simMembers(n)
	leader := ms[0].ID
	prevTop := topology.Compute(s, ms[:n-1], nil)
	var next topology.Topology
	compute := minOf(func() { next = topology.Compute(s, ms, &prevTop) })
	p := proposal(leader, next, prevTop)
	b, err := enc.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	mid := ms[n/2].ID
	decode := minOf(func() {
		var q controlplane.Proposal
		if err := dec.Unmarshal(b, &q); err != nil {
			t.Fatal(err)
		}
	})
	encode := minOf(func() { _, _ = enc.Marshal(p) })
	validate := minOf(func() {
		if _, err := topologyOf(&p); err != nil {
			t.Fatal(err)
		}
	})
	tree := minOf(func() { children(&p, mid) })
	routes := minOf(func() { topology.Routes(next, mid) })
	var logged time.Duration
	if baseline {
		tree = minOf(func() { childrenReference(&p, mid) })
		logged = minOf(func() { _ = topology.Diagram(next) })
	}
	xfer := time.Duration(float64(len(b)) / simBandwidth * float64(time.Second))
	if n == 1000 {
		t.Logf("%s N=%d per member: decode %v, validate %v, tree %v, encode %v, routes %v, transfer %v",
			s.Name(), n, decode, validate, tree, encode, routes, xfer)
	}
	kids := make(map[nodeid.ID][]controlplane.Member, n)
	for _, m := range ms {
		kids[m.ID] = children(&p, m.ID)
	}
	// prep(u): from u's receipt of the proposal to u's reply: decode,
	// validate, compute the tree, then send to each child in turn (sharing
	// u's link) and wait for the slowest subtree's reply.
	var prep, comm func(u nodeid.ID, depth int) (time.Duration, int)
	prep = func(u nodeid.ID, depth int) (time.Duration, int) {
		own := validate + tree
		if u != leader {
			own += decode
		}
		worst, deepest := time.Duration(0), depth
		for i, k := range kids[u] {
			d, dd := prep(k.ID, depth+1)
			worst = max(worst, encode+time.Duration(i+1)*xfer+simLatency+d+simLatency)
			deepest = max(deepest, dd)
		}
		return own + worst, deepest
	}
	// comm(u): validate, compute the tree, forward the commit (a few bytes)
	// while computing the routing table, and wait for both.
	comm = func(u nodeid.ID, depth int) (time.Duration, int) {
		worst := routes
		for _, k := range kids[u] {
			d, _ := comm(k.ID, depth+1)
			if baseline {
				d += routes + logged
			}
			worst = max(worst, simLatency+d+simLatency)
		}
		return validate + tree + worst, depth
	}
	prepare, depth := prep(leader, 0)
	commit, _ := comm(leader, 0)
	return cascadeFigures{compute: compute, hopPrepare: decode + validate + tree + encode, hopCommit: validate + tree + routes,
		prepare: prepare, commit: commit, total: compute + prepare + commit, size: len(b), depth: depth}
}

// minOf runs f 15 times and returns the shortest duration: on a shared
// machine, the closest to f's own cost.
func minOf(f func()) time.Duration {
	best := time.Duration(1<<63 - 1)
	for range 15 {
		start := time.Now()
		f()
		best = min(best, time.Since(start))
	}
	return best
}

package cluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// children must give, for every member, exactly what the reference
// implementation gives: the same tree, children in the same order.
func TestChildrenMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strategies := []topology.Strategy{topology.Ring{}, topology.Star{}, topology.Hypercube{}, topology.Bus{}}
	for trial := range 60 {
		n := 1 + rng.IntN(40)
		ms := simMembers(n + 3)
		rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		s := strategies[trial%len(strategies)]
		prevMembers := ms[:n]
		nextMembers := slices.Clone(ms[1+rng.IntN(3) : n+rng.IntN(4)]) // some leave, some join
		if len(nextMembers) == 0 {
			continue
		}
		prev := topology.Compute(s, prevMembers, nil)
		next := topology.Compute(s, nextMembers, &prev)
		p := proposal(nextMembers[0].ID, next, prev)
		// Hostile extras: an edge to a non-member, a self loop, a duplicate.
		p.Previous = append(p.Previous, controlplane.Edge{A: nextMembers[0].ID, B: nodeid.ID(1)},
			controlplane.Edge{A: nextMembers[0].ID, B: nextMembers[0].ID})
		if len(p.Edges) > 0 {
			p.Previous = append(p.Previous, p.Edges[0])
		}
		for _, m := range append(nextMembers, topology.Member{ID: 12345}) {
			got, want := children(&p, m.ID), childrenReference(&p, m.ID)
			if !slices.Equal(got, want) {
				t.Fatalf("trial %d (%s, %d members): children of %s = %v, reference %v", trial, s.Name(), len(nextMembers), m.ID, got, want)
			}
		}
	}
}

func BenchmarkChildren(b *testing.B) {
	for _, n := range []int{64, 1000} {
		ms := simMembers(n)
		prev := topology.Compute(topology.Ring{}, ms[:n-1], nil)
		next := topology.Compute(topology.Ring{}, ms, &prev)
		p := proposal(ms[0].ID, next, prev)
		self := ms[n/2].ID
		b.Run(fmt.Sprintf("ring-%d", n), func(b *testing.B) {
			for b.Loop() {
				children(&p, self)
			}
		})
		b.Run(fmt.Sprintf("ring-%d-reference", n), func(b *testing.B) {
			for b.Loop() {
				childrenReference(&p, self)
			}
		})
	}
}

package membership_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/membershiptest"
	"github.com/trellisrpc/trellis/nodeid"
)

// builtinHarness runs built-in nodes on the in-memory network, multicast on,
// with a 25 ms heartbeat (failure after 150 ms of silence).
type builtinHarness struct {
	nw    *membershiptest.Network
	addrs map[nodeid.ID]netip.AddrPort
}

const conformanceInterval = 25 * time.Millisecond

func (h *builtinHarness) NewNode(t *testing.T, spec membershiptest.NodeSpec) membershiptest.Node {
	t.Helper()
	a, ok := h.addrs[spec.ID]
	if !ok {
		a = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, 0, byte(len(h.addrs) + 1)}), 7947)
		h.addrs[spec.ID] = a
	}
	ep, err := h.nw.Listen(a, true)
	if err != nil {
		t.Fatal(err)
	}
	n, err := membership.New(membership.Config{ID: spec.ID, Name: spec.Name, Addr: spec.Addr, Meta: spec.Meta,
		Incarnation: spec.Incarnation, Keys: [][]byte{testKey}, Transport: ep, Interval: conformanceInterval})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *builtinHarness) Partition(t *testing.T, groups ...[]nodeid.ID) {
	var gs [][]netip.AddrPort
	for _, g := range groups {
		var as []netip.AddrPort
		for _, id := range g {
			as = append(as, h.addrs[id])
		}
		gs = append(gs, as)
	}
	h.nw.Partition(gs...)
}

func (h *builtinHarness) Heal(t *testing.T) { h.nw.Heal() }

func TestConformance(t *testing.T) {
	membershiptest.Run(t, membershiptest.Backend{
		NewHarness: func(t *testing.T) membershiptest.Harness {
			return &builtinHarness{nw: membershiptest.NewNetwork(membershiptest.Options{Seed: 1}),
				addrs: make(map[nodeid.ID]netip.AddrPort)}
		},
		DetectWithin:   2 * time.Second,
		ConvergeWithin: 5 * time.Second,
	})
}

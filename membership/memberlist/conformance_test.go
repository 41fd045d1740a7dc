package memberlist_test

import (
	"context"
	"testing"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/membership/memberlist"
	"github.com/trellisrpc/trellis/membership/memberlist/memberlisttest"
	"github.com/trellisrpc/trellis/membership/membershiptest"
	"github.com/trellisrpc/trellis/nodeid"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// fastTune is a timing for tests: probes every 100 ms, gossip every 20 ms,
// suspicion of 3 probe intervals at least (so a member is failed within about
// a second), state exchange every 500 ms.
func fastTune(c *ml.Config) {
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 3
	c.GossipToTheDeadTime = 500 * time.Millisecond
	c.TCPTimeout = 500 * time.Millisecond
}

// memHarness runs memberlist nodes on the in-memory network; each node's seeds
// are the nodes created before it.
type memHarness struct {
	nw    *memberlisttest.Network
	addrs map[nodeid.ID]string
	order []nodeid.ID
}

func (h *memHarness) NewNode(t *testing.T, spec membershiptest.NodeSpec) membershiptest.Node {
	t.Helper()
	var tr *memberlisttest.Transport
	if a, ok := h.addrs[spec.ID]; ok {
		var err error
		if tr, err = h.nw.Listen(a); err != nil {
			t.Fatal(err)
		}
	} else {
		tr = h.nw.NewTransport()
		h.addrs[spec.ID] = tr.Addr()
		h.order = append(h.order, spec.ID)
	}
	n, err := memberlist.New(memberlist.Config{ID: spec.ID, Name: spec.Name, Addr: spec.Addr, Meta: spec.Meta,
		Incarnation: spec.Incarnation, Keys: [][]byte{testKey}, Transport: tr, Seeds: h.seeds(spec.ID),
		Tune: fastTune, RejoinInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *memHarness) seeds(self nodeid.ID) []string {
	var out []string
	for _, id := range h.order {
		if id != self {
			out = append(out, h.addrs[id])
		}
	}
	return out
}

func (h *memHarness) Partition(t *testing.T, groups ...[]nodeid.ID) {
	var gs [][]string
	for _, g := range groups {
		var as []string
		for _, id := range g {
			as = append(as, h.addrs[id])
		}
		gs = append(gs, as)
	}
	if err := h.nw.Partition(gs...); err != nil {
		t.Fatal(err)
	}
}

func (h *memHarness) Heal(t *testing.T) { h.nw.Heal() }

func TestConformanceInMemory(t *testing.T) {
	membershiptest.Run(t, membershiptest.Backend{
		NewHarness: func(t *testing.T) membershiptest.Harness {
			return &memHarness{nw: memberlisttest.NewNetwork(), addrs: make(map[nodeid.ID]string)}
		},
		DetectWithin:   4 * time.Second,
		ConvergeWithin: 5 * time.Second,
	})
}

// udpHarness runs memberlist nodes on real UDP and TCP sockets on loopback.
// It cannot partition: the suite runs the tests that need no partition.
type udpHarness struct {
	addrs map[nodeid.ID]string
	order []nodeid.ID
}

func (h *udpHarness) NewNode(t *testing.T, spec membershiptest.NodeSpec) membershiptest.Node {
	t.Helper()
	var seeds []string
	for _, id := range h.order {
		if id != spec.ID {
			seeds = append(seeds, h.addrs[id])
		}
	}
	bind := "127.0.0.1:0"
	if a, ok := h.addrs[spec.ID]; ok {
		bind = a // a restart takes its address back
	}
	n, err := memberlist.New(memberlist.Config{ID: spec.ID, Name: spec.Name, Addr: spec.Addr, Meta: spec.Meta,
		Incarnation: spec.Incarnation, Keys: [][]byte{testKey}, BindAddr: bind, Seeds: seeds,
		Tune: fastTune, RejoinInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &udpNode{Node: n, h: h}
}

// udpNode records its address once started, for the seeds of later nodes.
type udpNode struct {
	*memberlist.Node
	h *udpHarness
}

func (n *udpNode) Start(ctx context.Context) error {
	if err := n.Node.Start(ctx); err != nil {
		return err
	}
	id := n.ID()
	if _, ok := n.h.addrs[id]; !ok {
		n.h.order = append(n.h.order, id)
	}
	n.h.addrs[id] = n.Local().PacketAddr.String()
	return nil
}

func (h *udpHarness) Partition(t *testing.T, groups ...[]nodeid.ID) {
	t.Fatal("udpHarness cannot partition")
}

func (h *udpHarness) Heal(t *testing.T) {}

func TestConformanceLoopback(t *testing.T) {
	membershiptest.Run(t, membershiptest.Backend{
		NewHarness: func(t *testing.T) membershiptest.Harness {
			return &udpHarness{addrs: make(map[nodeid.ID]string)}
		},
		DetectWithin:   4 * time.Second,
		ConvergeWithin: 5 * time.Second,
		Only:           []string{"Join", "Leave", "Kill", "Restart", "LeaderChange", "MetaUpdate"},
	})
}

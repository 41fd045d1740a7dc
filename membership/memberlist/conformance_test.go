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

// fastTune is a timing for tests: probes every 200 ms (timeout 100 ms),
// gossip every 20 ms, suspicion of at least 4 probe intervals (so a dead
// member is failed within about 2 s, and a member starved for a few hundred
// milliseconds on a loaded machine is not), state exchange every 500 ms.
func fastTune(c *ml.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.SuspicionMult = 4
	c.SuspicionMaxTimeoutMult = 3
	c.GossipToTheDeadTime = 500 * time.Millisecond
	c.TCPTimeout = time.Second
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
		DetectWithin:   6 * time.Second,
		ConvergeWithin: 5 * time.Second,
	})
}

// loopbackTune is the timing on real sockets: slower than fastTune (probes
// every 400 ms, suspicion of at least 2.4 s), because real sockets under
// -race on a loaded machine showed false suspicions with it.
func loopbackTune(c *ml.Config) {
	fastTune(c)
	c.ProbeInterval = 400 * time.Millisecond
	c.ProbeTimeout = 200 * time.Millisecond
	c.SuspicionMult = 6
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
		Tune: loopbackTune, RejoinInterval: 200 * time.Millisecond})
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
		DetectWithin:   15 * time.Second,
		ConvergeWithin: 5 * time.Second,
		Only:           []string{"Join", "Leave", "Kill", "Restart", "MetaUpdate"},
	})
}

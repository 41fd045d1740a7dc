package membership_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

// Hostile packets are dropped, counted under the right counter and never acted on.
func TestSimHostilePackets(t *testing.T) {
	s := newSim(t, 11, lan)
	nodes := s.addN(3)
	var captured [][]byte // heartbeats of n2 seen by n1
	s.capture = func(to, from netip.AddrPort, p []byte) {
		if to == nodes[0].addr && from == nodes[1].addr && len(captured) < 3 {
			captured = append(captured, append([]byte(nil), p...))
		}
	}
	s.runUntil(2*time.Second, "all see three", s.allSee("n1,n2,n3"))
	s.capture = nil
	attacker, err := s.net.Listen(netip.MustParseAddrPort("10.0.0.66:7947"), false)
	if err != nil {
		t.Fatal(err)
	}
	sendAll := func(p []byte) {
		for _, sn := range nodes {
			attacker.WriteTo(p, sn.addr)
		}
		s.run(20 * time.Millisecond)
	}
	const evil = nodeid.ID(0xbad)
	before := map[*simNode]membership.Stats{}
	for _, sn := range nodes {
		before[sn] = sn.node.Stats()
	}

	sendAll(membership.EncodeHeartbeat(membership.DefaultClusterLabel, []byte("not-the-cluster-key!"), evil, 1, 1, "evil"))
	sendAll(membership.EncodeHeartbeat("other-cluster", testKey, evil, 1, 1, "evil"))
	sendAll([]byte("this is not a membership packet at all, but it is long enough"))
	for _, sn := range nodes {
		st, b := sn.node.Stats(), before[sn]
		if st.Forged != b.Forged+1 || st.ForeignCluster != b.ForeignCluster+1 || st.Malformed != b.Malformed+1 {
			t.Errorf("%s: forged %d→%d, foreign %d→%d, malformed %d→%d; want each +1", sn.name,
				b.Forged, st.Forged, b.ForeignCluster, st.ForeignCluster, b.Malformed, st.Malformed)
		}
		for _, m := range sn.node.Members() {
			if m.ID == evil {
				t.Errorf("%s accepted the forged member", sn.name)
			}
		}
	}

	// Replays of n2's heartbeats: refused while n2 lives (old sequence)...
	b1 := nodes[0].node.Stats().Replayed
	for _, p := range captured {
		attacker.WriteTo(p, nodes[0].addr)
	}
	s.run(20 * time.Millisecond)
	if got := nodes[0].node.Stats().Replayed; got != b1+uint64(len(captured)) {
		t.Errorf("replayed while alive: counter %d→%d, want +%d", b1, got, len(captured))
	}
	// ...and after it left: a replay must not bring it back.
	s.leave(nodes[1])
	s.run(100 * time.Millisecond)
	b1 = nodes[0].node.Stats().Replayed
	for _, p := range captured {
		attacker.WriteTo(p, nodes[0].addr)
	}
	s.run(time.Second)
	if got := nodes[0].node.Stats().Replayed; got != b1+uint64(len(captured)) {
		t.Errorf("replayed after leave: counter %d→%d, want +%d", b1, got, len(captured))
	}
	if nodes[0].count(membership.Joined, nodes[1]) != 1 || nodes[0].names() != "n1,n3" {
		t.Errorf("replay resurrected n2: joined %d times, members %s", nodes[0].count(membership.Joined, nodes[1]), nodes[0].names())
	}
}

// A packet from a previous incarnation is refused once the new life is known.
func TestSimOldIncarnationRefused(t *testing.T) {
	s := newSim(t, 12, lan)
	nodes := s.addN(2)
	var old []byte
	s.capture = func(to, from netip.AddrPort, p []byte) {
		if to == nodes[0].addr && from == nodes[1].addr && old == nil {
			old = append([]byte(nil), p...)
		}
	}
	s.runUntil(time.Second, "both see both", s.allSee("n1,n2"))
	s.capture = nil
	s.crash(nodes[1])
	s.restart(nodes[1])
	s.run(500 * time.Millisecond)
	before := nodes[0].node.Stats().Replayed
	joined := nodes[0].count(membership.Joined, nodes[1])
	nodes[0].node.SimHandle(s.clock.Now(), old, nodes[1].addr)
	s.run(10 * time.Millisecond)
	if nodes[0].node.Stats().Replayed != before+1 {
		t.Errorf("old incarnation not counted as replay")
	}
	if nodes[0].count(membership.Joined, nodes[1]) != joined {
		t.Errorf("old incarnation produced an event")
	}
	if ms := nodes[0].node.Members(); len(ms) != 2 || ms[1].Incarnation != nodes[1].inc {
		t.Errorf("members %v, want n2 at incarnation %d", ms, nodes[1].inc)
	}
}

// Unicast seed mode: one seed, every node discovers every other through
// propagation, and a crash is detected within the bound as with multicast.
func TestSimUnicastSeedsPropagate(t *testing.T) {
	s := newSim(t, 13, lan)
	s.mutate = func(c *membership.Config) {
		c.DisableMulticast = true
		if c.Name != "n1" {
			c.Seeds = []string{simAddr(1).String()}
		} else {
			c.Seeds = []string{simAddr(2).String()} // n1 needs a seed too
		}
	}
	nodes := s.addN(5)
	s.runUntil(5*time.Second, "all see five through one seed", s.allSee("n1,n2,n3,n4,n5"))
	// Everyone heartbeats everyone: kill the seed, the others stay together.
	crashed := s.clock.Now()
	s.crash(nodes[0])
	s.run(3 * time.Second)
	for _, sn := range s.others(nodes[0]) {
		at, ok := sn.firstEvent(membership.Failed, nodes[0], crashed)
		if !ok || at.Sub(crashed) > detectionBound {
			t.Errorf("%s: seed n1 failed after %v (%v)", sn.name, at.Sub(crashed), ok)
		}
		if got := sn.names(); got != "n2,n3,n4,n5" {
			t.Errorf("%s sees %s without the seed", sn.name, got)
		}
	}
}

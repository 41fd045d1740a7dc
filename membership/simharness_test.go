package membership_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/membershiptest"
	"github.com/trellisrpc/trellis/nodeid"
)

// The simulation runs nodes' engines in one timeline on a fake clock and a manual
// in-memory network: no goroutine, no real time, the same result for the same
// seed.

var testKey = []byte("0123456789abcdef-test-key")

var simEpoch = time.Unix(1_700_000_000, 0)

type simNode struct {
	name     string
	id       nodeid.ID
	addr     netip.AddrPort
	node     *membership.Node
	ep       *membershiptest.Endpoint
	sub      *membership.Subscription
	up       bool
	nextTick time.Time
	events   []membership.Event
	inc      uint64
	// While the clock is before frozenUntil the node does not run (a stall):
	// packets for it wait in backlog, handled after its first tick on resuming.
	frozenUntil time.Time
	backlog     []frozenPacket
	// restall, if set, freezes the node again for that long right after its
	// first tick on resuming, before it reads its backlog.
	restall time.Duration
	// index is the node's position in sim.nodes; touched marks it as having
	// run in the current step of sim.run.
	index   int
	touched bool
}

type frozenPacket struct {
	from netip.AddrPort
	data []byte
}

type sim struct {
	t      testing.TB
	seed   uint64
	clock  *membershiptest.FakeClock
	net    *membershiptest.Network
	nodes  []*simNode
	byAddr map[netip.AddrPort]*simNode
	tick   time.Duration
	log    []string
	// capture, if set, sees every delivered packet.
	capture func(to, from netip.AddrPort, p []byte)
	// mutate, if set, adjusts each node's configuration.
	mutate func(*membership.Config)
	// quiet, if set, keeps no log of events and gives each node's
	// subscription a queue of subBuffer events (large simulations).
	quiet     bool
	subBuffer int
}

func newSim(t testing.TB, seed uint64, c membershiptest.Conditions) *sim {
	clock := membershiptest.NewFakeClock(simEpoch)
	s := &sim{
		t: t, seed: seed, clock: clock,
		net:    membershiptest.NewNetwork(membershiptest.Options{Seed: seed, Clock: clock, Manual: true, Conditions: c}),
		byAddr: map[netip.AddrPort]*simNode{},
		tick:   membership.TickPeriod(membership.DefaultInterval),
	}
	t.Cleanup(func() {
		for _, sn := range s.nodes {
			if sn.node != nil {
				sn.node.Close()
			}
		}
	})
	return s
}

func simAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 7947)
}

// oneSeed makes the nodes added from now on heartbeat by unicast only, with
// the first node's address as their one seed.
func (s *sim) oneSeed() {
	s.mutate = func(c *membership.Config) {
		c.DisableMulticast = true
		c.Seeds = []string{simAddr(1).String()}
	}
}

// add starts a new node now.
func (s *sim) add(name string) *simNode {
	i := len(s.nodes) + 1
	sn := &simNode{name: name, id: nodeid.ID(0x1000 + i), addr: simAddr(i), index: i - 1}
	s.nodes = append(s.nodes, sn)
	s.byAddr[sn.addr] = sn
	s.boot(sn, 0)
	return sn
}

func (s *sim) boot(sn *simNode, inc uint64) {
	s.t.Helper()
	ep, err := s.net.Listen(sn.addr, true)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg := membership.Config{ID: sn.id, Name: sn.name, Addr: sn.name + ":9000", Keys: [][]byte{testKey},
		Incarnation: inc, Transport: ep, Clock: s.clock}
	if s.mutate != nil {
		s.mutate(&cfg)
	}
	n, err := membership.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	sn.node, sn.ep, sn.up = n, ep, true
	buf := 1 << 16
	if s.quiet && s.subBuffer > 0 {
		buf = s.subBuffer
	}
	sn.sub = n.Subscribe(buf)
	now := s.clock.Now()
	n.SimStart(now, ep, s.seed+uint64(sn.id))
	sn.inc = n.Local().Incarnation
	// Spread the nodes' tick phases.
	sn.nextTick = now.Add(time.Duration(len(s.nodes)*7) * time.Millisecond % s.tick)
	s.drain()
}

// crash stops sn without a word, as kill -9 would.
func (s *sim) crash(sn *simNode) {
	sn.up = false
	sn.node.Close()
	s.drain()
}

// restart boots a crashed sn again with the same ID and a higher incarnation.
func (s *sim) restart(sn *simNode) {
	s.boot(sn, sn.inc+1)
}

// leave makes sn leave gracefully.
func (s *sim) leave(sn *simNode) {
	sn.node.SimLeave(s.clock.Now())
	sn.up = false
	sn.node.Close()
	s.drain()
}

// run advances the simulation by d. Each step goes to the earliest of the next
// packet delivery and the next tick: it delivers the packets due, ticks the
// nodes due (in node order), then collects the events of the nodes that did
// either. The earliest tick is recomputed only after a step that ticked, and
// only the nodes touched are drained, so a step costs what happens in it, not
// O(N): large simulations (N = 1,000) stay fast. The order of what happens is
// that of a scan of every node at every step.
func (s *sim) run(d time.Duration) {
	end := s.clock.Now().Add(d)
	minTick := func() (time.Time, bool) {
		var t time.Time
		ok := false
		for _, sn := range s.nodes {
			if sn.up && (!ok || sn.nextTick.Before(t)) {
				t, ok = sn.nextTick, true
			}
		}
		return t, ok
	}
	tick, ticking := minTick()
	var touched []int
	mark := func(sn *simNode) {
		if !sn.touched {
			sn.touched = true
			touched = append(touched, sn.index)
		}
	}
	for {
		next, ok := s.net.NextDelivery()
		if ticking && (!ok || tick.Before(next)) {
			next, ok = tick, true
		}
		if !ok || next.After(end) {
			s.clock.Set(end)
			return
		}
		s.clock.Set(next)
		s.net.DeliverDue(next, func(to, from netip.AddrPort, p []byte) {
			if s.capture != nil {
				s.capture(to, from, p)
			}
			sn := s.byAddr[to]
			switch {
			case sn == nil || !sn.up:
			case next.Before(sn.frozenUntil):
				sn.backlog = append(sn.backlog, frozenPacket{from, append([]byte(nil), p...)})
			default:
				mark(sn)
				sn.node.SimHandle(next, p, from)
			}
		})
		if ticking && !tick.After(next) {
			for _, sn := range s.nodes {
				for sn.up && !sn.nextTick.After(next) {
					sn.nextTick = sn.nextTick.Add(s.tick)
					if next.Before(sn.frozenUntil) {
						continue
					}
					mark(sn)
					sn.node.SimTick(next)
					if sn.restall > 0 {
						sn.frozenUntil, sn.restall = next.Add(sn.restall), 0
						continue
					}
					for _, fp := range sn.backlog { // the worst order: the tick ran first
						sn.node.SimHandle(next, fp.data, fp.from)
					}
					sn.backlog = nil
				}
			}
			tick, ticking = minTick()
		}
		slices.Sort(touched)
		for _, i := range touched {
			sn := s.nodes[i]
			sn.touched = false
			s.drainNode(sn)
		}
		touched = touched[:0]
	}
}

func (s *sim) drain() {
	for _, sn := range s.nodes {
		s.drainNode(sn)
	}
}

// drainNode collects the events sn's subscription holds.
func (s *sim) drainNode(sn *simNode) {
	if sn.sub == nil {
		return
	}
	for {
		ev, ok := sn.sub.TryNext()
		if !ok {
			break
		}
		sn.events = append(sn.events, ev)
		if s.quiet {
			continue
		}
		s.log = append(s.log, fmt.Sprintf("%s %s %s %s inc=%d", ev.Time.Sub(simEpoch), sn.name, ev.Kind, ev.Member.Name, ev.Member.Incarnation))
	}
}

// runUntil advances in small steps until cond holds, failing after limit.
func (s *sim) runUntil(limit time.Duration, what string, cond func() bool) time.Duration {
	s.t.Helper()
	start := s.clock.Now()
	for !cond() {
		if s.clock.Now().Sub(start) > limit {
			s.t.Fatalf("after %v of simulated time: %s", limit, what)
		}
		s.run(5 * time.Millisecond)
	}
	return s.clock.Now().Sub(start)
}

// names returns the names of the live members sn sees, oldest first.
func (sn *simNode) names() string {
	var out []string
	for _, m := range sn.node.Members() {
		out = append(out, m.Name)
	}
	return strings.Join(out, ",")
}

// count returns how many events of kind about member sn has seen since index from.
func (sn *simNode) count(kind membership.EventKind, about *simNode) int {
	c := 0
	for _, ev := range sn.events {
		if ev.Kind == kind && (about == nil || ev.Member.ID == about.id) {
			c++
		}
	}
	return c
}

// firstEvent returns the time of the first event of kind about a member after t.
func (sn *simNode) firstEvent(kind membership.EventKind, about *simNode, after time.Time) (time.Time, bool) {
	for _, ev := range sn.events {
		if ev.Kind == kind && ev.Member.ID == about.id && !ev.Time.Before(after) {
			return ev.Time, true
		}
	}
	return time.Time{}, false
}

func (s *sim) others(not *simNode) []*simNode {
	var out []*simNode
	for _, sn := range s.nodes {
		if sn != not && sn.up {
			out = append(out, sn)
		}
	}
	return out
}

// addN starts n nodes 10 ms apart, so that their age order is their index order.
func (s *sim) addN(n int) []*simNode {
	for i := range n {
		s.add(fmt.Sprintf("n%d", i+1))
		s.run(10 * time.Millisecond)
	}
	return s.nodes
}

func (s *sim) allSee(want string) func() bool {
	return func() bool {
		for _, sn := range s.nodes {
			if sn.up && sn.names() != want {
				return false
			}
		}
		return true
	}
}

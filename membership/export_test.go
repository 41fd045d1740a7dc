package membership

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// Hooks for the external tests (package membership_test), which cannot see the
// engine: a simulation drives nodes without their goroutines.

// SimStart starts n on tr at now without goroutines; the test calls SimTick and
// SimHandle itself. Seeds must be IP literals.
func (n *Node) SimStart(now time.Time, tr Transport, seed uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tr = tr
	n.e.tr = tr
	n.e.rng = rand.New(rand.NewPCG(seed, uint64(n.cfg.ID)))
	seeds, _ := n.seeds.resolve(n.ctx, n.cfg.Resolver, n.cfg.Seeds)
	n.e.setSeeds(seeds)
	n.e.start(now)
	n.started = true
}

// SimTick runs the detector at now.
func (n *Node) SimTick(now time.Time) { n.e.tick(now) }

// SimHandle hands n one packet at now.
func (n *Node) SimHandle(now time.Time, b []byte, from netip.AddrPort) { n.e.handle(now, b, from) }

// SimLen returns how many live members n lists, itself included, without
// copying them (large simulations poll it).
func (n *Node) SimLen() int {
	n.e.mu.Lock()
	defer n.e.mu.Unlock()
	return len(n.e.order)
}

// SimLeave announces a leave at now and stops n.
func (n *Node) SimLeave(now time.Time) { n.e.leave(now) }

// TickPeriod is the period at which a Node ticks its engine.
var TickPeriod = tickPeriod

// EncodeHeartbeat returns a signed heartbeat, for tests that forge or replay.
func EncodeHeartbeat(label string, key []byte, id nodeid.ID, inc, seq uint64, name string) []byte {
	k, err := newKeyring(label, [][]byte{key})
	if err != nil {
		panic(err)
	}
	p := packet{typ: msgHeartbeat, tag: k.tag, from: id, inc: inc, seq: seq,
		start: time.Now().UnixNano(), name: []byte(name)}
	b, err := appendPacket(nil, &p, nil)
	if err != nil {
		panic(err)
	}
	return k.sign(b)
}

// Forgery describes a packet that a holder of the cluster key forges in a test.
type Forgery struct {
	ID         nodeid.ID // claimed sender
	Inc, Seq   uint64
	Start      time.Time // heartbeat join time
	Name, Addr string
	Leaving    bool
	// Conflict, if set, makes a conflict report about Target instead of a
	// heartbeat.
	Conflict             bool
	Target               nodeid.ID
	TargetInc, TargetSeq uint64
}

// Encode returns f signed with key for the cluster label.
func (f Forgery) Encode(label string, key []byte) []byte {
	k, err := newKeyring(label, [][]byte{key})
	if err != nil {
		panic(err)
	}
	p := packet{typ: msgHeartbeat, tag: k.tag, from: f.ID, inc: f.Inc, seq: f.Seq,
		start: f.Start.UnixNano(), name: []byte(f.Name), addr: []byte(f.Addr)}
	if f.Leaving {
		p.flags = flagLeaving
	}
	if f.Conflict {
		p = packet{typ: msgConflict, tag: k.tag, from: f.ID, inc: f.Inc, seq: f.Seq,
			target: f.Target, targetInc: f.TargetInc, targetSeq: f.TargetSeq}
	}
	b, err := appendPacket(nil, &p, nil)
	if err != nil {
		panic(err)
	}
	return k.sign(b)
}

// SeedAddrs returns the seed addresses n heartbeats now.
func (n *Node) SeedAddrs() []netip.AddrPort {
	n.e.mu.Lock()
	defer n.e.mu.Unlock()
	return append([]netip.AddrPort(nil), n.e.seeds...)
}

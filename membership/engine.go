package membership

import (
	"bytes"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// engine is the failure detector and member table: a state machine driven by
// handle (a packet arrived) and tick (time passed). It starts no goroutine, which
// lets tests run many engines deterministically in one simulated timeline; Node
// wraps it with the goroutines and sockets of a real node.
type engine struct {
	forgedWarned atomic.Int64 // when warnForged last logged, Unix nanoseconds; 0: never
	cfg          Config
	clock        Clock
	tr           Transport
	keys         *keyring
	hub          *EventHub
	log          *slog.Logger
	stats        counters
	multicast    bool // heartbeats are broadcast
	unicast      bool // heartbeats go to seeds and learned members too

	probeEvery   time.Duration // period of probe rounds for a suspect
	minSuspicion time.Duration // a suspicion lasts at least this long before failing
	peersEvery   time.Duration // period of peers messages in unicast mode
	learnedTTL   time.Duration // a learned address is dropped when not mentioned this long
	tickEvery    time.Duration // the period at which tick is expected to run
	confirmAfter time.Duration // a new life from another address waits for the current one to be this silent
	stallAfter   time.Duration // a longer gap between ticks is a local stall

	mu          sync.Mutex
	rng         *rand.Rand
	running     bool
	self        *peer
	nameB       []byte
	addrB       []byte
	seq         uint64
	members     map[nodeid.ID]*peer // live members but self
	order       []*peer             // live members, self included, oldest first
	tombs       map[nodeid.ID]*tomb
	leader      nodeid.ID
	nextBeat    time.Time
	nextPeers   time.Time
	lastTick    time.Time
	peersCursor int
	lastWarn    time.Time // of the last impersonation or implausibility warning
	lastPushed  time.Time // when the last heartbeat out of turn was sent (see beatOutOfTurn)
	seeds       []netip.AddrPort
	learned     map[netip.AddrPort]learnedAddr
	heardOthers bool        // some other member joined in this life (see deaf)
	fresh       []peerEntry // members joined since the last tick, to announce (see announceFresh)
	buf         []byte
}

// peer is the state of one live member.
type peer struct {
	m            Member
	lastHeard    time.Time // freshest evidence of life, from anyone
	suspectedAt  time.Time
	nonce        uint64 // of the current suspicion's probes
	nextProbe    time.Time
	win          replayWindow
	firstJoin    time.Time // earliest join time known for the ID: no later life may claim less
	lastConflict time.Time // last conflict report about this member, for rate limiting
}

// tomb remembers a failed or departed member's last life so that its old packets
// are refused as replays.
type tomb struct {
	inc          uint64
	win          replayWindow
	expires      time.Time
	firstJoin    time.Time
	lastConflict time.Time
}

type learnedAddr struct {
	id      nodeid.ID
	expires time.Time
}

func newEngine(cfg Config, tr Transport, keys *keyring, hub *EventHub, seed uint64) *engine {
	e := &engine{
		cfg:       cfg,
		clock:     cfg.Clock,
		tr:        tr,
		keys:      keys,
		hub:       hub,
		log:       cfg.Logger,
		multicast: !cfg.DisableMulticast,
		unicast:   len(cfg.Seeds) > 0,
		members:   make(map[nodeid.ID]*peer),
		tombs:     make(map[nodeid.ID]*tomb),
		learned:   make(map[netip.AddrPort]learnedAddr),
		rng:       rand.New(rand.NewPCG(seed, uint64(cfg.ID))),
		nameB:     []byte(cfg.Name),
		addrB:     []byte(cfg.Addr),
		buf:       make([]byte, 0, MaxPacketSize),
	}
	e.probeEvery = cfg.Interval / 2
	e.minSuspicion = min(2*cfg.Interval, cfg.FailAfter-cfg.SuspectAfter)
	e.peersEvery = 5 * cfg.Interval
	e.learnedTTL = max(50*cfg.Interval, 3*e.peersEvery)
	e.tickEvery = tickPeriod(cfg.Interval)
	e.stallAfter = 4 * e.tickEvery
	e.confirmAfter = 2 * cfg.Interval
	return e
}

// start makes the engine live at now: the local member exists, leads alone, and
// the first heartbeat goes out at the first tick.
func (e *engine) start(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	join := time.Unix(0, now.UnixNano())
	inc := e.cfg.Incarnation
	if inc == 0 {
		inc = uint64(max(now.UnixNano(), 1))
	}
	e.self = &peer{m: Member{
		ID: e.cfg.ID, Name: e.cfg.Name, Addr: e.cfg.Addr, JoinTime: join,
		Incarnation: inc, Meta: e.cfg.Meta, State: StateAlive, Local: true,
		PacketAddr: e.tr.LocalAddr(),
	}}
	e.running = true
	e.nextBeat = now
	e.nextPeers = now
	e.rebuildOrder()
	e.checkLeader(now)
}

// --- queries ---------------------------------------------------------------

func (e *engine) memberList() []Member {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Member, len(e.order))
	for i, p := range e.order {
		out[i] = p.m.clone()
	}
	return out
}

func (e *engine) leaderMember() (Member, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.order) == 0 {
		return Member{}, false
	}
	return e.order[0].m.clone(), true
}

func (e *engine) local() Member {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.self == nil {
		return Member{ID: e.cfg.ID, Name: e.cfg.Name, Addr: e.cfg.Addr, Meta: e.cfg.Meta, Local: true}
	}
	return e.self.m.clone()
}

// --- receiving -------------------------------------------------------------

// forgedWarnEvery is how often at most a node warns that it drops packets
// failing authentication.
const forgedWarnEvery = time.Minute

// warnForged logs, at most once every forgedWarnEvery, that packets failing
// authentication are being dropped: most often a member started with
// another cluster key, which otherwise forms a cluster of its own in
// silence. Each packet is still counted in Stats.Forged.
func (e *engine) warnForged(now time.Time, from netip.AddrPort) {
	last := e.forgedWarned.Load()
	if last != 0 && now.UnixNano()-last < int64(forgedWarnEvery) {
		return
	}
	if !e.forgedWarned.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	e.log.Warn("membership: dropping packets that fail authentication (a member with another cluster key, or a forger); logged at most once a minute",
		"from", from, "forged", e.stats.forged.Load())
}

// handle processes one received packet. It never panics on any input.
func (e *engine) handle(now time.Time, b []byte, from netip.AddrPort) {
	e.stats.packetsReceived.Add(1)
	e.stats.bytesReceived.Add(uint64(len(b)))
	var p packet
	if err := decodePacket(b, &p); err != nil {
		e.stats.malformed.Add(1)
		return
	}
	if p.tag != e.keys.tag {
		e.stats.foreign.Add(1)
		return
	}
	if !e.keys.verify(b) {
		e.stats.forged.Add(1)
		e.log.Debug("membership: forged packet dropped", "from", from, "type", p.typ)
		e.warnForged(now, from)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.running || p.from == nodeid.None {
		e.stats.ignored.Add(1)
		return
	}
	if p.from == e.self.m.ID {
		// Our own multicast echo, or someone else using our ID.
		e.stats.ignored.Add(1)
		if p.inc > e.self.m.Incarnation || (p.inc == e.self.m.Incarnation && p.seq > e.seq) {
			e.refute(now, p.inc, from, "a packet bearing the local ID")
		}
		return
	}
	if p.inc > incCeiling(now, e.cfg.MaxClockSkew) {
		e.implausible(&p, from, "incarnation ahead of the local clock")
		return
	}

	// Replay check and classification of the sender. A packet refused because a
	// newer life of its sender is known is answered with a conflict report: if it
	// comes from the real member, someone else claimed its ID (or it restarted
	// with a lower incarnation), and it will refute by outbidding that life.
	pe := e.members[p.from]
	tb := e.tombs[p.from]
	newLife := false
	switch {
	case pe != nil && p.inc < pe.m.Incarnation:
		e.stats.replayed.Add(1)
		e.reportConflict(now, pe.m.ID, pe.m.Incarnation, pe.win.top, from, &pe.lastConflict)
		return
	case tb != nil && p.inc < tb.inc:
		e.stats.replayed.Add(1)
		e.reportConflict(now, p.from, tb.inc, tb.win.top, from, &tb.lastConflict)
		return
	case pe != nil && p.inc == pe.m.Incarnation:
		if !pe.win.accept(p.seq) {
			e.stats.replayed.Add(1)
			if pe.win.behind(p.seq) {
				e.reportConflict(now, pe.m.ID, pe.m.Incarnation, pe.win.top, from, &pe.lastConflict)
			}
			return
		}
		if !e.unheard(&p) {
			e.refresh(pe, now, from)
		}
	case tb != nil && p.inc == tb.inc:
		if !tb.win.accept(p.seq) {
			e.stats.replayed.Add(1)
			if tb.win.behind(p.seq) {
				e.reportConflict(now, p.from, tb.inc, tb.win.top, from, &tb.lastConflict)
			}
			return
		}
	default:
		newLife = pe != nil || tb != nil
	}

	switch p.typ {
	case msgHeartbeat:
		e.onHeartbeat(now, &p, from, pe, tb, newLife)
	case msgProbe:
		e.onProbe(now, &p, from)
	case msgAck:
		e.onAck(now, &p)
	case msgPeers:
		e.onPeers(now, &p, from)
	case msgConflict:
		e.onConflict(now, &p, from)
	}
}

// refresh records direct evidence that pe lives: one of its own packets arrived.
// Its packet address stays the one its life was first heard from: a member
// sends everything of a life from one socket, and a packet from elsewhere
// (signed by another holder of the key) must not redirect probes and
// heartbeats.
func (e *engine) refresh(pe *peer, now time.Time, from netip.AddrPort) {
	pe.lastHeard = now
	if pe.m.State == StateSuspected {
		pe.m.State = StateAlive
		e.stats.refutations.Add(1)
		e.publish(Updated, pe.m, now)
	}
}

// deaf reports whether this node hears no other member although it heard
// some in this life: it declared every one of them failed. Its heartbeats then
// say so (flagDeaf). A node whose packets still reach the others but that
// receives nothing (a one-way cut, a broken receive path, a firewall that
// drops what comes in) would otherwise stay a live member for the others,
// and a member of their topologies that no connection can reach.
func (e *engine) deaf() bool { return e.heardOthers && len(e.members) == 0 }

// unheard reports whether p is the heartbeat of a member that hears no
// member (flagDeaf) while this node hears another one: the sender cannot
// hear this node either, so the heartbeat is no evidence that it is a member
// one can talk to. A node that hears no one but the sender takes it as
// evidence all the same: two members that lost each other (a healed
// partition, a member whose peers restarted) must be able to meet again, and
// two members alone do not exclude each other.
func (e *engine) unheard(p *packet) bool {
	if p.typ != msgHeartbeat || p.flags&flagDeaf == 0 || p.flags&flagLeaving != 0 {
		return false
	}
	for id := range e.members {
		if id != p.from {
			return true
		}
	}
	return false
}

func (e *engine) onHeartbeat(now time.Time, p *packet, from netip.AddrPort, pe *peer, tb *tomb, newLife bool) {
	leaving := p.flags&flagLeaving != 0
	if why := e.checkJoinTime(now, p, pe, tb, newLife); why != "" {
		e.implausible(p, from, why)
		return
	}
	if e.unheard(p) {
		// Not evidence of life (see unheard): a live sender is suspected
		// and declared failed as if silent, an unknown or failed one is
		// not joined. But it is heartbeated, so that once it hears again it
		// joins the others, says so in its next heartbeat, and is joined in
		// turn.
		e.stats.ignored.Add(1)
		e.learn(from, p.from, now)
		return
	}
	if pe != nil && from != pe.m.PacketAddr && (leaving || newLife) && now.Sub(pe.lastHeard) < e.confirmAfter {
		// A leave, a restart or a refutation that comes from another address
		// while the member's current life is still heard: a restart on a new
		// port is accepted once the current life has fallen silent; an
		// impostor never is. The current life is told, and refutes.
		e.stats.ignored.Add(1)
		e.log.Debug("membership: a new life from another address while the current one is heard",
			"member", pe.m.Name, "id", pe.m.ID, "from", from, "incarnation", p.inc, "leaving", leaving)
		e.reportConflict(now, pe.m.ID, max(p.inc, pe.m.Incarnation), max(p.seq, pe.win.top), pe.m.PacketAddr, &pe.lastConflict)
		return
	}
	switch {
	case pe != nil && !newLife: // the current life of a live member
		if leaving {
			e.remove(pe, StateLeft, now)
			return
		}
		e.update(pe, p, now)
	case pe != nil && !leaving && sameLife(pe, p):
		// A higher incarnation that changes nothing else: the member refuted a
		// claim of its ID (a restart has a new join time). Not a failure.
		old := pe.m.PacketAddr
		pe.m.Incarnation, pe.win = p.inc, replayWindow{}
		pe.win.accept(p.seq)
		pe.lastHeard = now
		pe.m.PacketAddr = from
		if pe.m.State == StateSuspected {
			e.stats.refutations.Add(1)
		}
		pe.m.State = StateAlive
		pe.m.Meta = bytes.Clone(p.meta)
		if pe.m.Meta == nil {
			pe.m.Meta = []byte{}
		}
		e.publish(Updated, pe.m, now)
		e.reportReplaced(now, p, old, from)
	case pe != nil: // a live member restarted: its previous life is over
		old := pe.m.PacketAddr
		e.remove(pe, StateFailed, now)
		if !leaving {
			e.join(p, from, now)
		}
		e.reportReplaced(now, p, old, from)
	case leaving: // tombstoned or unknown, and leaving: remember, no event
		if tb == nil {
			tb = e.bury(p.from, now)
			tb.firstJoin = time.Unix(0, p.start)
		}
		if tb.inc != p.inc {
			tb.inc, tb.win = p.inc, replayWindow{}
			tb.win.accept(p.seq)
		}
	default: // unknown, or back from the dead (a healed partition, a new life)
		e.join(p, from, now)
	}
}

func (e *engine) join(p *packet, from netip.AddrPort, now time.Time) {
	if len(e.members) >= e.cfg.MaxMembers {
		e.stats.ignored.Add(1)
		return
	}
	pe := &peer{
		m: Member{
			ID: p.from, Name: string(p.name), Addr: string(p.addr),
			JoinTime: time.Unix(0, p.start), Incarnation: p.inc,
			Meta: bytes.Clone(p.meta), State: StateAlive, PacketAddr: from,
		},
		lastHeard: now,
	}
	if pe.m.Meta == nil {
		pe.m.Meta = []byte{}
	}
	pe.firstJoin = pe.m.JoinTime
	if tb := e.tombs[p.from]; tb != nil && !tb.firstJoin.IsZero() && tb.firstJoin.Before(pe.firstJoin) {
		pe.firstJoin = tb.firstJoin
	}
	pe.win.accept(p.seq)
	delete(e.tombs, p.from)
	e.members[p.from] = pe
	e.heardOthers = true
	_, announced := e.learned[from]
	delete(e.learned, from)
	e.rebuildOrder()
	e.log.Info("membership: member joined", "member", pe.m.Name, "id", pe.m.ID, "incarnation", pe.m.Incarnation)
	e.publish(Joined, pe.m, now)
	e.checkLeader(now)
	if e.unicast {
		// Met without waiting for the heartbeats' schedule: the new member
		// hears this node at once. A member that came of its own accord
		// (this node is its seed), not announced by another, is announced
		// to the others at the next tick (see announceFresh), who greet it
		// in turn (see onPeers): a member that knows only a seed meets the
		// others in a few network delays rather than a peers period (a
		// second). A member announced by another was greeted when this node
		// heard of it (onPeers): its heartbeat is usually the answer. A
		// member met at one of this node's seeds is greeted but not
		// announced: it is usually the seed answering this node, a newcomer
		// that the seed announces itself, and members that share the seed
		// heartbeat it anyway.
		if !announced {
			e.greet(from)
			if len(e.fresh) < e.cfg.MaxMembers && !slices.Contains(e.seeds, from) {
				e.fresh = append(e.fresh, peerEntry{id: pe.m.ID, addr: from})
			}
		}
	}
}

// greet sends a heartbeat to ap at once, outside the heartbeats' schedule:
// to a member just met, or just heard of. It is met at most once a life, and
// heard of at most once a learnedTTL, so greetings stay few.
func (e *engine) greet(ap netip.AddrPort) {
	if b, ok := e.heartbeat(e.liveFlags()); ok {
		e.write(b, ap)
	}
}

// sameLife reports whether heartbeat p names pe's name, address and join time.
func sameLife(pe *peer, p *packet) bool {
	return p.start == pe.m.JoinTime.UnixNano() && string(p.name) == pe.m.Name && string(p.addr) == pe.m.Addr
}

// update applies a heartbeat's metadata to a live member, publishing Updated if
// it changed. Name, address and join time are fixed for a life (checkJoinTime
// refuses a heartbeat that changes them).
func (e *engine) update(pe *peer, p *packet, now time.Time) {
	if bytes.Equal(p.meta, pe.m.Meta) {
		return
	}
	pe.m.Meta = bytes.Clone(p.meta)
	if pe.m.Meta == nil {
		pe.m.Meta = []byte{}
	}
	e.publish(Updated, pe.m, now)
}

// remove ends a live member's current life with state (StateFailed or StateLeft).
func (e *engine) remove(pe *peer, state State, now time.Time) {
	delete(e.members, pe.m.ID)
	tb := e.bury(pe.m.ID, now)
	tb.inc, tb.win, tb.firstJoin = pe.m.Incarnation, pe.win, pe.firstJoin
	pe.m.State = state
	e.rebuildOrder()
	kind := Failed
	if state == StateLeft {
		kind = Left
	} else {
		e.stats.failures.Add(1)
	}
	e.log.Info("membership: member "+state.String(), "member", pe.m.Name, "id", pe.m.ID,
		"silent", now.Sub(pe.lastHeard).Round(time.Millisecond))
	e.publish(kind, pe.m, now)
	e.checkLeader(now)
}

// bury returns the tomb of id, creating it; the number of tombs is capped by
// evicting the one closest to expiry.
func (e *engine) bury(id nodeid.ID, now time.Time) *tomb {
	tb := e.tombs[id]
	if tb == nil {
		if len(e.tombs) >= e.cfg.MaxMembers {
			var victim nodeid.ID
			var soonest time.Time
			for vid, v := range e.tombs {
				if victim == nodeid.None || v.expires.Before(soonest) || (v.expires.Equal(soonest) && vid < victim) {
					victim, soonest = vid, v.expires
				}
			}
			delete(e.tombs, victim)
		}
		tb = &tomb{}
		e.tombs[id] = tb
	}
	tb.expires = now.Add(e.cfg.TombstoneTTL)
	return tb
}

func (e *engine) onProbe(now time.Time, p *packet, from netip.AddrPort) {
	if p.target == e.self.m.ID {
		e.send(&packet{typ: msgAck, target: p.target, targetInc: e.self.m.Incarnation, nonce: p.nonce}, from)
		return
	}
	pe := e.members[p.target]
	if pe == nil {
		e.stats.ignored.Add(1)
		return
	}
	e.send(&packet{typ: msgAck, target: p.target, targetInc: pe.m.Incarnation, nonce: p.nonce,
		ageMs: ageMillis(now.Sub(pe.lastHeard))}, from)
}

// ageMillis rounds d up to whole milliseconds, so that evidence is never taken
// for fresher than it is.
func ageMillis(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(ms)
}

func (e *engine) onAck(now time.Time, p *packet) {
	if p.from == p.target {
		return // a direct answer: refresh has already cleared any suspicion
	}
	pe := e.members[p.target]
	if pe == nil || pe.m.State != StateSuspected || p.nonce != pe.nonce || p.targetInc != pe.m.Incarnation {
		e.stats.ignored.Add(1)
		return
	}
	// A witness heard the target ageMs ago: the target is not silent for that long.
	heard := now.Add(-time.Duration(p.ageMs) * time.Millisecond)
	if heard.After(pe.lastHeard) {
		pe.lastHeard = heard
	}
}

func (e *engine) onPeers(now time.Time, p *packet, from netip.AddrPort) {
	if !e.unicast {
		e.stats.ignored.Add(1)
		return
	}
	local := e.tr.LocalAddr()
	fromSeed := slices.Contains(e.seeds, from)
	p.forEachPeer(func(id nodeid.ID, ap netip.AddrPort) {
		if id == e.self.m.ID || ap == local {
			return
		}
		if pe := e.members[id]; pe != nil && pe.m.PacketAddr == ap {
			if fromSeed && len(e.fresh) > 0 {
				// A member that this node's seed names is not one for
				// this node to announce: the seed knows it, and
				// announces it itself if it is new (as the members that
				// share the seed would be told). This cancels the
				// announcements that a race makes: a newcomer's greeting
				// that reaches a member before the seed's announcement
				// of the newcomer, a member's greeting that reaches the
				// newcomer before the seed's list (see tellNewcomers).
				e.fresh = slices.DeleteFunc(e.fresh, func(f peerEntry) bool { return f.id == id && f.addr == ap })
			}
			return
		}
		_, known := e.learned[ap]
		e.learn(ap, id, now)
		if _, learned := e.learned[ap]; learned && !known && e.members[id] == nil {
			e.greet(ap) // a member heard of for the first time: meet it now
		}
	})
}

// learn adds ap, where member id was heard of, to the unicast heartbeat
// targets for learnedTTL (a unicast node only; at most MaxMembers of them).
func (e *engine) learn(ap netip.AddrPort, id nodeid.ID, now time.Time) {
	if !e.unicast {
		return
	}
	if _, ok := e.learned[ap]; !ok && len(e.learned) >= e.cfg.MaxMembers {
		return
	}
	e.learned[ap] = learnedAddr{id: id, expires: now.Add(e.learnedTTL)}
}

// --- order, leader, events -----------------------------------------------------

func (e *engine) rebuildOrder() {
	e.order = e.order[:0]
	if e.self != nil && e.running {
		e.order = append(e.order, e.self)
	}
	for _, pe := range e.members {
		e.order = append(e.order, pe)
	}
	slices.SortFunc(e.order, func(a, b *peer) int { return compareMembers(a.m, b.m) })
}

func (e *engine) checkLeader(now time.Time) {
	var lead Member
	if len(e.order) > 0 {
		lead = e.order[0].m
	}
	if lead.ID == e.leader {
		return
	}
	prev := e.leader
	e.leader = lead.ID
	e.hub.Publish(Event{Kind: LeaderChanged, Member: lead.clone(), Previous: prev, Time: now})
}

// publish sends an event about m; subscribers share one copy of its metadata.
func (e *engine) publish(kind EventKind, m Member, now time.Time) {
	e.hub.Publish(Event{Kind: kind, Member: m.clone(), Time: now})
}

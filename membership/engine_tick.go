package membership

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// tickPeriod is how often a Node calls engine.tick: a quarter of the interval, so
// a deadline is noticed at most that late.
func tickPeriod(interval time.Duration) time.Duration { return max(interval/4, time.Millisecond) }

// tick advances the detector to now: heartbeats, suspicions, probe rounds,
// failures, peers messages and expiry of old state.
func (e *engine) tick(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.running {
		return
	}
	e.compensateStall(now)
	if !now.Before(e.nextBeat) {
		e.sendHeartbeat(e.liveFlags())
		e.nextBeat = e.nextBeat.Add(e.cfg.Interval)
		if !e.nextBeat.After(now) {
			e.nextBeat = now.Add(e.cfg.Interval)
		}
	}
	if e.unicast && !now.Before(e.nextPeers) {
		e.sendPeers()
		e.nextPeers = now.Add(e.peersEvery)
	}
	e.announceFresh()
	// e.order changes when a member fails: walk a copy.
	for _, pe := range slices.Clone(e.order) {
		if pe == e.self {
			continue
		}
		e.watch(pe, now)
	}
	for id, tb := range e.tombs {
		if now.After(tb.expires) {
			delete(e.tombs, id)
		}
	}
	for ap, l := range e.learned {
		if now.After(l.expires) {
			delete(e.learned, ap)
		}
	}
}

// compensateStall keeps a local stall from looking like everyone else's silence.
// When this node has not run for a while (CPU starvation, a long GC pause, a
// suspended VM), the packets that arrived meanwhile are still queued in the
// socket and the first tick after the stall would run before they are read. So
// the time the node was not running is not counted as the members' silence: their
// evidence and suspicion times move forward by the length of the stall. Detection
// of a member that really died during the stall is delayed by as much.
func (e *engine) compensateStall(now time.Time) {
	last := e.lastTick
	e.lastTick = now
	if last.IsZero() {
		return
	}
	gap := now.Sub(last)
	if gap <= e.stallAfter {
		return
	}
	lost := gap - e.tickEvery
	e.stats.stalls.Add(1)
	e.log.Warn("membership: local stall, not counted as silence of the members", "stall", gap.Round(time.Millisecond))
	for _, pe := range e.members {
		pe.lastHeard = minTime(pe.lastHeard.Add(lost), now)
		if pe.m.State == StateSuspected {
			pe.suspectedAt = minTime(pe.suspectedAt.Add(lost), now)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// watch moves one member through Alive → Suspected → Failed. A member silent for
// SuspectAfter is suspected and probed every probeEvery, directly and through
// ProbeFanout other members (who answer with the age of their own freshest
// evidence). It fails when nobody has had evidence of it for FailAfter and the
// suspicion has lasted minSuspicion, so that a local stall (GC, CPU starvation)
// that makes everyone look silent at once leads to probing, not to mass failure.
func (e *engine) watch(pe *peer, now time.Time) {
	silent := now.Sub(pe.lastHeard)
	switch pe.m.State {
	case StateAlive:
		if silent < e.cfg.SuspectAfter {
			return
		}
		pe.m.State = StateSuspected
		pe.suspectedAt = now
		pe.nonce = e.rng.Uint64()
		pe.nextProbe = now
		e.stats.suspicions.Add(1)
		e.log.Debug("membership: member suspected", "member", pe.m.Name, "id", pe.m.ID, "silent", silent)
		e.publish(Suspected, pe.m, now)
	case StateSuspected:
		if silent >= e.cfg.FailAfter && now.Sub(pe.suspectedAt) >= e.minSuspicion {
			e.remove(pe, StateFailed, now)
			return
		}
	default:
		return
	}
	if now.Before(pe.nextProbe) {
		return
	}
	pe.nextProbe = now.Add(e.probeEvery)
	probe := packet{typ: msgProbe, target: pe.m.ID, nonce: pe.nonce}
	if pe.m.PacketAddr.IsValid() {
		e.send(&probe, pe.m.PacketAddr)
	}
	for _, w := range e.witnesses(pe) {
		e.send(&probe, w)
	}
}

// witnesses picks up to ProbeFanout other live members to ask about pe, alive
// ones first, at random among equals.
func (e *engine) witnesses(pe *peer) []netip.AddrPort {
	if e.cfg.ProbeFanout == 0 {
		return nil
	}
	var alive, suspected []netip.AddrPort
	for _, o := range e.order {
		if o == pe || o == e.self || !o.m.PacketAddr.IsValid() {
			continue
		}
		if o.m.State == StateAlive {
			alive = append(alive, o.m.PacketAddr)
		} else {
			suspected = append(suspected, o.m.PacketAddr)
		}
	}
	e.rng.Shuffle(len(alive), func(i, j int) { alive[i], alive[j] = alive[j], alive[i] })
	e.rng.Shuffle(len(suspected), func(i, j int) { suspected[i], suspected[j] = suspected[j], suspected[i] })
	all := append(alive, suspected...)
	return all[:min(len(all), e.cfg.ProbeFanout)]
}

// --- sending -------------------------------------------------------------------

func (e *engine) nextSeq() uint64 {
	e.seq++
	return e.seq
}

// encode builds and signs p from the local node into e.buf.
func (e *engine) encode(p *packet, peers []peerEntry) ([]byte, bool) {
	p.tag = e.keys.tag
	p.from = e.self.m.ID
	p.inc = e.self.m.Incarnation
	p.seq = e.nextSeq()
	b, err := appendPacket(e.buf[:0], p, peers)
	if err != nil {
		e.log.Error("membership: encoding packet", "type", p.typ, "err", err)
		return nil, false
	}
	b = e.keys.sign(b)
	e.buf = b[:0]
	return b, true
}

func (e *engine) send(p *packet, to netip.AddrPort) {
	b, ok := e.encode(p, nil)
	if ok {
		e.write(b, to)
	}
}

func (e *engine) write(b []byte, to netip.AddrPort) {
	if err := e.tr.WriteTo(b, to); err != nil {
		e.stats.sendErrors.Add(1)
		e.log.Debug("membership: send failed", "to", to, "err", err)
		return
	}
	e.stats.packetsSent.Add(1)
	e.stats.bytesSent.Add(uint64(len(b)))
}

func (e *engine) broadcast(b []byte) {
	if err := e.tr.Broadcast(b); err != nil {
		e.stats.sendErrors.Add(1)
		e.log.Debug("membership: multicast send failed", "err", err)
		return
	}
	e.stats.packetsSent.Add(1)
	e.stats.bytesSent.Add(uint64(len(b)))
}

// liveFlags returns the flags of a heartbeat that is not a leave: flagDeaf
// while this node hears no member (see deaf), none otherwise.
func (e *engine) liveFlags() uint8 {
	if e.deaf() {
		return flagDeaf
	}
	return 0
}

// heartbeat builds and signs a heartbeat of the local member with flags, the
// one encoding of every heartbeat this node sends (on schedule, out of turn,
// as a greeting or a leave). Like encode, it returns e.buf's bytes, valid
// until the next encoding.
func (e *engine) heartbeat(flags uint8) ([]byte, bool) {
	s := &e.self.m
	return e.encode(&packet{typ: msgHeartbeat, flags: flags, start: s.JoinTime.UnixNano(),
		name: e.nameB, addr: e.addrB, meta: s.Meta}, nil)
}

// sendHeartbeat sends one heartbeat by multicast and to every unicast target.
func (e *engine) sendHeartbeat(flags uint8) {
	b, ok := e.heartbeat(flags)
	if !ok {
		return
	}
	if e.multicast {
		e.broadcast(b)
	}
	if e.unicast {
		for _, t := range e.targets() {
			e.write(b, t)
		}
	}
}

// targets returns the unicast heartbeat targets: seeds, live members and learned
// addresses, without duplicates or the local address, in a stable order.
func (e *engine) targets() []netip.AddrPort {
	local := e.tr.LocalAddr()
	out := make([]netip.AddrPort, 0, len(e.seeds)+len(e.order)+len(e.learned))
	out = append(out, e.seeds...)
	for _, pe := range e.order {
		if pe != e.self && pe.m.PacketAddr.IsValid() {
			out = append(out, pe.m.PacketAddr)
		}
	}
	for ap := range e.learned {
		out = append(out, ap)
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	out = slices.Compact(out)
	return slices.DeleteFunc(out, func(a netip.AddrPort) bool { return a == local })
}

// Peers gossip: every peersEvery a node sends peersChunk entries of its member
// list, taken in turn, to peersFanout random unicast targets. Each address reaches
// everyone in a few periods (epidemic spread), at a cost per node that does not
// grow with the cluster: at most peersFanout × (49 + 27 × peersChunk) bytes a
// period.
const (
	peersChunk  = 16
	peersFanout = 3
)

// sendPeers tells a few unicast targets about some of the members this node
// hears, so that members learned through a seed end up heartbeating each other.
func (e *engine) sendPeers() {
	entries := e.memberEntries()
	if len(entries) == 0 {
		return
	}
	chunk := make([]peerEntry, 0, peersChunk)
	for i := 0; i < min(peersChunk, len(entries)); i++ {
		chunk = append(chunk, entries[(e.peersCursor+i)%len(entries)])
	}
	e.peersCursor = (e.peersCursor + len(chunk)) % len(entries)
	targets := e.targets()
	e.rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	b, ok := e.encode(&packet{typ: msgPeers}, chunk)
	if !ok {
		return
	}
	for _, t := range targets[:min(len(targets), peersFanout)] {
		e.write(b, t)
	}
}

// memberEntries returns the peers entries of the members this node hears,
// oldest first.
func (e *engine) memberEntries() []peerEntry {
	var entries []peerEntry
	for _, pe := range e.order {
		if pe != e.self && pe.m.PacketAddr.IsValid() {
			entries = append(entries, peerEntry{id: pe.m.ID, addr: pe.m.PacketAddr})
		}
	}
	return entries
}

// announceFresh tells the unicast targets of the members that joined this
// node of their own accord since the last tick (see engine.join): each
// target greets them (see onPeers), so that they meet in a few network
// delays instead of at the next peers message. The first peersChunk of
// them go to every target (usually a single newcomer, joining its seed),
// any others to peersFanout targets at random, as the peers messages do:
// a burst (a healed partition) costs at most one message per target and
// tick more than the heartbeats.
//
// Up to peersChunk newcomers (usually one) are told in turn every member
// this node hears, each other included (see tellNewcomers), so that the
// members who greet them are members they heard of, not members to announce
// again. A larger burst is not told: its newcomers are targets of the
// announcement like the others, and each announces the members that greet
// it, which makes the newcomers that were announced to a few targets only
// meet the others.
func (e *engine) announceFresh() {
	if len(e.fresh) == 0 {
		return
	}
	fresh := e.fresh
	e.fresh = nil
	targets := e.targets()
	if len(fresh) <= peersChunk {
		if !e.tellNewcomers(fresh) {
			return
		}
		targets = slices.DeleteFunc(targets, func(t netip.AddrPort) bool {
			return slices.ContainsFunc(fresh, func(nc peerEntry) bool { return nc.addr == t })
		})
	}
	// Newcomers not told are targets too: each learns of the others (and
	// ignores its own entry).
	for chunk := range slices.Chunk(fresh, peersChunk) {
		b, ok := e.encode(&packet{typ: msgPeers}, chunk)
		if !ok {
			return
		}
		for _, t := range targets {
			e.write(b, t)
		}
		if len(targets) > peersFanout {
			e.rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
			targets = targets[:peersFanout]
		}
	}
}

// tellNewcomers sends each of newcomers every member this node hears
// (newcomers included: each ignores its own entry), in peers messages of
// peersChunk entries: ⌈N/peersChunk⌉ messages each. A newcomer that joined
// this node, its seed, then knows the members this node announces it to
// (announceFresh) before they greet it, so it joins them as members heard of
// (see engine.join) instead of announcing them again to all its targets, which
// cost it a message per target and chunk of greeters (about 10 KB at 32
// members). It reports false if a message could not be encoded.
func (e *engine) tellNewcomers(newcomers []peerEntry) bool {
	if len(newcomers) == 0 {
		return true
	}
	for chunk := range slices.Chunk(e.memberEntries(), peersChunk) {
		b, ok := e.encode(&packet{typ: msgPeers}, chunk)
		if !ok {
			return false
		}
		for _, nc := range newcomers {
			e.write(b, nc.addr)
		}
	}
	return true
}

// leave announces a graceful departure (three times, against loss) and stops the
// engine: no more heartbeats, and incoming packets are ignored.
func (e *engine) leave(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.running {
		return
	}
	for range 3 {
		e.sendHeartbeat(flagLeaving)
	}
	e.stopLocked(now)
}

// stop makes the engine inert without announcing anything.
func (e *engine) stop(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopLocked(now)
}

func (e *engine) stopLocked(now time.Time) {
	if !e.running {
		return
	}
	e.running = false
	e.members = make(map[nodeid.ID]*peer)
	e.fresh = nil
	e.rebuildOrder()
	e.leader = nodeid.None
	e.log.Debug("membership: stopped", "at", now)
}

// setMeta changes the local metadata. A running node that changes it sends
// it at once (see beatOutOfTurn) rather than at its next heartbeat, up to an
// interval later: the others learn at once what the member serves, or the
// epoch it committed.
func (e *engine) setMeta(meta []byte, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if bytes.Equal(meta, e.cfg.Meta) {
		return
	}
	m := append([]byte{}, meta...)
	e.cfg.Meta = m
	if e.self != nil {
		e.self.m.Meta = m
	}
	if e.running {
		e.beatOutOfTurn(now, e.liveFlags())
	}
}

// beatOutOfTurn sends a heartbeat now, for news that should not wait for the
// next interval (a refutation, new metadata), but at most once a tick: a flood
// of news cannot make the node flood the cluster with heartbeats. Within a
// tick of the last one, the next tick sends it. The regular heartbeats go on
// an interval after it.
func (e *engine) beatOutOfTurn(now time.Time, flags uint8) {
	if e.lastPushed.IsZero() || now.Sub(e.lastPushed) >= e.tickEvery {
		e.lastPushed = now
		e.sendHeartbeat(flags)
		e.nextBeat = now.Add(e.cfg.Interval)
	} else {
		e.nextBeat = now // the next tick sends it
	}
}

// setSeeds replaces the resolved seed addresses, and reports whether they
// changed.
func (e *engine) setSeeds(seeds []netip.AddrPort) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	changed := !slices.Equal(e.seeds, seeds)
	e.seeds = seeds
	return changed
}

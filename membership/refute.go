package membership

import (
	"net/netip"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// Defences against a member that claims another member's ID (see "Trust" in the
// package documentation). Each node refuses what no honest member could send, and
// refutes at once any life of its own ID that it does not have.

// warnEvery rate-limits the warnings about impersonation and implausible packets;
// the others go to the debug log.
const warnEvery = time.Second

// incCeiling is the highest incarnation accepted at now: the time in Unix
// nanoseconds plus skew. The default incarnation (a node's start time) is below it
// on every host whose clock is within skew; a forged 2^64−1 is far above it, so
// the real member can always outbid a forgery, and the bidding can never run out
// of numbers: it is bounded by a clock that advances a billion a second.
func incCeiling(now time.Time, skew time.Duration) uint64 {
	return uint64(max(now.UnixNano(), 0)) + uint64(max(skew, 0))
}

// checkJoinTime returns why heartbeat p cannot be from an honest member, or "".
// pe and tb are what is known of its sender; newLife says p starts a new life of
// a known ID.
func (e *engine) checkJoinTime(now time.Time, p *packet, pe *peer, tb *tomb, newLife bool) string {
	start := time.Unix(0, p.start)
	if p.start <= 0 {
		return "join time not after 1970"
	}
	if start.After(now.Add(e.cfg.MaxClockSkew)) {
		return "join time ahead of the local clock"
	}
	if pe != nil && !newLife {
		// A node never changes these during a life: only its metadata.
		if !start.Equal(pe.m.JoinTime) || string(p.name) != pe.m.Name || string(p.addr) != pe.m.Addr {
			return "name, address or join time changed within a life"
		}
		return ""
	}
	first := time.Time{}
	if pe != nil {
		first = pe.firstJoin
	}
	if tb != nil && !tb.firstJoin.IsZero() && (first.IsZero() || tb.firstJoin.Before(first)) {
		first = tb.firstJoin
	}
	if !first.IsZero() && start.Before(first) {
		// A restart starts later than the first life seen; a refutation keeps the
		// join time. Only an impostor claims to be older than that.
		return "join time before the member's first known join time"
	}
	return ""
}

// implausible counts and reports a packet refused by checkJoinTime or the
// incarnation ceiling.
func (e *engine) implausible(p *packet, from netip.AddrPort, why string) {
	e.stats.implausible.Add(1)
	e.warn("membership: implausible packet refused", "why", why, "from", from, "id", p.from,
		"incarnation", p.inc, "type", p.typ)
}

// reportConflict tells to (the source of a refused packet of member id, or the
// last address of a life just replaced) that this node knows life inc of id up
// to sequence number seq. At most one report per member per interval: last holds
// the time of the previous one.
func (e *engine) reportConflict(now time.Time, id nodeid.ID, inc, seq uint64, to netip.AddrPort, last *time.Time) {
	if !to.IsValid() || (!last.IsZero() && now.Sub(*last) < e.cfg.Interval) {
		return
	}
	*last = now
	e.stats.conflicts.Add(1)
	e.send(&packet{typ: msgConflict, target: id, targetInc: inc, targetSeq: seq}, to)
}

// reportReplaced tells the address of a member's life that heartbeat p just
// replaced, if it came from elsewhere: if that life still runs there, p is an
// impostor's, and the real member refutes it at once.
func (e *engine) reportReplaced(now time.Time, p *packet, old, from netip.AddrPort) {
	if old.IsValid() && old != from {
		var never time.Time // not rate-limited: one report per authentic new life
		e.reportConflict(now, p.from, p.inc, p.seq, old, &never)
	}
}

// onConflict handles a report that its sender knows a life of this node's ID that
// is newer than this node's: someone claimed the ID, or this node restarted with
// a lower incarnation than its previous life had reached.
func (e *engine) onConflict(now time.Time, p *packet, from netip.AddrPort) {
	s := &e.self.m
	if p.target != s.ID || p.targetInc < s.Incarnation || (p.targetInc == s.Incarnation && p.targetSeq <= e.seq) {
		e.stats.ignored.Add(1) // about someone else, or a life this node has
		return
	}
	e.refute(now, p.targetInc, from, "reported by a member")
}

// refute raises the local incarnation above claimed, a life of the local ID this
// node does not have, as SWIM does, and heartbeats at once (at most once a
// tick; otherwise at the next tick). That heartbeat starts a new life that every observer prefers to the impostor's, with this node's
// address and its unchanged join time (so its place in the leader order). A claim
// at or above the incarnation ceiling is not outbid: observers refuse it too, and
// outbidding it would make this node's own heartbeats implausible.
func (e *engine) refute(now time.Time, claimed uint64, from netip.AddrPort, how string) {
	s := &e.self.m
	if claimed >= incCeiling(now, e.cfg.MaxClockSkew) {
		e.warn("membership: implausible claim of the local ID not outbid", "how", how, "from", from,
			"claimed", claimed, "incarnation", s.Incarnation)
		return
	}
	s.Incarnation = max(claimed, s.Incarnation) + 1
	e.stats.impersonations.Add(1)
	e.beatOutOfTurn(now, e.liveFlags()) // still deaf, if it hears no member but the claim
	e.warn("membership: another member claims the local ID; refuting with a higher incarnation",
		"how", how, "from", from, "claimed", claimed, "incarnation", s.Incarnation)
}

// warn logs at most one warning per warnEvery (by the engine's clock), the rest at
// debug level: a hostile member cannot flood the log.
func (e *engine) warn(msg string, args ...any) {
	now := e.clock.Now()
	if e.lastWarn.IsZero() || now.Sub(e.lastWarn) >= warnEvery {
		e.lastWarn = now
		e.log.Warn(msg, args...)
		return
	}
	e.log.Debug(msg, args...)
}

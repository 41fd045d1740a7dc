package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// ErrStaleEpoch is returned to a leader whose proposal is not newer than
// what a member has committed or prepared, or is based on a topology older
// than the member's and would not be allowed to replace it.
var ErrStaleEpoch = errors.New("cluster: stale topology epoch")

// A StaleEpochError is a member's refusal of a proposal: it says what the
// member holds, so that the leader's next proposal goes past it.
// errors.Is(err, ErrStaleEpoch) holds for it, also on the leader that
// receives it.
type StaleEpochError struct {
	Member    string // the refusing member's name
	Proposed  uint64 // the proposal's epoch
	Committed uint64 // the epoch the member has committed
	Prepared  uint64 // the epoch the member has prepared (0: none)
	// PreparedBy is the leader of the prepared proposal, when it is that
	// proposal that binds the member (Reason is reasonBound).
	PreparedBy nodeid.ID
	Reason     string // why, in a few words
}

// Error implements error.
func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("%v: %s refuses epoch %d (committed %d, prepared %d): %s", ErrStaleEpoch, e.Member, e.Proposed, e.Committed, e.Prepared, e.Reason)
}

// Is reports whether target is ErrStaleEpoch.
func (e *StaleEpochError) Is(target error) bool { return target == ErrStaleEpoch }

// lagGrace is how long after a commit a leader waits before it takes a
// member that still advertises an older epoch for one that missed the
// commit (the built-in membership's heartbeats carry the new epoch within
// one interval). A backend whose metadata spreads more slowly says how long
// it takes (metaSpreader), and the leader waits that long: else it would
// cascade the same topology again and again while the members' new epochs
// are on their way (the memberlist backend did, up to eight times in a row).
const lagGrace = time.Second

// maxRetryWait bounds the wait between the cascades a leader retries for
// the same members (see retryBackoff).
const maxRetryWait = time.Second

// A retryBackoff spaces the cascades a leader retries for the same visible
// members after one failed: a member that cannot be reached but is not
// declared failed yet (killed, on a host that refuses its connections, while
// a gossip membership takes seconds to decide) fails every prepare at once,
// and the leader retried on every tick and every membership event, each time
// with a new epoch (the memberlist backend reached epoch 209 after one
// kill). Each retry waits twice as long as the last, from the cluster's
// Interval up to maxRetryWait; a change of the visible members, or a
// cascade that commits everywhere, ends the wait.
type retryBackoff struct {
	visible string        // the visible members when the last cascade failed
	wait    time.Duration // the wait after it
	until   time.Time     // no retry for the same members before
}

// failed records a failed cascade for the members in visible.
func (b *retryBackoff) failed(visible string, now time.Time, first time.Duration) {
	if b.visible != visible || b.wait == 0 {
		b.visible, b.wait = visible, first
	} else {
		b.wait = min(2*b.wait, maxRetryWait)
	}
	b.until = now.Add(b.wait)
}

// holds reports whether a cascade for the members in visible must wait.
func (b *retryBackoff) holds(visible string, now time.Time) bool {
	return b.visible == visible && now.Before(b.until)
}

// A metaSpreader is a discovery backend whose members' metadata changes take
// longer than lagGrace to reach the others (gossip, as memberlist.Node).
type metaSpreader interface {
	MetaSpread() time.Duration
}

// lagGrace returns how long after a commit members may still advertise an
// older epoch without being taken for members that missed it.
func (c *Cluster) lagGrace() time.Duration {
	if s, ok := c.disc.(metaSpreader); ok {
		return max(lagGrace, s.MetaSpread())
	}
	return lagGrace
}

// round is a cascade in its prepare phase: a member of the proposal that
// becomes suspect, fails or leaves cancels it, and the leader plans again.
type round struct {
	members map[nodeid.ID]bool
	cancel  context.CancelCauseFunc
}

// advertised is what the live members advertise of their committed epochs,
// compared with the leader's committed topology.
type advertised struct {
	ahead   uint64   // the highest epoch above the leader's, 0 if none
	lagging []string // members of the leader's topology that advertise an older epoch
}

func (c *Cluster) advertisedEpochs(live []membership.Member, committed topology.Topology, since time.Duration) advertised {
	var a advertised
	grace := c.lagGrace()
	for _, m := range live {
		if m.ID == c.self {
			continue
		}
		epoch, ok := MemberEpoch(m)
		if !ok {
			continue // not said yet
		}
		if epoch > committed.Epoch {
			a.ahead = max(a.ahead, epoch)
		} else if epoch < committed.Epoch && since >= grace && committed.Contains(m.ID) {
			a.lagging = append(a.lagging, m.Name)
		}
	}
	return a
}

// lead runs on the leader: if the live membership differs from the
// committed topology, members have committed epochs the leader has not, or
// members lag behind, and the policy allows it, cascade a new topology with
// an epoch above every one seen.
func (c *Cluster) lead(ctx context.Context) {
	live := c.disc.Members()
	members := make([]topology.Member, 0, len(live))
	visible := make([]nodeid.ID, 0, len(live))
	for _, m := range live {
		members = append(members, topology.Member{ID: m.ID, Name: m.Name, Addr: m.Addr})
		visible = append(visible, m.ID)
	}
	if err := topology.CheckSize(c.cfg.Strategy, len(members)); err != nil {
		// A bus of 1,000 would take half a second to compute, on every
		// tick, and half a million connections: refuse, loudly, once.
		c.mu.Lock()
		if why := err.Error(); c.blocked != why {
			c.blocked = why
			c.log.Error("cluster: not pushing a topology; keeping the last one", "err", err)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	prev := c.committed
	// The base of the next topology is the last one this node committed,
	// in this life or, restored from its state, in an earlier one: a
	// restarted leader is held to the majority of that.
	base := c.last()
	since := time.Since(c.committedAt)
	again := c.incomplete
	seen := c.maxEpoch
	refused := c.refused
	all := memberIDs(base)
	last := c.counted(all) // the members that left gracefully do not count
	c.mu.Unlock()
	adv := c.advertisedEpochs(live, base, since)
	epoch := max(base.Epoch, seen, adv.ahead) + 1

	var basep *topology.Topology
	if base.Epoch > 0 {
		basep = &base
	}
	next := topology.Compute(c.cfg.Strategy, members, basep)
	next.Epoch = epoch
	same := prev.Epoch > 0 && slices.Equal(next.Members, prev.Members) && slices.Equal(next.Edges, prev.Edges)
	var why string
	switch {
	case adv.ahead > 0:
		// Members committed epochs this node did not (it was cut off
		// while the others moved on): its own last topology is stale, so
		// the policy is checked by the members that hold the newer ones
		// (see admit).
		why = fmt.Sprintf("members committed epoch %d, this node %d", adv.ahead, base.Epoch)
	case !same:
		why = "the membership changed"
	case again:
		why = "the last commit did not reach every member"
	case len(adv.lagging) > 0:
		why = fmt.Sprintf("members lag behind epoch %d: %v", prev.Epoch, adv.lagging)
	default:
		return // nothing changed
	}
	if refused != nil && refused.visible == fmt.Sprint(visible) && !refused.lifted(live) {
		return // refused by a member's policy check: wait for the membership to change
	}
	c.mu.Lock()
	hold := c.retry.holds(fmt.Sprint(visible), time.Now())
	c.mu.Unlock()
	if hold {
		return // the last cascade for these members failed: back off
	}
	if adv.ahead == 0 {
		if !topology.CanCommit(c.cfg.Policy, last, visible) {
			block := fmt.Sprintf("policy %s: %d of the %d members of epoch %d visible", c.cfg.Policy.Name(), len(visible), len(all), base.Epoch)
			if gone := len(all) - len(last); gone > 0 {
				block += fmt.Sprintf(" (%d of them left)", gone)
			}
			c.mu.Lock()
			if c.blocked != block {
				c.blocked = block
				c.log.Warn("cluster: not pushing a topology", "reason", block)
			}
			c.mu.Unlock()
			return
		}
	}
	p := proposal(c.self, next, base)
	c.log.Debug("cluster: cascading", "epoch", epoch, "why", why)
	start := time.Now()
	var err error
	defer func() { c.stats.record(time.Since(start), err != nil) }()
	c.mu.Lock()
	// The epoch is taken: the next cascade goes above it, whatever becomes
	// of this one, so that what this member advertises of the cascades it
	// led (ballots.Led) stays true.
	c.maxEpoch = max(c.maxEpoch, epoch)
	c.mu.Unlock()
	defer func() {
		// This cascade is over: committed, or withdrawn for good (this
		// member will not commit it, in this life or a later one). Members
		// that prepared it and did not see it committed learn so from the
		// advertisement (see release). Only if this member saved its own
		// promise of the epoch, which a later life starts above: else no
		// member prepared it, and a later life might propose the epoch
		// again.
		c.mu.Lock()
		if c.promised.epoch >= epoch && c.led < epoch {
			c.led = epoch
			c.advertise()
		}
		c.mu.Unlock()
	}()

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &round{members: make(map[nodeid.ID]bool, len(members)), cancel: cancel}
	for _, m := range members {
		r.members[m.ID] = true
	}
	c.mu.Lock()
	c.round = r
	c.mu.Unlock()
	pctx, pcancel := context.WithTimeout(rctx, c.cfg.PhaseTimeout)
	err = c.prepare(pctx, p)
	pcancel()
	c.mu.Lock()
	c.round = nil
	if err != nil && c.pending != nil && c.pending.Epoch == p.Epoch && c.pending.Leader == c.self {
		// Withdrawn: it will not be committed, so its edges need not
		// be kept (the next proposal, if any, brings its own), nor does
		// it bind the next proposals to its members (see admit).
		c.pending = nil
		if c.promised.epoch == p.Epoch && c.promised.leader == c.self {
			c.promised.members = nil
			if err := c.save(); err != nil {
				c.log.Warn("cluster: cannot save the state", "err", err)
			}
		}
	}
	c.mu.Unlock()
	if err != nil {
		if cause := context.Cause(rctx); cause != nil {
			c.log.Info("cluster: prepare cancelled; planning again", "epoch", epoch, "cause", cause)
			return
		}
		c.learn(err, visible)
		c.mu.Lock()
		c.retry.failed(fmt.Sprint(visible), time.Now(), c.cfg.Interval)
		wait := c.retry.wait
		c.mu.Unlock()
		c.log.Info("cluster: prepare failed; will retry", "epoch", epoch, "in", wait, "err", err)
		return
	}
	cctx, ccancel := context.WithTimeout(ctx, c.cfg.PhaseTimeout)
	err = c.commit(cctx, c.self, epoch)
	ccancel()
	c.mu.Lock()
	// Some members may not have committed: cascade again (a new epoch,
	// perhaps the same edges) until every member has.
	c.incomplete = err != nil
	if err != nil {
		c.retry.failed(fmt.Sprint(visible), time.Now(), c.cfg.Interval)
	} else {
		c.retry = retryBackoff{}
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Info("cluster: commit incomplete; will cascade again", "epoch", epoch, "err", err)
	}
}

// learn records what members said when they refused a proposal: the
// epochs they hold (the next proposal goes past them), and whether one
// refused it on policy grounds (then the leader waits until the membership
// it sees changes, or the prepared proposals that bound the refusing
// members are void, see refusal).
func (c *Cluster) learn(err error, visible []nodeid.ID) {
	var refs []*StaleEpochError
	collect(err, &refs)
	c.mu.Lock()
	defer c.mu.Unlock()
	var r *refusal
	for _, e := range refs {
		c.maxEpoch = max(c.maxEpoch, e.Committed, e.Prepared)
		switch e.Reason {
		case reasonPolicy:
			if r == nil {
				r = &refusal{visible: fmt.Sprint(visible)}
			}
			r.policy = true
		case reasonBound:
			if r == nil {
				r = &refusal{visible: fmt.Sprint(visible)}
			}
			r.bound = append(r.bound, boundRefusal{member: e.Member, epoch: e.Prepared, leader: e.PreparedBy})
		}
	}
	if r != nil {
		c.refused = r
	}
}

// A refusal is what a leader refused on policy grounds waits for before it
// proposes again: a change of the membership it sees, or, if every refusal
// came from members bound by a prepared proposal, that each of those is
// void.
type refusal struct {
	visible string         // the members visible when the proposal was refused
	policy  bool           // a member refused it against its last topology
	bound   []boundRefusal // members refused it against their prepared proposal
}

// A boundRefusal is a member's refusal against the prepared proposal of
// epoch, led by leader, that binds it.
type boundRefusal struct {
	member string
	epoch  uint64
	leader nodeid.ID
}

// lifted reports whether the refusals no longer hold with the members
// live: every member that refused was bound by a prepared proposal, and
// each has been released from it, or its leader says it is void (the
// member will release itself on hearing so, see release).
func (r *refusal) lifted(live []membership.Member) bool {
	if r.policy || len(r.bound) == 0 {
		return false
	}
	for _, b := range r.bound {
		ok := false
		for _, m := range live {
			bal, said := memberBallots(m)
			if !said {
				continue
			}
			if (m.ID == b.leader && bal.voids(b.epoch)) || (m.Name == b.member && bal.Bound != b.epoch) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// release frees this member from the prepared proposal that binds it (see
// admit) when the proposal's leader, live among the members, advertises
// that it never committed it and never will (ballots.voids): nobody can
// have committed it, so no side of a partition can build on it.
func (c *Cluster) release(live []membership.Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.bound() || c.promised.leader == c.self {
		return
	}
	for _, m := range live {
		if m.ID != c.promised.leader {
			continue
		}
		if b, ok := memberBallots(m); ok && b.voids(c.promised.epoch) {
			c.log.Info("cluster: released from a prepared proposal its leader withdrew", "epoch", c.promised.epoch, "leader", m.Name)
			c.promised.members = nil
			if err := c.save(); err != nil {
				c.log.Warn("cluster: cannot save the state", "err", err)
			}
			c.advertise()
		}
		return
	}
}

// collect appends every StaleEpochError in err's tree to refs.
func collect(err error, refs *[]*StaleEpochError) {
	if e, ok := err.(*StaleEpochError); ok {
		*refs = append(*refs, e)
		return
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			collect(e, refs)
		}
	case interface{ Unwrap() error }:
		if e := u.Unwrap(); e != nil {
			collect(e, refs)
		}
	}
}

// replan cancels the prepare in progress if id is one of its members: the
// leader plans again with the membership as it now is, instead of waiting
// for the phase timeout.
func (c *Cluster) replan(id nodeid.ID, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.round != nil && c.round.members[id] {
		c.round.cancel(errors.New(why))
	}
}

func proposal(leader nodeid.ID, t topology.Topology, prevTop topology.Topology) controlplane.Proposal {
	prev := prevTop.Edges
	p := controlplane.Proposal{Leader: leader, Epoch: t.Epoch, Strategy: t.Strategy, Base: prevTop.Epoch}
	for _, m := range t.Members {
		p.Members = append(p.Members, controlplane.Member{ID: m.ID, Name: m.Name, Addr: m.Addr})
	}
	for _, e := range t.Edges {
		p.Edges = append(p.Edges, controlplane.Edge{A: e.A, B: e.B})
	}
	// Members use old and new edges together (the cascade's tree, the
	// connections kept while a proposal is pending), so the previous edges
	// the new topology keeps need not travel twice: at 1,000 members a ring's
	// proposal is a quarter smaller, on each of its 500 hops.
	for _, e := range prev {
		if _, kept := slices.BinarySearchFunc(t.Edges, e, compareEdge); !kept {
			p.Previous = append(p.Previous, controlplane.Edge{A: e.A, B: e.B})
		}
	}
	return p
}

// compareEdge orders edges as a valid topology sorts them: by A, then B.
func compareEdge(x, y topology.Edge) int {
	if c := cmp.Compare(x.A, y.A); c != 0 {
		return c
	}
	return cmp.Compare(x.B, y.B)
}

// topologyOf returns the topology a proposal carries, validated.
func topologyOf(p *controlplane.Proposal) (topology.Topology, error) {
	t := topology.Topology{Epoch: p.Epoch, Strategy: p.Strategy}
	for _, m := range p.Members {
		t.Members = append(t.Members, topology.Member{ID: m.ID, Name: m.Name, Addr: m.Addr})
	}
	for _, e := range p.Edges {
		t.Edges = append(t.Edges, topology.Edge{A: e.A, B: e.B})
	}
	if err := t.Validate(); err != nil {
		return t, fmt.Errorf("cluster: proposal of epoch %d: %w", p.Epoch, err)
	}
	return t, nil
}

// forward calls f on every child in parallel and returns their errors joined.
func (c *Cluster) forward(ctx context.Context, kids []controlplane.Member, f func(context.Context, controlplane.Cascade) error) error {
	errs := make([]error, len(kids))
	var wg sync.WaitGroup
	for i, m := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.node.ConnectTo(ctx, m.ID, m.Addr); err != nil {
				errs[i] = fmt.Errorf("%s: %w", m.Name, err)
				return
			}
			if err := f(ctx, controlplane.NewCascadeProxy(c.node, m.ID, runtime.Direct())); err != nil {
				errs[i] = fmt.Errorf("%s: %w", m.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// prepare records a proposal and forwards it down the tree.
func (c *Cluster) prepare(ctx context.Context, p controlplane.Proposal) error {
	t, err := topologyOf(&p)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(p.Members, func(m controlplane.Member) bool { return m.ID == c.self }) {
		return fmt.Errorf("cluster: proposal of epoch %d does not include %s", p.Epoch, c.self)
	}
	c.mu.Lock()
	c.maxEpoch = max(c.maxEpoch, p.Epoch)
	if err := c.admit(&p); err != nil {
		c.mu.Unlock()
		return err
	}
	if p.Epoch > c.promised.epoch {
		c.promised = promise{epoch: p.Epoch, leader: p.Leader, members: make([]nodeid.ID, 0, len(p.Members))}
		for _, m := range p.Members {
			c.promised.members = append(c.promised.members, m.ID)
		}
		if err := c.save(); err != nil {
			// A promise that would not survive a restart is no promise.
			c.mu.Unlock()
			return fmt.Errorf("cluster: %s cannot prepare epoch %d: %w", c.node.Name(), p.Epoch, err)
		}
		c.advertise()
	}
	c.pending = &p
	c.pendingAt = time.Now()
	if c.router != nil {
		c.router.propose(t) // members that commit it first will route by it

	}
	c.mu.Unlock()
	return c.forward(ctx, children(&p, c.self), func(ctx context.Context, k controlplane.Cascade) error {
		return k.Prepare(ctx, p)
	})
}

// The reasons of refusals on policy grounds: the proposal holds no
// majority of the member's last topology, or of the proposal it prepared.
const (
	reasonPolicy = "the policy refuses it"
	reasonBound  = "the policy refuses it against the prepared proposal"
)

// admit decides whether this member may prepare p. c.mu must be held.
func (c *Cluster) admit(p *controlplane.Proposal) error {
	// What this member committed and prepared, in this life or in an
	// earlier one (restored from its state).
	l := c.last()
	refuse := func(reason string) error {
		return &StaleEpochError{Member: c.node.Name(), Proposed: p.Epoch, Committed: l.Epoch, Prepared: c.promised.epoch, Reason: reason}
	}
	switch {
	case p.Epoch <= l.Epoch:
		return refuse("not above the committed epoch")
	case p.Epoch < c.promised.epoch:
		return refuse("below the prepared epoch")
	case p.Epoch == c.promised.epoch && p.Leader != c.promised.leader:
		// Two leaders proposing the same epoch: the first one prepared
		// wins here, so no epoch is committed with two topologies (a
		// leader commits only once every member has prepared).
		return refuse("the epoch is prepared for another leader")
	}
	proposed := make([]nodeid.ID, 0, len(p.Members))
	for _, m := range p.Members {
		proposed = append(proposed, m.ID)
	}
	if l.Epoch > p.Base && l.Epoch > 0 {
		// The leader checked its policy against an older topology than
		// this member's: check against this one.
		if !topology.CanCommit(c.cfg.Policy, c.counted(memberIDs(l)), proposed) {
			return refuse(reasonPolicy)
		}
	}
	if pr := c.promised; c.bound() && pr.epoch > p.Base {
		// This member prepared a proposal newer than its last commit and
		// the leader's base: its leader may have committed it with members
		// this leader does not see. The new topology must hold a majority
		// of that one too, or the two sides of a partition could both
		// build on it. (Until its leader says it is void: see release.)
		if !topology.CanCommit(c.cfg.Policy, c.counted(pr.members), proposed) {
			err := refuse(reasonBound).(*StaleEpochError)
			err.PreparedBy = pr.leader
			return err
		}
	}
	return nil
}

// commit installs the prepared proposal of epoch, forwards the commit down
// the tree, then reconciles the connections.
func (c *Cluster) commit(ctx context.Context, leader nodeid.ID, epoch uint64) error {
	c.mu.Lock()
	p := c.pending
	if p == nil || p.Epoch != epoch || p.Leader != leader {
		retried := c.committed.Epoch == epoch && c.committedBy == leader
		c.mu.Unlock()
		if retried {
			return nil
		}
		return fmt.Errorf("%w: commit of epoch %d by %s, nothing prepared for it", ErrStaleEpoch, epoch, leader)
	}
	t, err := topologyOf(p)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	prev := c.committed
	// The routes go in before the commit is published: whoever sees the
	// new topology (Wait, Subscribe) can call along it at once. They are
	// computed on first use, so the commit goes on down the tree without
	// waiting for them: in a deep tree (a ring of 1,000 is 500 hops deep)
	// each hop then costs a round trip, not a round trip plus a routing
	// table.
	r := newRouter(t, c.self, c.node.Connected)
	r.wait = c.waitRoute
	if len(prev.Edges) > 0 {
		r.prev = newRouter(prev, c.self, c.node.Connected) // calls routed before this commit are still arriving
	}
	c.router = r
	c.node.SetRouter(r)
	c.committed = t
	c.committedBy = leader
	c.committedAt = time.Now()
	c.committedLocked(t)
	c.pending = nil
	c.blocked = ""
	c.refused = nil
	for id := range c.left {
		if !t.Contains(id) {
			delete(c.left, id) // out of the topology now: nothing to count it in
		}
	}
	if err := c.save(); err != nil {
		c.log.Error("cluster: cannot save the committed topology; a restart of this member would forget it", "epoch", t.Epoch, "err", err)
	}
	for _, nb := range t.Neighbours(c.self) {
		// The leader has just seen every member live: neighbours that
		// failed to connect before are dialled again at once.
		c.dials.forget(nb)
	}
	c.advertise()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.log.Info("cluster: topology committed", "epoch", t.Epoch, "topology", diagram(t))
	err = c.forward(ctx, children(p, c.self), func(ctx context.Context, k controlplane.Cascade) error {
		return k.Commit(ctx, leader, epoch)
	})
	c.poke() // reconcile now
	return err
}

// diagram defers topology.Diagram to a log handler that wants it, and
// summarises topologies too large to draw in one log line.
type diagram topology.Topology

// LogValue implements slog.LogValuer.
func (d diagram) LogValue() slog.Value {
	t := topology.Topology(d)
	if len(t.Members) > 32 {
		return slog.StringValue(fmt.Sprintf("%s of %d members, %d edges", t.Strategy, len(t.Members), len(t.Edges)))
	}
	return slog.StringValue(topology.Diagram(t))
}

// cascadeServer serves controlplane.Cascade for the cluster.
type cascadeServer Cluster

// Prepare implements controlplane.Cascade.
func (s *cascadeServer) Prepare(ctx context.Context, p controlplane.Proposal) error {
	return (*Cluster)(s).prepare(ctx, p)
}

// Commit implements controlplane.Cascade.
func (s *cascadeServer) Commit(ctx context.Context, leader nodeid.ID, epoch uint64) error {
	return (*Cluster)(s).commit(ctx, leader, epoch)
}

// Leaving implements controlplane.Cascade: the neighbour calling is
// leaving the cluster (see Leave). Only a neighbour may say so, over its
// own connection.
func (s *cascadeServer) Leaving(ctx context.Context) error {
	c := (*Cluster)(s)
	info, ok := runtime.CallInfoFrom(ctx)
	if !ok || info.Hops != 1 {
		return errors.New("cluster: Leaving: only a neighbour may say that it leaves, directly")
	}
	c.mu.Lock()
	c.departing[info.Caller] = true
	c.mu.Unlock()
	select {
	case c.departures <- struct{}{}:
	default:
	}
	return nil
}

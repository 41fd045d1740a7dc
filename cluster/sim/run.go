package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// The invariants Run checks.
const (
	// InvOneTopologyPerEpoch: no epoch is ever committed with two different
	// topologies (checked at every commit).
	InvOneTopologyPerEpoch = "one topology per epoch"
	// InvMinorityCommitsNothing: while the network is cleanly partitioned,
	// a member on a side without a majority of the last topology committed
	// before the partition commits nothing (checked at every commit of an
	// epoch whose leader decided it after the cut, and after the messages
	// in flight at the cut have landed, unless every member of the
	// topology had prepared it before the cut).
	InvMinorityCommitsNothing = "the minority commits nothing"
	// InvFormed: the cluster has formed (one topology, connections == edges)
	// before the first fault.
	InvFormed = "the cluster forms"
	// InvConverges: once the network is whole and every member that will
	// run again runs, every live member commits the same topology, of
	// exactly the live members, with the highest epoch ever committed, and
	// its connections equal its edges, within Options.Settle; and it still
	// holds a second later.
	InvConverges = "convergence after the faults"
	// InvCallDeadline: no call outlives its deadline by more than
	// Options.CallSlack (checked at every step for calls in flight).
	InvCallDeadline = "no call hangs past its deadline"
	// InvTypedErrors: a call fails only with one of runtime's typed errors.
	InvTypedErrors = "calls fail with typed errors"
	// InvNoRoutingLoop: no call fails because it used up its hop budget
	// going round in circles.
	InvNoRoutingLoop = "no routing loop"
	// InvGoroutines: once every member is closed, the goroutines return to
	// the number before the run.
	InvGoroutines = "goroutines return to baseline"
)

// Invariants lists every invariant Run checks.
var Invariants = []string{InvOneTopologyPerEpoch, InvMinorityCommitsNothing, InvFormed, InvConverges,
	InvCallDeadline, InvTypedErrors, InvNoRoutingLoop, InvGoroutines}

// Options tune Run. The zero value selects the defaults.
type Options struct {
	// Step is the simulated time between two checks (default 10 ms).
	Step time.Duration
	// Settle bounds the time from Quiet to convergence (default 3 s).
	Settle time.Duration
	// CallEvery is the time between two routed calls (default 50 ms).
	CallEvery time.Duration
	// CallTimeout is each call's deadline (default 1 s).
	CallTimeout time.Duration
	// CallSlack is how long past its deadline a call may take to return
	// (default 100 ms).
	CallSlack time.Duration
	// Policy is the members' commit policy (default topology.Majority{}).
	Policy topology.Policy
	// Forgetful members keep no state across restarts (see
	// WorldConfig.Forgetful).
	Forgetful bool
	// Logger receives the members' logs; nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Step <= 0 {
		o.Step = 10 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = 3 * time.Second
	}
	if o.CallEvery <= 0 {
		o.CallEvery = 50 * time.Millisecond
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = time.Second
	}
	if o.CallSlack <= 0 {
		o.CallSlack = 100 * time.Millisecond
	}
	return o
}

// A Violation is an invariant found broken.
type Violation struct {
	At        time.Duration // since the start of the run
	Invariant string
	Detail    string
}

// String describes the violation on one line.
func (v Violation) String() string {
	return fmt.Sprintf("%v: %s: %s", v.At.Round(time.Microsecond), v.Invariant, v.Detail)
}

// A Report is what a run found.
type Report struct {
	Schedule   *Schedule
	Violations []Violation
	// Checks counts invariant evaluations.
	Checks int
	// Commits counts the topologies members committed; MaxEpoch is the
	// highest epoch among them.
	Commits  int
	MaxEpoch uint64
	// Calls counts routed calls made, CallsOK those that succeeded.
	Calls, CallsOK int
	// Converged is the time from Quiet to convergence, or -1.
	Converged time.Duration
	// Blocked, if set, says why convergence was not required: the live
	// members hold no majority of the last committed topology, so the
	// keep-majority policy forbids any new one.
	Blocked string
	// Trace lists the commits (member, epoch, diagram) in the order seen,
	// a fingerprint of the run for checking that a seed replays.
	Trace []string
}

// Failed reports whether an invariant was broken.
func (r *Report) Failed() bool { return len(r.Violations) > 0 }

// Run runs schedule s and checks the invariants after every step. It must
// run inside a testing/synctest bubble: it sleeps through simulated time
// (some 15 s per schedule).
func Run(s *Schedule, o Options) *Report {
	o = o.withDefaults()
	r := &runner{s: s, o: o, start: time.Now(), rep: &Report{Schedule: s, Converged: -1},
		byEpoch: map[uint64]commitRec{}, rng: rand.New(rand.NewPCG(s.Seed, 0x63616c6c73))}
	r.run()
	return r.rep
}

type commitRec struct {
	t    topology.Topology
	host int
	at   time.Time // the first commit of the epoch: its leader's, when it decided
}

// preparedAt is when a member was first seen to have prepared epoch.
type preparedAt struct {
	epoch uint64
	at    time.Time
}

// watchPrepared records the epochs the live members have prepared. Called
// with r.mu held, at every step.
func (r *runner) watchPrepared() {
	if r.prepared == nil {
		r.prepared = make(map[int][]preparedAt)
	}
	for _, m := range r.w.Live() {
		e, _ := m.Cluster.Prepared()
		seen := r.prepared[m.Host]
		if e > 0 && (len(seen) == 0 || seen[len(seen)-1].epoch < e) {
			r.prepared[m.Host] = append(seen, preparedAt{epoch: e, at: time.Now()})
		}
	}
}

// preparedBy reports whether host h was seen, by the time at, to have
// prepared epoch (or a higher one, so it had prepared epoch before, if at
// all). Called with r.mu held.
func (r *runner) preparedBy(h int, epoch uint64, at time.Time) bool {
	i := slices.IndexFunc(r.prepared[h], func(p preparedAt) bool { return p.epoch >= epoch })
	return i >= 0 && !r.prepared[h][i].at.After(at)
}

type call struct {
	from, to int
	start    time.Time
	done     bool
	flagged  bool
}

type runner struct {
	s     *Schedule
	o     Options
	start time.Time
	nw    *Network
	w     *World
	rng   *rand.Rand // the workload's choices

	mu      sync.Mutex // guards what the watchers and callers touch
	rep     *Report
	byEpoch map[uint64]commitRec
	top     topology.Topology // the highest epoch committed anywhere
	cutAt   time.Time         // when the current partition began
	// prepared records, by host, when each member was first seen to have
	// prepared an epoch at least as high as each value: a member prepares
	// epochs in increasing order only.
	prepared map[int][]preparedAt
	calls    []*call
	callers  sync.WaitGroup

	vmu sync.Mutex // guards rep.Violations
}

func (r *runner) since() time.Duration { return time.Since(r.start) }

func (r *runner) violate(inv, format string, args ...any) {
	r.vmu.Lock()
	defer r.vmu.Unlock()
	r.rep.Violations = append(r.rep.Violations, Violation{At: r.since(), Invariant: inv, Detail: fmt.Sprintf(format, args...)})
}

func (r *runner) run() {
	s := r.s
	baseline, _ := bubbleGoroutines()
	r.nw = NewNetwork(s.Seed, s.Nodes, s.Conditions)
	strategy, err := topology.StrategyByName(s.Strategy)
	if err != nil {
		r.violate("setup", "%v", err)
		return
	}
	r.w, err = NewWorld(WorldConfig{Net: r.nw, IDs: s.IDs, Strategy: strategy, Policy: r.o.Policy, Forgetful: r.o.Forgetful, OnCommit: r.commit, Logger: r.o.Logger})
	if err != nil {
		r.violate("setup", "%v", err)
		return
	}
	steps := slices.Clone(s.Steps)
	nextStart := 0
	callAt := s.Faults / 2
	checkAt := time.Duration(0)
	formed := false
	var converged time.Time
	end := s.Quiet + r.o.Settle + time.Second
	for {
		// Events happen at their own instants (starts, steps and calls
		// carry sub-millisecond offsets), so that few coincide: what
		// happens at one instant is ordered by the goroutine scheduler,
		// not by the seed.
		next := checkAt
		if nextStart < s.Nodes {
			next = min(next, s.Starts[nextStart])
		}
		if len(steps) > 0 {
			next = min(next, steps[0].At)
		}
		next = min(next, callAt)
		if next > end {
			break
		}
		time.Sleep(time.Until(r.start.Add(next)))
		if nextStart < s.Nodes && s.Starts[nextStart] == next {
			if err := r.w.Start(nextStart); err != nil {
				r.violate("setup", "%v", err)
				return
			}
			nextStart++
			continue
		}
		if len(steps) > 0 && steps[0].At == next {
			r.apply(steps[0])
			steps = steps[1:]
			continue
		}
		if callAt == next {
			r.launchCall()
			callAt += r.o.CallEvery/2 + time.Duration(r.rng.Int64N(int64(r.o.CallEvery)))
			continue
		}
		now := checkAt
		checkAt += r.o.Step
		r.mu.Lock()
		r.checkCalls()
		r.watchPrepared()
		r.rep.Checks++
		r.mu.Unlock()
		switch {
		case now < s.Faults:
			if !formed {
				formed = r.converged() == ""
			}
		case !formed:
			r.violate(InvFormed, "no agreement %v after the start: %s", s.Faults, r.converged())
			formed = true
		case now >= s.Quiet && converged.IsZero():
			if why := r.converged(); why == "" {
				converged = time.Now()
				r.rep.Converged = r.since() - s.Quiet
			} else if now >= s.Quiet+r.o.Settle {
				if lost := r.majorityLost(); lost != "" {
					// The keep-majority policy blocks by design.
					r.rep.Blocked = lost
					converged = time.Now()
					break
				}
				r.violate(InvConverges, "no agreement %v after the faults: %s\n%s", r.o.Settle, why, r.state())
				converged = time.Now() // reported once
			}
		}
	}
	if !converged.IsZero() && r.rep.Converged >= 0 {
		if why := r.converged(); why != "" {
			r.violate(InvConverges, "agreement lost %v after it was reached: %s\n%s", r.since()-s.Quiet-r.rep.Converged, why, r.state())
		}
	}
	r.teardown(baseline)
}

// apply carries out one step of the schedule.
func (r *runner) apply(st Step) {
	switch st.Kind {
	case Partition:
		r.partition(st.Groups...)
	case CutLeader, LeaderMinority:
		leader := r.leader()
		if leader < 0 {
			return
		}
		size := 1
		if st.Kind == LeaderMinority {
			size = st.Size
		}
		small := []int{leader}
		var big []int
		for h := range r.s.Nodes {
			if h == leader {
				continue
			}
			if len(small) < size {
				small = append(small, h)
			} else {
				big = append(big, h)
			}
		}
		r.partition(small, big)
	case OneWay:
		r.nw.Cut(st.From, st.To)
	case Lossy:
		c := r.s.Conditions
		c.Loss = st.Loss
		r.nw.SetLink(st.From, st.To, c)
	case Heal:
		r.nw.Heal()
	case Crash, Exit:
		r.w.Kill(st.Host, st.Kind == Crash)
	case Restart:
		if err := r.w.Start(st.Host); err != nil {
			r.violate("setup", "%v", err)
		}
	}
}

func (r *runner) partition(groups ...[]int) {
	r.nw.Partition(groups...)
	r.mu.Lock()
	r.cutAt = time.Now()
	r.mu.Unlock()
}

// leader returns the host of the oldest live member as the live members see
// it (the first one's view), or -1.
func (r *runner) leader() int {
	for _, m := range r.w.Live() {
		if l, ok := m.Disc.Leader(); ok {
			for _, x := range r.w.Members {
				if x.ID == l.ID {
					return x.Host
				}
			}
		}
	}
	return -1
}

// commit records a topology member m committed and checks the invariants
// about commits.
func (r *runner) commit(m *Member, t topology.Topology) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Checks++
	r.rep.Commits++
	r.rep.Trace = append(r.rep.Trace, fmt.Sprintf("%v %s e%d %s", r.since(), m.Name, t.Epoch, r.diagram(t)))
	if prev, ok := r.byEpoch[t.Epoch]; ok && !prev.t.Equal(t) {
		r.violate(InvOneTopologyPerEpoch, "epoch %d: n%d committed %s, %s committed %s",
			t.Epoch, prev.host, r.diagram(prev.t), m.Name, r.diagram(t))
	} else if !ok {
		r.byEpoch[t.Epoch] = commitRec{t: t, host: m.Host, at: time.Now()}
	}
	if t.Epoch > r.top.Epoch {
		r.top = t
	}
	r.rep.MaxEpoch = max(r.rep.MaxEpoch, t.Epoch)

	groups, clean := r.nw.Groups()
	// A commit is decided by its leader, which commits first, once every
	// member has prepared; the commit then travels down the tree (dialling
	// where a connection is missing), and may land well after a cut that
	// came after the decision. So what counts is when the epoch was first
	// committed: the prepare replies in flight when the cut came may still
	// have landed (a stream keeps its order, so one may wait behind
	// another).
	inflight := 2*(r.s.Conditions.Delay+r.s.Conditions.Jitter) + time.Millisecond
	if !clean || r.byEpoch[t.Epoch].at.Sub(r.cutAt) <= inflight {
		return
	}
	// The reference is the topology committed before this one: its
	// majority must be on the committer's side.
	var ref topology.Topology
	for e, c := range r.byEpoch {
		if e < t.Epoch && e > ref.Epoch {
			ref = c.t
		}
	}
	if ref.Epoch == 0 {
		return
	}
	// A member across the cut counts too if it is a member of t and had
	// prepared it before the cut (as seen at the next step): the leader
	// decided with its consent, though its commit came later (a prepare
	// phase waiting on a dial).
	side := groups[m.Host]
	before := r.cutAt.Add(inflight + r.o.Step)
	n := 0
	for _, x := range ref.Members {
		h := r.hostOf(x.ID)
		switch {
		case h < 0:
		case groups[h] == side && r.w.Members[h].alive.Load():
			n++
		case t.Contains(x.ID) && r.preparedBy(h, t.Epoch, before):
			n++
		}
	}
	if 2*n <= len(ref.Members) {
		r.violate(InvMinorityCommitsNothing, "%s committed epoch %d (%s) on a side with %d of the %d members of epoch %d (%s), %v after the partition",
			m.Name, t.Epoch, r.diagram(t), n, len(ref.Members), ref.Epoch, r.diagram(ref), time.Since(r.cutAt))
	}
}

func (r *runner) hostOf(id nodeid.ID) int {
	for _, m := range r.w.Members {
		if m.ID == id {
			return m.Host
		}
	}
	return -1
}

// diagram shows t with host names.
func (r *runner) diagram(t topology.Topology) string {
	var ms, es []string
	for _, m := range t.Members {
		ms = append(ms, fmt.Sprintf("n%d", r.hostOf(m.ID)))
	}
	for _, e := range t.Edges {
		es = append(es, fmt.Sprintf("n%d-n%d", r.hostOf(e.A), r.hostOf(e.B)))
	}
	return fmt.Sprintf("{%s | %s}", strings.Join(ms, " "), strings.Join(es, " "))
}

// converged returns why the live members do not agree, or "" if they do:
// one topology, of exactly the live members, with the highest epoch ever
// committed, and connections equal to its edges.
func (r *runner) converged() string {
	live := r.w.Live()
	if len(live) == 0 {
		return ""
	}
	t := live[0].Cluster.Topology()
	r.mu.Lock()
	top := r.top.Epoch
	r.mu.Unlock()
	if t.Epoch < top {
		return fmt.Sprintf("%s is at epoch %d, epoch %d was committed", live[0].Name, t.Epoch, top)
	}
	if len(t.Members) != len(live) {
		return fmt.Sprintf("%s's epoch %d has %d members, %d live", live[0].Name, t.Epoch, len(t.Members), len(live))
	}
	for _, m := range live {
		mt := m.Cluster.Topology()
		if !mt.Equal(t) {
			return fmt.Sprintf("%s is at epoch %d, %s at epoch %d", live[0].Name, t.Epoch, m.Name, mt.Epoch)
		}
		if !t.Contains(m.ID) {
			return fmt.Sprintf("%s is not in epoch %d", m.Name, t.Epoch)
		}
		if want, got := t.Neighbours(m.ID), m.Node.Peers(); !slices.Equal(want, got) {
			return fmt.Sprintf("%s is connected to %v, its neighbours are %v", m.Name, r.names(got), r.names(want))
		}
	}
	conns := r.nw.OpenConns()
	if len(conns) != len(t.Edges) {
		return fmt.Sprintf("%d connections, %d edges", len(conns), len(t.Edges))
	}
	for _, c := range conns {
		if !t.HasEdge(r.w.Members[c[0]].ID, r.w.Members[c[1]].ID) {
			return fmt.Sprintf("connection n%d-n%d is no edge", c[0], c[1])
		}
	}
	return ""
}

// majorityLost returns why the live members cannot commit under the
// keep-majority policy, or "": they hold no majority of the topology with
// the highest epoch committed; or a live member is bound by a proposal it
// prepared (cluster.State.PreparedMembers) that may have been committed as
// far as any live member can tell, and they hold no majority of that one.
// Such a proposal's leader is down (so nobody can say that it was not
// committed, see cluster's ballots) and every live member of it prepared it;
// the simulation knows that it was not committed, the members cannot:
// its leader might have committed it and be alive across a cut with a
// majority of its members, and then both sides would build on their own
// topology.
func (r *runner) majorityLost() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	top := r.top
	n := 0
	for _, m := range top.Members {
		if h := r.hostOf(m.ID); h >= 0 && r.w.Members[h].alive.Load() {
			n++
		}
	}
	if 2*n <= len(top.Members) {
		return fmt.Sprintf("%d of the %d members of epoch %d (%s) live", n, len(top.Members), top.Epoch, r.diagram(top))
	}
	for _, m := range r.w.Live() {
		st := m.Cluster.State()
		if len(st.PreparedMembers) == 0 || st.Prepared <= st.Committed.Epoch {
			continue
		}
		if l := r.hostOf(st.Leader); l < 0 || r.w.Members[l].alive.Load() {
			continue // its leader can say whether it committed it
		}
		live, unaware := 0, false
		for _, id := range st.PreparedMembers {
			h := r.hostOf(id)
			if h < 0 || !r.w.Members[h].alive.Load() {
				continue
			}
			live++
			unaware = unaware || !r.preparedBy(h, st.Prepared, time.Now())
		}
		if unaware || 2*live > len(st.PreparedMembers) {
			continue
		}
		return fmt.Sprintf("%s is bound by epoch %d, prepared for n%d (down) with %d members, %d of them live",
			m.Name, st.Prepared, r.hostOf(st.Leader), len(st.PreparedMembers), live)
	}
	return ""
}

func (r *runner) names(ids []nodeid.ID) []string {
	var out []string
	for _, id := range ids {
		out = append(out, fmt.Sprintf("n%d", r.hostOf(id)))
	}
	return out
}

// state describes every live member, for a violation's detail.
func (r *runner) state() string {
	var b strings.Builder
	for _, m := range r.w.Members {
		if !m.alive.Load() {
			fmt.Fprintf(&b, "  %s: down\n", m.Name)
			continue
		}
		t := m.Cluster.Topology()
		var seen []string
		for _, x := range m.Disc.Members() {
			seen = append(seen, fmt.Sprintf("n%d", r.hostOf(x.ID)))
		}
		fmt.Fprintf(&b, "  %s: epoch %d %s; sees %v; connected to %v\n", m.Name, t.Epoch, r.diagram(t), seen, r.names(m.Node.Peers()))
	}
	fmt.Fprintf(&b, "  network: %v", r.nw.OpenConns())
	return b.String()
}

// launchCall makes one routed call between two members chosen by the
// workload's random source, on a goroutine of its own.
func (r *runner) launchCall() {
	from, to := r.rng.IntN(r.s.Nodes), r.rng.IntN(r.s.Nodes-1)
	if to >= from {
		to++
	}
	m := r.w.Members[from]
	if !m.alive.Load() {
		return
	}
	c := &call{from: from, to: to, start: time.Now()}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.rep.Calls++
	r.mu.Unlock()
	k := testsvc.NewKitchenProxy(m.Node, r.w.Members[to].ID)
	r.callers.Add(1)
	go func() {
		defer r.callers.Done()
		ctx, cancel := context.WithTimeout(context.Background(), r.o.CallTimeout)
		s, n, err := k.Echo(ctx, "sim", from)
		cancel()
		r.mu.Lock()
		defer r.mu.Unlock()
		c.done = true
		r.rep.Checks++
		took := time.Since(c.start)
		if took > r.o.CallTimeout+r.o.CallSlack && !c.flagged {
			r.violate(InvCallDeadline, "call n%d -> n%d returned after %v (deadline %v): %v", from, to, took, r.o.CallTimeout, err)
		}
		switch {
		case err == nil && s == "sim" && n == from:
			r.rep.CallsOK++
		case err == nil:
			r.violate(InvTypedErrors, "call n%d -> n%d returned %q, %d", from, to, s, n)
		case !typed(err):
			r.violate(InvTypedErrors, "call n%d -> n%d failed with an untyped error: %v", from, to, err)
		case strings.Contains(err.Error(), "hop budget used up"):
			r.violate(InvNoRoutingLoop, "call n%d -> n%d: %v", from, to, err)
		}
	}()
}

// checkCalls flags the calls in flight past their deadline and slack.
// Called with r.mu held.
func (r *runner) checkCalls() {
	live := r.calls[:0]
	for _, c := range r.calls {
		if c.done {
			continue
		}
		live = append(live, c)
		if !c.flagged && time.Since(c.start) > r.o.CallTimeout+r.o.CallSlack {
			c.flagged = true
			r.violate(InvCallDeadline, "call n%d -> n%d still in flight %v after it began (deadline %v)", c.from, c.to, time.Since(c.start), r.o.CallTimeout)
		}
	}
	r.calls = live
}

var machineryErrors = []error{runtime.ErrUnreachable, runtime.ErrNoRoute, runtime.ErrCanceled, runtime.ErrDeadlineExceeded,
	runtime.ErrProtocol, runtime.ErrClosed, runtime.ErrShuttingDown, runtime.ErrOverloaded}

func typed(err error) bool {
	for _, e := range machineryErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// teardown closes every member and checks that the goroutines end.
func (r *runner) teardown(baseline int) {
	r.w.Close()
	r.callers.Wait()
	r.mu.Lock()
	r.checkCalls()
	r.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, stacks := bubbleGoroutines()
		if n <= baseline {
			break
		}
		if time.Now().After(deadline) {
			r.violate(InvGoroutines, "%d goroutines, %d before the run:\n%s", n, baseline, stacks)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.rep.Checks++
}

// bubbleGoroutines counts the goroutines of synctest bubbles (those the
// simulation started, and the bubble's root), and returns the stacks of
// those started from package trellis.
func bubbleGoroutines() (int, string) {
	buf := make([]byte, 1<<16)
	for {
		n := goruntime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	var keep [][]byte
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		header, _, _ := bytes.Cut(g, []byte("\n"))
		if !bytes.Contains(header, []byte("synctest bubble")) {
			continue
		}
		count++
		if bytes.Contains(g, []byte("trellis/")) && !bytes.Contains(g, []byte("sim.(*runner)")) {
			keep = append(keep, g)
		}
	}
	return count, string(bytes.Join(keep, []byte("\n\n")))
}

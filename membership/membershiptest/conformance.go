package membershiptest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

// Backend describes a membership backend to the conformance suite (Run).
type Backend struct {
	// NewHarness returns a fresh, empty network of the backend for one test;
	// the harness closes what it created with t.Cleanup.
	NewHarness func(t *testing.T) Harness
	// DetectWithin bounds the time from a kill to every observer's Failed event
	// with the timing the harness configures.
	DetectWithin time.Duration
	// ConvergeWithin bounds the time for a join, a leave, a metadata update or
	// a healed partition to be seen by every member.
	ConvergeWithin time.Duration
	// Only, if not empty, names the tests to run (the others are skipped);
	// for instance a subset over real sockets.
	Only []string
}

// Harness creates nodes of one backend on one network and controls that
// network.
type Harness interface {
	// NewNode returns an unstarted node with the given identity, configured
	// to find the nodes created before it (multicast, seeds...). A spec whose
	// ID was used before is a restart of that node.
	NewNode(t *testing.T, spec NodeSpec) Node
	// Partition splits the network into groups of nodes by ID: packets pass
	// only within a group. Calling it again replaces the partition.
	Partition(t *testing.T, groups ...[]nodeid.ID)
	// Heal removes the partition.
	Heal(t *testing.T)
}

// NodeSpec is the identity of a node the suite asks for.
type NodeSpec struct {
	ID          nodeid.ID
	Name        string
	Addr        string // the advertised RPC address
	Meta        []byte
	Incarnation uint64
}

// Node is what the suite uses of a backend's node: a Discovery whose metadata
// can change.
type Node interface {
	membership.Discovery
	SetMeta(meta []byte) error
}

// Run runs the conformance suite against a backend: join, leave, kill,
// restart with a higher incarnation, leader change, partition and heal,
// metadata update, and a subscription that never blocks the backend.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"Join", testJoin},
		{"Leave", testLeave},
		{"Kill", testKill},
		{"Restart", testRestart},
		{"LeaderChange", testLeaderChange},
		{"PartitionHeal", testPartitionHeal},
		{"MetaUpdate", testMetaUpdate},
		{"SlowSubscriber", testSlowSubscriber},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(b.Only) > 0 && !slices.Contains(b.Only, tc.name) {
				t.Skip("not in this backend's subset")
			}
			checkGoroutines(t)
			tc.fn(t, &suite{b: b, h: b.NewHarness(t)})
		})
	}
}

// checkGoroutines fails the test if, once its cleanups (closing every node)
// have run, the goroutine count does not return to its value at the call
// within a bounded wait.
func checkGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d after the test, %d before\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond) // polling a count: no event to wait for
		}
	})
}

// suite is the state of one test.
type suite struct {
	b     Backend
	h     Harness
	nodes []*tnode
	next  int
}

// tnode is a started node and the subscription it had from before Start.
type tnode struct {
	Node
	spec NodeSpec
	sub  *membership.Subscription
	seen []membership.Event // every event taken from sub so far
	mark int                // await and index look at seen[mark:]
	dead bool
}

// start creates and starts a node; later nodes start later, so are younger.
func (s *suite) start(t *testing.T, spec NodeSpec) *tnode {
	t.Helper()
	if spec.ID == nodeid.None {
		s.next++
		spec.ID = nodeid.ID(0x1000 + s.next)
	}
	if spec.Name == "" {
		spec.Name = fmt.Sprintf("n%d", len(s.nodes))
	}
	if spec.Addr == "" {
		spec.Addr = fmt.Sprintf("127.0.0.1:%d", 17000+len(s.nodes))
	}
	n := s.h.NewNode(t, spec)
	tn := &tnode{Node: n, spec: spec, sub: n.Subscribe(membership.DefaultEventBuffer)}
	ctx, cancel := context.WithTimeout(context.Background(), s.b.ConvergeWithin)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("starting %s: %v", spec.Name, err)
	}
	t.Cleanup(func() { n.Close() })
	s.nodes = append(s.nodes, tn)
	// Join times must differ for the order to be by start, not by ID.
	time.Sleep(2 * time.Millisecond)
	return tn
}

// startN starts n nodes and waits until every one sees all of them.
func (s *suite) startN(t *testing.T, n int) []*tnode {
	t.Helper()
	var out []*tnode
	for range n {
		out = append(out, s.start(t, NodeSpec{}))
	}
	s.converge(t, s.live()...)
	return out
}

// mark makes every live node's later awaits look only at events from now on.
func (s *suite) mark() {
	for _, n := range s.live() {
		for {
			e, ok := n.sub.TryNext()
			if !ok {
				break
			}
			n.seen = append(n.seen, e)
		}
		n.mark = len(n.seen)
	}
}

func (s *suite) live() []*tnode {
	var out []*tnode
	for _, n := range s.nodes {
		if !n.dead {
			out = append(out, n)
		}
	}
	return out
}

// kill closes a node without a word.
func (s *suite) kill(t *testing.T, n *tnode) {
	t.Helper()
	if err := n.Close(); err != nil {
		t.Fatalf("closing %s: %v", n.spec.Name, err)
	}
	n.dead = true
}

func ids(ms []membership.Member) []nodeid.ID {
	out := make([]nodeid.ID, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func specIDs(ns []*tnode) []nodeid.ID {
	out := make([]nodeid.ID, len(ns))
	for i, n := range ns {
		out[i] = n.spec.ID
	}
	return out
}

// converge waits until each of group lists exactly group, in group's order
// (start order, which is age order), with the first as leader.
func (s *suite) converge(t *testing.T, group ...*tnode) {
	t.Helper()
	want := specIDs(group)
	deadline := time.Now().Add(s.b.ConvergeWithin)
	for _, n := range group {
		for {
			got := ids(n.Members())
			lead, ok := n.Leader()
			if slices.Equal(got, want) && ok && lead.ID == want[0] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lists %v (leader %v), want %v within %v", n.spec.Name, got, lead.ID, want, s.b.ConvergeWithin)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// await takes events from n's subscription until one satisfies ok, and
// returns it; it fails the test after within.
func (n *tnode) await(t *testing.T, within time.Duration, what string, ok func(membership.Event) bool) membership.Event {
	t.Helper()
	for _, e := range n.seen[n.mark:] {
		if ok(e) {
			return e
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		e, err := n.sub.Next(ctx)
		if err != nil {
			var log []string
			for _, e := range n.seen {
				log = append(log, e.String())
			}
			t.Fatalf("%s: no %s within %v (%v); events so far: %s", n.spec.Name, what, within, err, strings.Join(log, "; "))
		}
		n.seen = append(n.seen, e)
		if ok(e) {
			return e
		}
	}
}

// index returns the position in n.seen of the first event since the mark
// satisfying ok, or -1.
func (n *tnode) index(ok func(membership.Event) bool) int {
	if i := slices.IndexFunc(n.seen[n.mark:], ok); i >= 0 {
		return n.mark + i
	}
	return -1
}

func is(kind membership.EventKind, id nodeid.ID) func(membership.Event) bool {
	return func(e membership.Event) bool { return e.Kind == kind && e.Member.ID == id }
}

func testJoin(t *testing.T, s *suite) {
	meta := []byte("services=kv")
	first := s.start(t, NodeSpec{Meta: meta, Incarnation: 7})
	rest := s.startN(t, 2)
	all := append([]*tnode{first}, rest...)
	s.converge(t, all...)
	for _, n := range all {
		// The first event is the node leading itself, at Start.
		e := n.await(t, s.b.ConvergeWithin, "LeaderChanged", func(membership.Event) bool { return true })
		if e.Kind != membership.LeaderChanged || e.Member.ID != n.spec.ID || e.Previous != nodeid.None {
			t.Errorf("%s: first event %v, want LeaderChanged to itself", n.spec.Name, e)
		}
		for _, o := range all {
			if o == n {
				continue
			}
			n.await(t, s.b.ConvergeWithin, "Joined "+o.spec.Name, is(membership.Joined, o.spec.ID))
		}
		for _, m := range n.Members() {
			var o *tnode
			for _, c := range all {
				if c.spec.ID == m.ID {
					o = c
				}
			}
			if m.Name != o.spec.Name || m.Addr != o.spec.Addr || string(m.Meta) != string(o.spec.Meta) ||
				!m.State.Live() || m.Local != (o == n) || m.JoinTime.IsZero() {
				t.Errorf("%s lists %+v, want the fields of %+v", n.spec.Name, m, o.spec)
			}
			if o.spec.Incarnation != 0 && m.Incarnation != o.spec.Incarnation {
				t.Errorf("%s lists %s with incarnation %d, want %d", n.spec.Name, m.Name, m.Incarnation, o.spec.Incarnation)
			}
		}
		if l := n.Local(); l.ID != n.spec.ID || !l.Local {
			t.Errorf("%s: Local() = %+v", n.spec.Name, l)
		}
	}
	// The first node led throughout: the others changed leader to it.
	for _, n := range rest {
		// (Possibly through another member it heard of first.)
		n.await(t, s.b.ConvergeWithin, "LeaderChanged to the first node", is(membership.LeaderChanged, first.spec.ID))
		if j, l := n.index(is(membership.Joined, first.spec.ID)), n.index(is(membership.LeaderChanged, first.spec.ID)); j > l {
			t.Errorf("%s: LeaderChanged to %s before it Joined", n.spec.Name, first.spec.Name)
		}
	}
}

func testLeave(t *testing.T, s *suite) {
	ns := s.startN(t, 3)
	gone := ns[2]
	s.mark()
	ctx, cancel := context.WithTimeout(context.Background(), s.b.ConvergeWithin)
	defer cancel()
	if err := gone.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	gone.dead = true
	for _, n := range ns[:2] {
		n.await(t, s.b.ConvergeWithin, "Left", is(membership.Left, gone.spec.ID))
		if i := n.index(is(membership.Failed, gone.spec.ID)); i >= 0 {
			t.Errorf("%s saw a graceful leave as a failure; events: %v", n.spec.Name, n.seen[n.mark:])
		}
	}
	s.converge(t, ns[:2]...)
	// The node that left closed its subscriptions and lists nobody.
	ctx2, cancel2 := context.WithTimeout(context.Background(), s.b.ConvergeWithin)
	defer cancel2()
	for {
		if _, err := gone.sub.Next(ctx2); err != nil {
			if !errors.Is(err, membership.ErrClosed) {
				t.Fatalf("the leaver's subscription: %v, want ErrClosed", err)
			}
			break
		}
	}
	if ms := gone.Members(); len(ms) != 0 {
		t.Errorf("after Leave, Members() = %v", ms)
	}
	if _, ok := gone.Leader(); ok {
		t.Error("after Leave, Leader() reports one")
	}
}

func testKill(t *testing.T, s *suite) {
	ns := s.startN(t, 4)
	victim := ns[3]
	s.mark()
	killed := time.Now()
	s.kill(t, victim)
	for _, n := range ns[:3] {
		e := n.await(t, s.b.DetectWithin, "Failed", is(membership.Failed, victim.spec.ID))
		if e.Member.State != membership.StateFailed {
			t.Errorf("%s: Failed event with state %v", n.spec.Name, e.Member.State)
		}
		t.Logf("%s declared the victim failed after %v", n.spec.Name, time.Since(killed).Round(time.Millisecond))
		if n.index(is(membership.Left, victim.spec.ID)) >= 0 {
			t.Errorf("%s saw a kill as a leave", n.spec.Name)
		}
		// A suspicion, if reported, comes before the verdict.
		if i := n.index(is(membership.Suspected, victim.spec.ID)); i > n.index(is(membership.Failed, victim.spec.ID)) {
			t.Errorf("%s: Suspected after Failed", n.spec.Name)
		}
	}
	s.converge(t, ns[:3]...)
}

func testRestart(t *testing.T, s *suite) {
	ns := s.startN(t, 3)
	old := ns[2]
	s.mark()
	before := old.Local()
	s.kill(t, old)
	spec := old.spec
	spec.Incarnation = before.Incarnation + 1
	spec.Meta = []byte("second life")
	reborn := s.start(t, spec)
	for _, n := range ns[:2] {
		// The old life ends, then the new one begins.
		f := n.await(t, s.b.DetectWithin+s.b.ConvergeWithin, "Failed (old life)", is(membership.Failed, spec.ID))
		if f.Member.Incarnation != before.Incarnation {
			t.Errorf("%s: Failed for incarnation %d, want %d", n.spec.Name, f.Member.Incarnation, before.Incarnation)
		}
		j := n.await(t, s.b.ConvergeWithin, "Joined (new life)", func(e membership.Event) bool {
			return e.Kind == membership.Joined && e.Member.ID == spec.ID && e.Member.Incarnation == spec.Incarnation
		})
		if string(j.Member.Meta) != "second life" {
			t.Errorf("%s: new life's meta %q", n.spec.Name, j.Member.Meta)
		}
		if n.index(is(membership.Failed, spec.ID)) > n.index(func(e membership.Event) bool {
			return e.Kind == membership.Joined && e.Member.ID == spec.ID && e.Member.Incarnation == spec.Incarnation
		}) {
			t.Errorf("%s: the new life joined before the old one ended", n.spec.Name)
		}
	}
	// The restarted node is the youngest now.
	s.converge(t, ns[0], ns[1], reborn)
	for _, n := range []*tnode{ns[0], ns[1], reborn} {
		for _, m := range n.Members() {
			if m.ID == spec.ID && m.Incarnation != spec.Incarnation {
				t.Errorf("%s lists the restarted node at incarnation %d, want %d", n.spec.Name, m.Incarnation, spec.Incarnation)
			}
		}
	}
}

func testLeaderChange(t *testing.T, s *suite) {
	ns := s.startN(t, 4)
	lead := ns[0]
	s.mark()
	s.kill(t, lead)
	for _, n := range ns[1:] {
		// (Previous is the old leader unless a false suspicion on a loaded
		// machine made the node follow someone else in between.)
		n.await(t, s.b.DetectWithin, "LeaderChanged to the next oldest", is(membership.LeaderChanged, ns[1].spec.ID))
		// The leader's end is published before the new leader.
		if f := n.index(is(membership.Failed, lead.spec.ID)); f < 0 || f > n.index(is(membership.LeaderChanged, ns[1].spec.ID)) {
			t.Errorf("%s: LeaderChanged before the old leader's Failed", n.spec.Name)
		}
	}
	s.converge(t, ns[1:]...)
}

func testPartitionHeal(t *testing.T, s *suite) {
	ns := s.startN(t, 5)
	major, minor := ns[:3], ns[3:]
	s.mark()
	s.h.Partition(t, specIDs(major), specIDs(minor))
	within := s.b.DetectWithin + s.b.ConvergeWithin
	for _, n := range major {
		for _, o := range minor {
			n.await(t, within, "Failed across the partition", is(membership.Failed, o.spec.ID))
		}
	}
	for _, n := range minor {
		for _, o := range major {
			n.await(t, within, "Failed across the partition", is(membership.Failed, o.spec.ID))
		}
		// The minority follows its own oldest member.
		n.await(t, within, "LeaderChanged on the minority side", is(membership.LeaderChanged, minor[0].spec.ID))
	}
	s.converge(t, major...)
	s.converge(t, minor...)
	s.h.Heal(t)
	for _, n := range major {
		for _, o := range minor {
			n.await(t, within, "Joined after the heal", func(e membership.Event) bool {
				return e.Kind == membership.Joined && e.Member.ID == o.spec.ID && n.index(is(membership.Failed, o.spec.ID)) >= 0
			})
		}
	}
	for _, n := range minor {
		n.await(t, within, "LeaderChanged back to the oldest", func(e membership.Event) bool {
			return e.Kind == membership.LeaderChanged && e.Member.ID == major[0].spec.ID
		})
	}
	// Members keep their join times: the order is the original one.
	s.converge(t, ns...)
}

func testMetaUpdate(t *testing.T, s *suite) {
	ns := s.startN(t, 3)
	s.mark()
	if err := ns[1].SetMeta([]byte("v2")); err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	for _, n := range []*tnode{ns[0], ns[2]} {
		n.await(t, s.b.ConvergeWithin, "Updated with the new meta", func(e membership.Event) bool {
			return e.Kind == membership.Updated && e.Member.ID == ns[1].spec.ID && string(e.Member.Meta) == "v2"
		})
		for _, m := range n.Members() {
			if m.ID == ns[1].spec.ID && string(m.Meta) != "v2" {
				t.Errorf("%s lists meta %q after the update", n.spec.Name, m.Meta)
			}
		}
	}
	if got := ns[1].Local().Meta; string(got) != "v2" {
		t.Errorf("Local().Meta = %q after SetMeta", got)
	}
	// Metadata too large for the backend is refused, and the old stays.
	if err := ns[1].SetMeta(make([]byte, 64<<10)); err == nil {
		t.Error("SetMeta of 64 KiB succeeded")
	}
	if got := ns[1].Local().Meta; string(got) != "v2" {
		t.Errorf("Local().Meta = %q after a refused SetMeta", got)
	}
	// Members hand out copies.
	ms := ns[0].Members()
	for i := range ms {
		if len(ms[i].Meta) > 0 {
			ms[i].Meta[0] ^= 0xff
		}
	}
	for _, m := range ns[0].Members() {
		if m.ID == ns[1].spec.ID && string(m.Meta) != "v2" {
			t.Errorf("modifying Members()' result changed the table: %q", m.Meta)
		}
	}
}

func testSlowSubscriber(t *testing.T, s *suite) {
	first := s.start(t, NodeSpec{})
	stuck := first.Subscribe(1) // never read until the end
	ns := append([]*tnode{first}, s.startN(t, 3)...)
	s.converge(t, ns...)
	victim := ns[3]
	s.mark()
	s.kill(t, victim)
	// The backend kept detecting and publishing to the others.
	first.await(t, s.b.DetectWithin, "Failed despite a stuck subscriber", is(membership.Failed, victim.spec.ID))
	s.converge(t, ns[:3]...)
	e, ok := stuck.TryNext()
	if !ok {
		t.Fatal("the stuck subscription holds no event")
	}
	if e.Missed == 0 || stuck.Dropped() == 0 {
		t.Errorf("stuck subscription: event %v with Missed %d, Dropped %d; want events counted as missed", e, e.Missed, stuck.Dropped())
	}
	// Closing the node does not wait for the stuck subscriber.
	done := make(chan error, 1)
	go func() { done <- first.Close() }()
	select {
	case <-done:
	case <-time.After(s.b.ConvergeWithin):
		t.Fatal("Close blocked behind a stuck subscription")
	}
	first.dead = true
}

package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// noDiscovery is a membership that sees nobody: the tests below drive the
// cascade by hand.
type noDiscovery struct{ self membership.Member }

func (d noDiscovery) Start(context.Context) error            { return nil }
func (d noDiscovery) Local() membership.Member               { return d.self }
func (d noDiscovery) Members() []membership.Member           { return []membership.Member{d.self} }
func (d noDiscovery) Leader() (membership.Member, bool)      { return d.self, true }
func (d noDiscovery) Subscribe(int) *membership.Subscription { return nil }
func (d noDiscovery) Leave(context.Context) error            { return nil }
func (d noDiscovery) Close() error                           { return nil }

// newStateCluster returns a cluster (not started) of member id with state.
func newStateCluster(t *testing.T, id nodeid.ID, state StateStore) (*Cluster, error) {
	t.Helper()
	node, err := runtime.NewNode(runtime.Config{Name: "N2", ID: id, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(context.Background()) })
	return New(Config{Node: node, Discovery: noDiscovery{membership.Member{ID: id, Name: "N2"}}, State: state})
}

// leafProposal is a proposal of epoch by leader, based on epoch base, of a
// line from the leader to member 2 (so 2 forwards it to nobody).
func leafProposal(epoch, base uint64, leader nodeid.ID, others ...nodeid.ID) controlplane.Proposal {
	p := controlplane.Proposal{Leader: leader, Epoch: epoch, Base: base, Strategy: "line",
		Members: []controlplane.Member{{ID: leader}, {ID: 2}}, Edges: []controlplane.Edge{{A: min(leader, 2), B: max(leader, 2)}}}
	prev := leader
	for _, o := range others { // hung beyond the leader, away from 2
		p.Members = append(p.Members, controlplane.Member{ID: o})
		p.Edges = append(p.Edges, controlplane.Edge{A: min(prev, o), B: max(prev, o)})
		prev = o
	}
	slices.SortFunc(p.Edges, func(x, y controlplane.Edge) int {
		return compareEdge(topology.Edge{A: x.A, B: x.B}, topology.Edge{A: y.A, B: y.B})
	})
	return p
}

// TestRestartedMemberKeepsItsPromises checks what member 2 of {1, 2, 3},
// restarted after it committed epoch 5 and prepared epoch 6 for leader 1,
// prepares: with its state, only proposals above both, from leader 1 for
// epoch 6, that a majority of its last topology can commit; a member that
// forgets (no State) prepares all of them, and so can commit an epoch
// twice, or a minority's topology.
func TestRestartedMemberKeepsItsPromises(t *testing.T) {
	last := topology.Topology{Epoch: 5, Strategy: "ring", Members: []topology.Member{{ID: 1}, {ID: 2}, {ID: 3}},
		Edges: []topology.Edge{{A: 1, B: 2}, {A: 1, B: 3}, {A: 2, B: 3}}}
	saved := State{ID: 2, Committed: last, Prepared: 6, Leader: 1}
	tests := []struct {
		name string
		p    controlplane.Proposal
		ok   bool // prepared with the state
	}{
		{"an epoch it committed", leafProposal(5, 4, 3, 1), false},
		{"the epoch it prepared, for another leader", leafProposal(6, 5, 3, 1), false},
		{"the epoch it prepared, for its leader", leafProposal(6, 5, 1, 3), true},
		{"above, based on its epoch", leafProposal(7, 5, 3), true},
		{"above, based on an older epoch, a majority of its last topology", leafProposal(7, 4, 3, 9), true},
		{"above, based on an older epoch, a minority of its last topology", leafProposal(7, 4, 9), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, forget := range []bool{false, true} {
				var state StateStore = &MemoryState{}
				if !forget {
					state.Save(saved)
				}
				c, err := newStateCluster(t, 2, state)
				if err != nil {
					t.Fatal(err)
				}
				err = c.prepare(context.Background(), tt.p)
				want := tt.ok || forget
				if (err == nil) != want {
					t.Errorf("forgetful %v: prepare of epoch %d by %d based on %d: %v, want ok %v", forget, tt.p.Epoch, tt.p.Leader, tt.p.Base, err, want)
				}
				if err != nil && !errors.Is(err, ErrStaleEpoch) {
					t.Errorf("refusal %v is no ErrStaleEpoch", err)
				}
				got, _ := state.Load()
				if err == nil && (got.Prepared != tt.p.Epoch || got.Leader != tt.p.Leader) {
					t.Errorf("saved %+v after preparing epoch %d for %d", got, tt.p.Epoch, tt.p.Leader)
				}
			}
		})
	}
}

// TestRestartedLeaderAloneCommitsNothing checks that a member restarted
// with the state of a three-member topology, alone, does not lead a
// topology of its own.
func TestRestartedLeaderAloneCommitsNothing(t *testing.T) {
	last := topology.Topology{Epoch: 5, Strategy: "ring", Members: []topology.Member{{ID: 1}, {ID: 2}, {ID: 3}},
		Edges: []topology.Edge{{A: 1, B: 2}, {A: 1, B: 3}, {A: 2, B: 3}}}
	for _, forget := range []bool{false, true} {
		state := &MemoryState{}
		if !forget {
			state.Save(State{ID: 2, Committed: last})
		}
		c, err := newStateCluster(t, 2, state)
		if err != nil {
			t.Fatal(err)
		}
		c.lead(context.Background())
		if got := c.Topology(); (got.Epoch > 0) != forget {
			t.Errorf("forgetful %v: alone, it committed epoch %d %s", forget, got.Epoch, topology.Diagram(got))
		}
		if !forget && c.blocked == "" {
			t.Errorf("no reason logged for not leading")
		}
	}
}

func TestStateRefusedForAnotherMember(t *testing.T) {
	state := &MemoryState{}
	state.Save(State{ID: 7})
	if _, err := newStateCluster(t, 2, state); err == nil {
		t.Fatal("member 2 took member 7's state")
	}
}

func TestFileStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	f := FileState(path)
	if s, err := f.Load(); err != nil || s.ID != nodeid.None {
		t.Fatalf("load before any save: %+v, %v", s, err)
	}
	want := State{ID: 2, Prepared: 6, Leader: 1, Committed: topology.Topology{Epoch: 5, Strategy: "ring",
		Members: []topology.Member{{ID: 1, Name: "a", Addr: "x:1"}, {ID: 2}}, Edges: []topology.Edge{{A: 1, B: 2}}}}
	for range 2 { // the second save replaces the first
		if err := f.Save(want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.Load()
	if err != nil || got.ID != want.ID || got.Prepared != want.Prepared || got.Leader != want.Leader || !got.Committed.Equal(want.Committed) {
		t.Fatalf("loaded %+v, %v; want %+v", got, err, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the directory, want the state alone", len(entries))
	}
	for _, bad := range []string{"", "{", `{"Version":99}`, `[1,2]`} {
		os.WriteFile(path, []byte(bad), 0o600)
		if s, err := f.Load(); err == nil {
			t.Errorf("load of %q: %+v, no error", bad, s)
		}
	}
}

// TestCommitDialsNeighboursAgainAtOnce checks that a commit naming a
// neighbour whose dials failed (it was down, or cut off, and the backoff
// grew) makes it due at once: the leader has just seen it live, and a wait
// of seconds would hold connections == edges back well past the heal.
func TestCommitDialsNeighboursAgainAtOnce(t *testing.T) {
	c, err := newStateCluster(t, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.mu.Lock()
	for range 8 {
		c.dials.failed(1, now)
	}
	c.mu.Unlock()
	if c.dials.due(1, now) {
		t.Fatal("backoff not set up")
	}
	p := leafProposal(1, 0, 1)
	if err := c.prepare(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if err := c.commit(context.Background(), 1, 1); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	due := c.dials.due(1, time.Now())
	c.mu.Unlock()
	if !due {
		t.Fatal("the neighbour named by the commit is still in backoff")
	}
}

// TestPreparedProposalBindsAStaleLeader checks member 2 that committed
// epoch 5 of {1..5}, then prepared epoch 6 of {2, 3, 4} for leader 3 (whose
// commit it never saw): a leader still on epoch 5 may prepare it only a
// topology that holds a majority of {2, 3, 4} too, for leader 3 may have
// committed epoch 6 with 3 and 4, and build on it.
func TestPreparedProposalBindsAStaleLeader(t *testing.T) {
	five := topology.Topology{Epoch: 5, Strategy: "bus"}
	for i := nodeid.ID(1); i <= 5; i++ {
		five.Members = append(five.Members, topology.Member{ID: i})
		for j := i + 1; j <= 5; j++ {
			five.Edges = append(five.Edges, topology.Edge{A: i, B: j})
		}
	}
	tests := []struct {
		name string
		p    controlplane.Proposal
		ok   bool
	}{
		{"a majority of epoch 5, a minority of the prepared 6", leafProposal(7, 5, 1, 5), false},
		{"a majority of both", leafProposal(7, 5, 1, 3, 5), true},
		{"based on the prepared epoch", leafProposal(7, 6, 1, 5), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newStateCluster(t, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.commitForTest(five)
			if err := c.prepare(context.Background(), leafProposal(6, 5, 3, 4)); err != nil {
				t.Fatal(err)
			}
			err = c.prepare(context.Background(), tt.p)
			if (err == nil) != tt.ok {
				t.Fatalf("prepare of epoch %d of %v based on %d: %v, want ok %v", tt.p.Epoch, tt.p.Members, tt.p.Base, err, tt.ok)
			}
		})
	}
}

// busTopology returns the bus (full mesh) of members 1..n at epoch.
func busTopology(epoch uint64, n nodeid.ID) topology.Topology {
	t := topology.Topology{Epoch: epoch, Strategy: "bus"}
	for i := nodeid.ID(1); i <= n; i++ {
		t.Members = append(t.Members, topology.Member{ID: i})
		for j := i + 1; j <= n; j++ {
			t.Edges = append(t.Edges, topology.Edge{A: i, B: j})
		}
	}
	return t
}

// TestWithdrawnProposalReleasesItsMembers checks member 2 that committed
// epoch 5 of {1..5}, then prepared epoch 6 of {2, 3, 4} for leader 3 whose
// cascade then failed (3 and 4 went away, seed 912 of the simulation): it
// refuses a proposal of {1, 2, 5} (a majority of epoch 5, a minority of the
// prepared 6) while leader 3 may still commit epoch 6 or may have, and
// prepares it once leader 3 advertises that epoch 6 was withdrawn for good.
// Without the release the live members stay on epoch 5 forever.
func TestWithdrawnProposalReleasesItsMembers(t *testing.T) {
	tests := []struct {
		name     string
		leader   *ballots // what leader 3 advertises; nil: not live
		released bool
	}{
		{"leader 3 not live", nil, false},
		{"leader 3 has not said", &ballots{}, false},
		{"leader 3 still cascading epoch 6", &ballots{Epoch: 5, Last: 5, Led: 5, Bound: 6}, false},
		{"leader 3 committed epoch 6", &ballots{Epoch: 6, Last: 6, Led: 6}, false},
		{"leader 3 withdrew epoch 6", &ballots{Epoch: 5, Last: 5, Led: 6}, true},
		{"leader 3 withdrew epochs 6 and 7", &ballots{Epoch: 5, Last: 5, Led: 7}, true},
		{"leader 3 restarted, with its state", &ballots{Epoch: 0, Last: 5, Led: 6}, true},
		{"leader 3 withdrew 6, then committed 7", &ballots{Epoch: 7, Last: 7, Led: 7}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newStateCluster(t, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.commitForTest(busTopology(5, 5))
			if err := c.prepare(context.Background(), leafProposal(6, 5, 3, 4)); err != nil {
				t.Fatal(err)
			}
			if b := c.ballots(); b.Bound != 6 {
				t.Fatalf("advertises %+v after preparing epoch 6, want Bound 6", b)
			}
			p := leafProposal(7, 5, 1, 5)
			err = c.prepare(context.Background(), p)
			var se *StaleEpochError
			if !errors.As(err, &se) || se.Reason != reasonBound || se.PreparedBy != 3 {
				t.Fatalf("bound by epoch 6: prepare of epoch 7 of %v: %v, want a refusal against the prepared proposal of 3", p.Members, err)
			}
			live := []membership.Member{{ID: 1, Name: "N1"}, {ID: 2, Name: "N2"}, {ID: 5, Name: "N5"}}
			if tt.leader != nil {
				var meta []byte
				if *tt.leader != (ballots{}) {
					meta = encodeMeta(*tt.leader, nil, nil)
				}
				live = append(live, membership.Member{ID: 3, Name: "N3", Meta: meta})
			}
			c.release(live)
			if st, b := c.State(), c.ballots(); (st.PreparedMembers == nil) != tt.released || (b.Bound == 0) != tt.released {
				t.Errorf("prepared %d for %d with members %v, advertising %+v: want released %v", st.Prepared, st.Leader, st.PreparedMembers, b, tt.released)
			}
			err = c.prepare(context.Background(), p)
			if (err == nil) != tt.released {
				t.Fatalf("prepare of epoch 7 after hearing leader 3: %v, want ok %v", err, tt.released)
			}
		})
	}
}

// TestLeaderAdvertisesItsWithdrawnCascade checks that a leader whose
// cascade failed says so in its metadata (so that the members that
// prepared it may forget it), and does not reuse the epoch.
func TestLeaderAdvertisesItsWithdrawnCascade(t *testing.T) {
	node, err := runtime.NewNode(runtime.Config{Name: "N2", ID: 2, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(context.Background()) })
	// Member 9 is live to the membership, but no node answers at its
	// address: the prepare fails.
	disc := &listDiscovery{self: membership.Member{ID: 2, Name: "N2"},
		others: []membership.Member{{ID: 9, Name: "N9", Addr: "127.0.0.1:1"}}}
	c, err := New(Config{Node: node, Discovery: disc, PhaseTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.commitForTest(topology.Topology{Epoch: 1, Strategy: "ring", Members: []topology.Member{{ID: 2, Name: "N2"}}})
	c.lead(context.Background())
	b, ok := memberBallots(disc.Local())
	if !ok || !b.voids(2) || b.Last != 1 {
		t.Fatalf("after a failed cascade of epoch 2 the leader advertises %+v (ok %v), want epoch 2 void", b, ok)
	}
	if st := c.State(); st.Prepared != 2 || st.PreparedMembers != nil {
		t.Errorf("the leader still holds its withdrawn proposal: %+v", st)
	}
	c.lead(context.Background())
	if b, _ := memberBallots(disc.Local()); b.Led != 2 {
		t.Errorf("the leader cascaded again at once after a failure (advertises %+v): want it to back off", b)
	}
	c.mu.Lock()
	c.retry.until = time.Time{} // the retry's wait is over
	c.mu.Unlock()
	c.lead(context.Background())
	if b, _ := memberBallots(disc.Local()); b.Led != 3 || !b.voids(2) {
		t.Errorf("after a second failed cascade the leader advertises %+v, want epoch 3 led", b)
	}
}

// listDiscovery is a membership of a fixed list of members, self the
// leader; SetMeta sets self's metadata.
type listDiscovery struct {
	mu     sync.Mutex
	self   membership.Member
	others []membership.Member
}

func (d *listDiscovery) Start(context.Context) error { return nil }
func (d *listDiscovery) Local() membership.Member {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.self
}
func (d *listDiscovery) Members() []membership.Member {
	return append([]membership.Member{d.Local()}, d.others...)
}
func (d *listDiscovery) Leader() (membership.Member, bool)      { return d.Local(), true }
func (d *listDiscovery) Subscribe(int) *membership.Subscription { return nil }
func (d *listDiscovery) Leave(context.Context) error            { return nil }
func (d *listDiscovery) Close() error                           { return nil }
func (d *listDiscovery) SetMeta(meta []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.self.Meta = append([]byte(nil), meta...)
	return nil
}

// TestDepartedMembersDoNotCount checks the policy's majority without the
// members that left gracefully, on both sides of a cascade: member 2, whose
// last topology is {1, 2, 3, 4}, prepares a proposal based on an older one
// when it holds a majority of the members that did not leave, and leads a
// topology of its own once all the others left, but not while one of them
// merely went silent.
func TestDepartedMembersDoNotCount(t *testing.T) {
	last := topology.Topology{Epoch: 5, Strategy: "ring", Members: []topology.Member{{ID: 1}, {ID: 2}, {ID: 3}, {ID: 4}},
		Edges: []topology.Edge{{A: 1, B: 2}, {A: 1, B: 4}, {A: 2, B: 3}, {A: 3, B: 4}}}
	newCluster := func(t *testing.T, left ...nodeid.ID) *Cluster {
		state := &MemoryState{}
		state.Save(State{ID: 2, Committed: last})
		c, err := newStateCluster(t, 2, state)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range left {
			c.left[id] = true
		}
		return c
	}
	prepares := []struct {
		name string
		left []nodeid.ID
		p    controlplane.Proposal
		ok   bool
	}{
		{"{2, 3} of 4, none left", nil, leafProposal(7, 4, 3), false},
		{"{2, 3} of 4, 4 left", []nodeid.ID{4}, leafProposal(7, 4, 3), true},
		{"{2, 9} of 4, 4 left", []nodeid.ID{4}, leafProposal(7, 4, 9), false},
		{"{2, 9} of 4, 1, 3 and 4 left", []nodeid.ID{1, 3, 4}, leafProposal(7, 4, 9), true},
	}
	for _, tt := range prepares {
		t.Run("prepare "+tt.name, func(t *testing.T) {
			c := newCluster(t, tt.left...)
			if err := c.prepare(context.Background(), tt.p); (err == nil) != tt.ok {
				t.Errorf("prepare: %v, want ok %v", err, tt.ok)
			}
		})
	}
	leads := []struct {
		name string
		left []nodeid.ID
		ok   bool
	}{
		{"alone, none left", nil, false},
		{"alone, 3 and 4 left, 1 silent", []nodeid.ID{3, 4}, false},
		{"alone, 1, 3 and 4 left", []nodeid.ID{1, 3, 4}, true},
	}
	for _, tt := range leads {
		t.Run("lead "+tt.name, func(t *testing.T) {
			c := newCluster(t, tt.left...)
			c.lead(context.Background())
			got := c.Topology()
			if alone := got.Epoch > last.Epoch && len(got.Members) == 1; alone != tt.ok {
				t.Errorf("committed epoch %d %s; want alone: %v", got.Epoch, topology.Diagram(got), tt.ok)
			}
			if !tt.ok && c.blocked == "" {
				t.Errorf("no reason logged for not leading")
			}
		})
	}
}

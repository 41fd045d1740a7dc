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
)

// detectionBound is the promise of the defaults: a dead node is declared failed
// by every observer within 1.5 s.
const detectionBound = 1500 * time.Millisecond

var lan = membershiptest.Conditions{Delay: time.Millisecond, Jitter: 2 * time.Millisecond}

func TestSimJoinOrderAndLeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		cond membershiptest.Conditions
	}{
		{"clean", lan},
		{"loss30", membershiptest.Conditions{Loss: 0.3, Delay: time.Millisecond, Jitter: 5 * time.Millisecond}},
		{"dup-reorder", membershiptest.Conditions{Duplicate: 0.3, Delay: time.Millisecond, Jitter: 80 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 1, tc.cond)
			nodes := s.addN(5)
			s.runUntil(3*time.Second, "every node sees all five", s.allSee("n1,n2,n3,n4,n5"))
			for _, sn := range nodes {
				lead, ok := sn.node.Leader()
				if !ok || lead.Name != "n1" {
					t.Errorf("%s: leader = %v, %v; want n1", sn.name, lead, ok)
				}
				for _, o := range nodes {
					if o != sn && sn.count(membership.Joined, o) != 1 {
						t.Errorf("%s saw %d Joined for %s, want exactly 1", sn.name, sn.count(membership.Joined, o), o.name)
					}
				}
			}
		})
	}
}

func TestSimLeaveSeenImmediately(t *testing.T) {
	s := newSim(t, 2, lan)
	nodes := s.addN(4)
	s.runUntil(2*time.Second, "all see four", s.allSee("n1,n2,n3,n4"))
	start := s.clock.Now()
	s.leave(nodes[0])
	took := s.runUntil(time.Second, "all see n1 leave", s.allSee("n2,n3,n4"))
	if took > 20*time.Millisecond {
		t.Errorf("leave took %v to be seen, want a network delay (≤ 20 ms)", took)
	}
	for _, sn := range nodes[1:] {
		if sn.count(membership.Left, nodes[0]) != 1 || sn.count(membership.Failed, nodes[0]) != 0 {
			t.Errorf("%s: Left=%d Failed=%d for n1, want 1 and 0", sn.name,
				sn.count(membership.Left, nodes[0]), sn.count(membership.Failed, nodes[0]))
		}
		lead, _ := sn.node.Leader()
		if lead.Name != "n2" {
			t.Errorf("%s: leader %s after n1 left, want n2", sn.name, lead.Name)
		}
		if _, ok := sn.firstEvent(membership.LeaderChanged, nodes[1], start); !ok {
			t.Errorf("%s: no LeaderChanged to n2", sn.name)
		}
	}
}

// Members that know only a seed meet each other in a few network delays, not
// at the next peers message (every 5 heartbeat intervals, a second by
// default): the members a newcomer joins greet it and tell a few others of
// it at once. (A cluster proxy saw a member's services only once its
// membership had met it: until then, the other members stayed invisible.)
func TestSimMembersOfASeedMeetAtOnce(t *testing.T) {
	for _, n := range []int{3, 32} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newSim(t, 5, lan)
			s.oneSeed()
			var want []string
			for i := range n {
				s.add(fmt.Sprintf("n%d", i+1))
				want = append(want, fmt.Sprintf("n%d", i+1))
				s.run(time.Millisecond)
			}
			took := s.runUntil(5*time.Second, "everyone sees everyone", s.allSee(strings.Join(want, ",")))
			if limit := membership.DefaultInterval / 2; took > limit {
				t.Errorf("%d members of one seed met each other after %v, want within %v", n, took, limit)
			}
		})
	}
}

func TestSimCrashDetectedWithinBound(t *testing.T) {
	for _, victim := range []int{0, 2} { // the leader, and another
		s := newSim(t, 3, lan)
		nodes := s.addN(5)
		s.runUntil(2*time.Second, "all see five", s.allSee("n1,n2,n3,n4,n5"))
		s.run(time.Duration(victim+1) * 37 * time.Millisecond) // vary the phase
		v := nodes[victim]
		crashed := s.clock.Now()
		s.crash(v)
		s.run(2 * time.Second)
		for _, sn := range s.others(v) {
			at, ok := sn.firstEvent(membership.Failed, v, crashed)
			if !ok {
				t.Fatalf("%s never declared %s failed", sn.name, v.name)
			}
			d := at.Sub(crashed)
			if d > detectionBound || d < membership.DefaultSuspectAfter-membership.DefaultInterval {
				t.Errorf("%s declared %s failed after %v, want within (%v, %v]", sn.name, v.name, d,
					membership.DefaultSuspectAfter-membership.DefaultInterval, detectionBound)
			}
			if _, ok := sn.firstEvent(membership.Suspected, v, crashed); !ok {
				t.Errorf("%s failed %s without suspecting it first", sn.name, v.name)
			}
			if victim == 0 {
				if lead, _ := sn.node.Leader(); lead.Name != "n2" {
					t.Errorf("%s: leader %s after n1 crashed, want n2", sn.name, lead.Name)
				}
			}
		}
	}
}

func TestSimRestartWithHigherIncarnation(t *testing.T) {
	t.Run("before detection", func(t *testing.T) {
		s := newSim(t, 4, lan)
		nodes := s.addN(3)
		s.runUntil(2*time.Second, "all see three", s.allSee("n1,n2,n3"))
		v := nodes[2]
		oldInc := v.inc
		s.crash(v)
		s.run(300 * time.Millisecond) // back before anyone gives up on it
		s.restart(v)
		s.run(500 * time.Millisecond)
		for _, sn := range nodes[:2] {
			// The previous life ends (Failed), the new one starts (Joined).
			if f, j := sn.count(membership.Failed, v), sn.count(membership.Joined, v); f != 1 || j != 2 {
				t.Errorf("%s: Failed=%d Joined=%d for restarted n3, want 1 and 2", sn.name, f, j)
			}
			ms := sn.node.Members()
			if len(ms) != 3 || ms[2].Name != "n3" || ms[2].Incarnation <= oldInc {
				t.Errorf("%s: members %v, want n3 last with incarnation > %d", sn.name, ms, oldInc)
			}
		}
	})
	t.Run("after detection", func(t *testing.T) {
		s := newSim(t, 5, lan)
		nodes := s.addN(3)
		s.runUntil(2*time.Second, "all see three", s.allSee("n1,n2,n3"))
		v := nodes[0]
		s.crash(v)
		s.runUntil(detectionBound, "n1 declared failed", s.allSee("n2,n3"))
		s.restart(v)
		// n1 restarted: it is now the youngest, no longer the leader.
		s.runUntil(time.Second, "n1 back", s.allSee("n2,n3,n1"))
		for _, sn := range nodes[1:] {
			if sn.count(membership.Failed, v) != 1 || sn.count(membership.Joined, v) != 2 {
				t.Errorf("%s: Failed=%d Joined=%d for n1", sn.name, sn.count(membership.Failed, v), sn.count(membership.Joined, v))
			}
		}
	})
}

func TestSimRandomLossNoFalseFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("long simulation")
	}
	for _, tc := range []struct {
		nodes int
		seed  uint64
	}{{5, 6}, {16, 7}} {
		t.Run(fmt.Sprint(tc.nodes, "nodes"), func(t *testing.T) {
			if tc.nodes > 5 && raceEnabled {
				t.Skip("long single-goroutine simulation: skipped with -race")
			}
			s := newSim(t, tc.seed, membershiptest.Conditions{Loss: 0.3, Delay: time.Millisecond, Jitter: 3 * time.Millisecond})
			var want []string
			for i := range tc.nodes {
				s.add(fmt.Sprintf("n%d", i+1))
				want = append(want, fmt.Sprintf("n%d", i+1))
				s.run(10 * time.Millisecond)
			}
			s.runUntil(5*time.Second, "all see all", s.allSee(strings.Join(want, ",")))
			s.run(10 * time.Minute)
			var suspicions uint64
			for _, sn := range s.nodes {
				st := sn.node.Stats()
				suspicions += st.Suspicions
				if st.Failures != 0 || sn.count(membership.Failed, nil) != 0 {
					t.Errorf("%s declared %d members failed under 30%% loss", sn.name, st.Failures)
				}
				if got := sn.names(); got != strings.Join(want, ",") {
					t.Errorf("%s sees %s", sn.name, got)
				}
			}
			// 30 % loss silences a member for SuspectAfter now and then: the
			// confirmation step, not luck, is what kept failures at zero.
			if suspicions == 0 {
				t.Errorf("no suspicion in 10 minutes at 30%% loss: the test did not exercise confirmation")
			}
			t.Logf("10 simulated minutes, %d nodes, 30%% loss: %d suspicions, 0 failures", tc.nodes, suspicions)
		})
	}
}

func TestSimSilentSenderDeclaredFailed(t *testing.T) {
	s := newSim(t, 7, lan)
	nodes := s.addN(4)
	s.runUntil(2*time.Second, "all see four", s.allSee("n1,n2,n3,n4"))
	v := nodes[1]
	silenced := s.clock.Now()
	s.net.SetSenderConditions(v.addr, membershiptest.Conditions{Loss: 1})
	s.run(3 * time.Second)
	for _, sn := range s.others(v) {
		at, ok := sn.firstEvent(membership.Failed, v, silenced)
		if !ok || at.Sub(silenced) > detectionBound {
			t.Errorf("%s: n2 failed at %v (ok=%v) after silencing, want within %v", sn.name, at.Sub(silenced), ok, detectionBound)
		}
		if sn.count(membership.Failed, nil) != 1 {
			t.Errorf("%s: %d failures, want only n2", sn.name, sn.count(membership.Failed, nil))
		}
	}
	// The silenced node still hears everyone.
	if got := v.names(); got != "n1,n2,n3,n4" {
		t.Errorf("silenced n2 sees %s, want everyone", got)
	}
}

func TestSimDuplicationAndReordering(t *testing.T) {
	s := newSim(t, 8, membershiptest.Conditions{Duplicate: 0.5, Delay: 2 * time.Millisecond, Jitter: 120 * time.Millisecond})
	nodes := s.addN(4)
	s.runUntil(3*time.Second, "all see four", s.allSee("n1,n2,n3,n4"))
	s.run(time.Minute)
	for _, sn := range nodes {
		st := sn.node.Stats()
		if st.Failures != 0 {
			t.Errorf("%s: %d failures", sn.name, st.Failures)
		}
		if st.Replayed == 0 {
			t.Errorf("%s: duplicates were not refused (Replayed = 0)", sn.name)
		}
		for _, o := range nodes {
			if o != sn && sn.count(membership.Joined, o) != 1 {
				t.Errorf("%s: %d Joined for %s", sn.name, sn.count(membership.Joined, o), o.name)
			}
		}
	}
}

func TestSimPartitionAndHeal(t *testing.T) {
	s := newSim(t, 9, lan)
	nodes := s.addN(4)
	s.runUntil(2*time.Second, "all see four", s.allSee("n1,n2,n3,n4"))
	s.net.Partition([]netip.AddrPort{nodes[0].addr, nodes[1].addr}, []netip.AddrPort{nodes[2].addr, nodes[3].addr})
	s.run(2 * time.Second)
	want := map[string]string{"n1": "n1,n2", "n2": "n1,n2", "n3": "n3,n4", "n4": "n3,n4"}
	for _, sn := range nodes {
		if got := sn.names(); got != want[sn.name] {
			t.Errorf("partitioned %s sees %s, want %s", sn.name, got, want[sn.name])
		}
	}
	// Each side has its own leader: the oldest on its side.
	if l, _ := nodes[3].node.Leader(); l.Name != "n3" {
		t.Errorf("n4's leader in the partition = %s, want n3", l.Name)
	}
	s.net.Heal()
	s.runUntil(time.Second, "all see four after heal", s.allSee("n1,n2,n3,n4"))
	for _, sn := range nodes {
		if l, _ := sn.node.Leader(); l.Name != "n1" {
			t.Errorf("%s: leader %s after heal, want n1", sn.name, l.Name)
		}
	}
}

func TestSimDeterministic(t *testing.T) {
	run := func() []string {
		s := newSim(t, 10, membershiptest.Conditions{Loss: 0.3, Duplicate: 0.1, Delay: time.Millisecond, Jitter: 30 * time.Millisecond})
		nodes := s.addN(4)
		s.run(5 * time.Second)
		s.crash(nodes[3])
		s.run(3 * time.Second)
		return s.log
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Fatalf("two runs with the same seed differ:\n%v\n%v", a, b)
	}
	if len(a) < 10 {
		t.Fatalf("only %d events: %v", len(a), a)
	}
}

// A node that does not run for a while (CPU starvation, a GC pause, a suspended
// VM) must not declare everyone failed when it resumes, before reading the
// packets queued meanwhile.
func TestSimLocalStall(t *testing.T) {
	for _, tc := range []struct {
		stall, restall time.Duration
		othersFailIt   bool
	}{
		{900 * time.Millisecond, 0, false}, // under FailAfter: the others only suspect it
		{3 * time.Second, 0, true},         // over: the others rightly declare it failed
		// Stalled, then stalled again after one tick (which suspected everyone)
		// and before reading anything: the suspicions must not become failures.
		{1500 * time.Millisecond, 900 * time.Millisecond, true},
	} {
		t.Run(fmt.Sprint(tc.stall, "+", tc.restall), func(t *testing.T) {
			s := newSim(t, 14, lan)
			nodes := s.addN(4)
			s.runUntil(2*time.Second, "all see four", s.allSee("n1,n2,n3,n4"))
			v := nodes[1]
			v.frozenUntil = s.clock.Now().Add(tc.stall)
			v.restall = tc.restall
			s.run(tc.stall + tc.restall + 3*time.Second)
			if got := v.count(membership.Failed, nil); got != 0 {
				t.Errorf("stalled n2 declared %d members failed on resuming", got)
			}
			if v.node.Stats().Stalls == 0 {
				t.Errorf("stall not noticed")
			}
			for _, o := range s.others(v) {
				if failed := o.count(membership.Failed, v) > 0; failed != tc.othersFailIt {
					t.Errorf("%s declared n2 failed: %v, want %v", o.name, failed, tc.othersFailIt)
				}
			}
			s.runUntil(time.Second, "all see four after the stall", s.allSee("n1,n2,n3,n4"))
		})
	}
}

// When only the path from B to A is broken, A suspects B, but the other members
// still hear B and say so when asked: A keeps B as a suspected member instead of
// declaring it failed, and the observers do not disagree about who is in.
func TestSimWitnessesKeepReachableMemberAlive(t *testing.T) {
	s := newSim(t, 15, lan)
	nodes := s.addN(4)
	s.runUntil(2*time.Second, "all see four", s.allSee("n1,n2,n3,n4"))
	a, b := nodes[0], nodes[1]
	s.net.SetLinkConditions(b.addr, a.addr, membershiptest.Conditions{Loss: 1})
	s.run(30 * time.Second)
	if a.count(membership.Suspected, b) == 0 {
		t.Fatal("A never suspected B although it cannot hear it")
	}
	if a.count(membership.Failed, b) != 0 {
		t.Fatal("A declared B failed although the others hear it")
	}
	for _, m := range a.node.Members() {
		if m.ID == b.id && m.State != membership.StateSuspected {
			t.Errorf("B is %v at A, want suspected", m.State)
		}
	}
	s.net.ClearOverrides()
	s.run(time.Second)
	for _, m := range a.node.Members() {
		if m.ID == b.id && m.State != membership.StateAlive {
			t.Errorf("B is %v at A after the path healed, want alive", m.State)
		}
	}
	if a.count(membership.Updated, b) == 0 {
		t.Error("no Updated event when B was heard again")
	}
}

// A member that receives nothing while its packets still reach the others (a
// one-way cut: "deaf") declares every other member failed. Its heartbeats
// then say that it hears no one, and the others declare it failed in turn
// instead of keeping it as a live member that no connection can reach; they
// do not flap (no rejoin while it stays deaf), and when it hears again, it
// is a member again for everyone. With unicast seeds, the others keep
// heartbeating its address (learned from its deaf heartbeats), or a member
// that is not their seed would never hear them again.
func TestSimDeafMemberDeclaredFailed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seeds bool
	}{{"multicast", false}, {"unicast, n1 the only seed", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 16, lan)
			if tc.seeds {
				s.oneSeed()
			}
			nodes := s.addN(5)
			all := "n1,n2,n3,n4,n5"
			s.runUntil(5*time.Second, "all see five", s.allSee(all))
			v := nodes[2]
			deafAt := s.clock.Now()
			for _, o := range s.others(v) {
				s.net.SetLinkConditions(o.addr, v.addr, membershiptest.Conditions{Loss: 1})
			}
			s.run(15 * time.Second)
			for _, o := range s.others(v) {
				switch at, ok := o.firstEvent(membership.Failed, v, deafAt); {
				case !ok:
					t.Errorf("%s never declared deaf n3 failed", o.name)
				case at.Sub(deafAt) > 2*detectionBound+time.Second:
					t.Errorf("%s declared n3 failed %v after it went deaf, want within %v", o.name, at.Sub(deafAt), 2*detectionBound+time.Second)
				}
				if n := o.count(membership.Failed, nil); n != 1 {
					t.Errorf("%s: %d failures, want only n3's", o.name, n)
				}
				if n := o.count(membership.Joined, v); n != 1 {
					t.Errorf("%s: n3 joined %d times, want once (no flapping while it is deaf)", o.name, n)
				}
				if got := o.names(); got != "n1,n2,n4,n5" {
					t.Errorf("%s sees %s while n3 is deaf, want n1,n2,n4,n5", o.name, got)
				}
			}
			if got := v.names(); got != "n3" {
				t.Errorf("deaf n3 sees %s, want itself alone", got)
			}
			s.net.ClearOverrides()
			s.runUntil(5*time.Second, "all see five once n3 hears again", s.allSee(all))
		})
	}
}

// A deaf member that hears a claim of its ID (the only packets reaching it)
// refutes it with a heartbeat that still says it hears no one: the others,
// which declared it failed, do not take the refutation for a member alive
// again (it was sent without flagDeaf, and the deaf member flapped).
func TestSimDeafRefutationStaysDeaf(t *testing.T) {
	s := newSim(t, 16, lan)
	nodes := s.addN(5)
	s.runUntil(5*time.Second, "all see five", s.allSee("n1,n2,n3,n4,n5"))
	v := nodes[2]
	for _, o := range s.others(v) {
		s.net.SetLinkConditions(o.addr, v.addr, membershiptest.Conditions{Loss: 1})
	}
	s.runUntil(10*time.Second, "the others declare deaf n3 failed", func() bool {
		for _, o := range s.others(v) {
			if o.names() != "n1,n2,n4,n5" {
				return false
			}
		}
		return true
	})
	before := v.node.Local().Incarnation
	s.forge(s.attacker(), forgery(v, before+1, 1<<40), []*simNode{v})
	s.run(3 * time.Second)
	for _, o := range s.others(v) {
		if n := o.count(membership.Joined, v); n != 1 {
			t.Errorf("%s: n3 joined %d times, want once (its refutation said it is deaf)", o.name, n)
		}
	}
	if v.node.Local().Incarnation <= before+1 {
		t.Fatalf("n3's incarnation is %d after a claim of %d: it did not refute it", v.node.Local().Incarnation, before+1)
	}
}

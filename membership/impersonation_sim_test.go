package membership_test

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/membershiptest"
	"github.com/trellisrpc/trellis/nodeid"
)

// A holder of the cluster key forges packets bearing another member's ID. These
// tests play that member in the simulation: it sends from its own address, with
// the key, whatever a heartbeat can say.

const evilAddr = "evil:9000"

// attacker attaches the forger to the simulated network.
func (s *sim) attacker() *membershiptest.Endpoint {
	s.t.Helper()
	ep, err := s.net.Listen(netip.MustParseAddrPort("10.0.0.66:7947"), false)
	if err != nil {
		s.t.Fatal(err)
	}
	return ep
}

// forge sends f to every node in to.
func (s *sim) forge(ep *membershiptest.Endpoint, f membership.Forgery, to []*simNode) {
	b := f.Encode(membership.DefaultClusterLabel, testKey)
	for _, sn := range to {
		ep.WriteTo(b, sn.addr)
	}
}

// seesReal reports whether every other live node sees v as v is: its address,
// join time and current incarnation, and, if v is the oldest, as leader.
func (s *sim) seesReal(v *simNode, leader bool) func() bool {
	return func() bool {
		self := v.node.Local()
		for _, sn := range s.others(v) {
			m, ok := find(sn.node.Members(), v.id)
			if !ok || m.Addr != self.Addr || !m.JoinTime.Equal(self.JoinTime) || m.Incarnation != self.Incarnation {
				return false
			}
			if l, _ := sn.node.Leader(); leader && (l.ID != v.id || l.Addr != self.Addr) {
				return false
			}
		}
		return true
	}
}

func find(ms []membership.Member, id nodeid.ID) (membership.Member, bool) {
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	return membership.Member{}, false
}

// known returns the incarnation of v that node sn currently believes.
func known(sn *simNode, v *simNode) uint64 {
	m, _ := find(sn.node.Members(), v.id)
	return m.Incarnation
}

// sawForged reports whether any node other than v ever published an event
// showing v at the forger's address.
func (s *sim) sawForged(v *simNode) bool {
	for _, sn := range s.others(v) {
		for _, ev := range sn.events {
			if ev.Member.ID == v.id && ev.Member.Addr == evilAddr {
				return true
			}
		}
	}
	return false
}

// A member's ID claimed by a forger: refused outright when absurd (2^64−1), held
// while the real member is heard from its own address, and refuted by the real
// member within a second, which keeps its address, its join time and so its
// leadership.
func TestSimImpersonationRefuted(t *testing.T) {
	skew := membership.DefaultMaxClockSkew
	for _, tc := range []struct {
		name     string
		forge    func(s *sim, v *simNode, seq uint64) membership.Forgery
		toVictim bool // the victim hears the forgery itself, not only the others
		repeat   int  // forgeries sent, one per 100 ms, each outbidding the last
		refused  bool // observers must never show the forgery at all
	}{
		{name: "incarnation 2^64-1", toVictim: true, refused: true,
			forge: func(s *sim, v *simNode, seq uint64) membership.Forgery {
				return forgery(v, math.MaxUint64, seq)
			}},
		{name: "incarnation 2^64-1 to the others only", refused: true,
			forge: func(s *sim, v *simNode, seq uint64) membership.Forgery {
				return forgery(v, math.MaxUint64, seq)
			}},
		{name: "next incarnation",
			forge: func(s *sim, v *simNode, seq uint64) membership.Forgery {
				return forgery(v, v.node.Local().Incarnation+1, seq)
			}},
		{name: "next incarnation, victim hears it", toVictim: true,
			forge: func(s *sim, v *simNode, seq uint64) membership.Forgery {
				return forgery(v, v.node.Local().Incarnation+1, seq)
			}},
		{name: "highest plausible incarnation",
			forge: func(s *sim, v *simNode, seq uint64) membership.Forgery {
				return forgery(v, uint64(s.clock.Now().Add(skew).UnixNano())-1, seq)
			}},
		{name: "same life, sequence 2^64-1, other address",
			forge: func(s *sim, v *simNode, seq uint64) membership.Forgery {
				return forgery(v, v.node.Local().Incarnation, math.MaxUint64)
			}},
		{name: "same life, sequence 2^64-1, leaving",
			forge: func(s *sim, v *simNode, seq uint64) membership.Forgery {
				f := forgery(v, v.node.Local().Incarnation, math.MaxUint64)
				f.Leaving, f.Addr = true, v.name+":9000"
				return f
			}},
		{name: "outbidding every refutation for 2 s", repeat: 20,
			forge: func(s *sim, v *simNode, seq uint64) membership.Forgery {
				return forgery(v, known(s.nodes[1], v)+1, seq)
			}},
		{name: "at the clock ceiling for 2 s", repeat: 20,
			forge: func(s *sim, v *simNode, seq uint64) membership.Forgery {
				return forgery(v, uint64(s.clock.Now().Add(skew).UnixNano()), seq)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 31, lan)
			nodes := s.addN(3)
			v := nodes[0] // the oldest: the leader
			s.runUntil(2*time.Second, "all see three", s.allSee("n1,n2,n3"))
			ep := s.attacker()
			to := s.others(v)
			if tc.toVictim {
				to = nodes
			}
			before := map[*simNode]membership.Stats{}
			for _, sn := range nodes {
				before[sn] = sn.node.Stats()
			}
			for i := range max(tc.repeat, 1) {
				if i > 0 {
					s.run(100 * time.Millisecond)
				}
				s.forge(ep, tc.forge(s, v, uint64(1000+i)), to)
				if inc := v.node.Local().Incarnation; inc > uint64(s.clock.Now().Add(skew).UnixNano())+1 {
					t.Fatalf("the victim's incarnation %d was driven beyond the clock ceiling", inc)
				}
			}
			real := s.seesReal(v, true)
			restored := func() bool {
				return real() && (tc.refused || v.node.Stats().Impersonations > before[v].Impersonations)
			}
			s.run(5 * time.Millisecond) // the forgery arrives (lan: at most 3 ms)
			took := s.runUntil(time.Second, "n1 refuted and every member sees n1 as it is, and as leader", restored)
			t.Logf("restored %v after the last forgery; victim incarnation %d, impersonations %d",
				took, v.node.Local().Incarnation, v.node.Stats().Impersonations)
			// Sent from another address than the victim's, no forgery is ever
			// shown, and none makes an observer declare the victim failed or
			// gone (which would abort its connections and forget its
			// references).
			if s.sawForged(v) {
				t.Error("an observer showed the forged address")
			}
			for _, sn := range s.others(v) {
				if n := sn.count(membership.Failed, v) + sn.count(membership.Left, v); n != 0 {
					t.Errorf("%s: %d Failed or Left events about the victim", sn.name, n)
				}
				if st := sn.node.Stats(); tc.refused && st.Implausible == before[sn].Implausible {
					t.Errorf("%s: forgery not counted as implausible", sn.name)
				}
			}
			// The real member keeps being heard: nobody declares it failed later.
			failed := map[*simNode]int{}
			for _, sn := range s.others(v) {
				failed[sn] = sn.count(membership.Failed, v)
			}
			s.run(3 * time.Second)
			if !s.seesReal(v, true)() {
				t.Error("the real member was lost again after the attack")
			}
			for _, sn := range s.others(v) {
				if n := sn.count(membership.Failed, v); n != failed[sn] {
					t.Errorf("%s: the victim failed %d times after the attack", sn.name, n-failed[sn])
				}
			}
		})
	}
}

// forgery claims v's ID with incarnation inc, v's join time, from another address.
func forgery(v *simNode, inc, seq uint64) membership.Forgery {
	return membership.Forgery{ID: v.id, Inc: inc, Seq: seq, Start: v.node.Local().JoinTime,
		Name: v.name, Addr: evilAddr}
}

// Real restarts are still accepted: with a new incarnation and a new join time
// (the restarted node is then the youngest), including after an attack made the
// previous life's incarnation higher than the restarted node's default one.
func TestSimRestartAccepted(t *testing.T) {
	for _, attacked := range []bool{false, true} {
		name := "plain"
		if attacked {
			name = "after impersonation"
		}
		t.Run(name, func(t *testing.T) {
			s := newSim(t, 32, lan)
			nodes := s.addN(3)
			v := nodes[0]
			s.runUntil(2*time.Second, "all see three", s.allSee("n1,n2,n3"))
			if attacked {
				f := forgery(v, uint64(s.clock.Now().Add(membership.DefaultMaxClockSkew).UnixNano())-1, 99)
				s.forge(s.attacker(), f, s.others(v))
				s.run(10 * time.Millisecond)
				s.runUntil(time.Second, "refuted", s.seesReal(v, true))
				if v.node.Local().Incarnation <= uint64(s.clock.Now().UnixNano()) {
					t.Fatal("the attack did not raise the incarnation above the clock")
				}
			}
			oldJoin := v.node.Local().JoinTime
			s.crash(v)
			s.run(50 * time.Millisecond)
			s.boot(v, 0) // default incarnation: the start time, below the attacked life's
			if !v.node.Local().JoinTime.After(oldJoin) {
				t.Fatal("restart kept the join time")
			}
			took := s.runUntil(time.Second, "the restarted member is seen with its new life", s.seesReal(v, false))
			t.Logf("restart accepted after %v", took)
			for _, sn := range s.others(v) {
				if l, _ := sn.node.Leader(); l.ID != nodes[1].id {
					t.Errorf("%s: leader %v, want n2 (n1 restarted: now the youngest)", sn.name, l)
				}
			}
		})
	}
}

// Join times and incarnations that no honest member could send are refused.
func TestSimImplausibleRefused(t *testing.T) {
	const stranger = nodeid.ID(0x5eed)
	for _, tc := range []struct {
		name  string
		forge func(s *sim, v *simNode) membership.Forgery
	}{
		{"new life joined before the first life", func(s *sim, v *simNode) membership.Forgery {
			f := forgery(v, v.node.Local().Incarnation+1, 1)
			f.Start = f.Start.Add(-time.Hour)
			return f
		}},
		{"same life, older join time", func(s *sim, v *simNode) membership.Forgery {
			f := forgery(v, v.node.Local().Incarnation, 1<<40)
			f.Start, f.Addr = f.Start.Add(-time.Hour), v.name+":9000"
			return f
		}},
		{"new member joining in the future", func(s *sim, v *simNode) membership.Forgery {
			return membership.Forgery{ID: stranger, Inc: 1, Seq: 1, Start: s.clock.Now().Add(time.Hour), Name: "x", Addr: evilAddr}
		}},
		{"new member with incarnation 2^64-1", func(s *sim, v *simNode) membership.Forgery {
			return membership.Forgery{ID: stranger, Inc: math.MaxUint64, Seq: 1, Start: s.clock.Now(), Name: "x", Addr: evilAddr}
		}},
		{"new member joined before 1970", func(s *sim, v *simNode) membership.Forgery {
			return membership.Forgery{ID: stranger, Inc: 1, Seq: 1, Start: time.Unix(-1, 0), Name: "x", Addr: evilAddr}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 33, lan)
			nodes := s.addN(3)
			v := nodes[0]
			s.runUntil(2*time.Second, "all see three", s.allSee("n1,n2,n3"))
			before := map[*simNode]membership.Stats{}
			for _, sn := range nodes {
				before[sn] = sn.node.Stats()
			}
			s.forge(s.attacker(), tc.forge(s, v), s.others(v))
			s.run(20 * time.Millisecond)
			for _, sn := range s.others(v) {
				if st := sn.node.Stats(); st.Implausible != before[sn].Implausible+1 {
					t.Errorf("%s: implausible %d → %d, want +1", sn.name, before[sn].Implausible, st.Implausible)
				}
				if _, ok := find(sn.node.Members(), stranger); ok {
					t.Errorf("%s accepted the stranger", sn.name)
				}
				for _, ev := range sn.events {
					if ev.Member.ID == v.id && !ev.Member.JoinTime.Equal(v.node.Local().JoinTime) {
						t.Errorf("%s: event %v shows the forged join time", sn.name, ev)
					}
				}
			}
			s.runUntil(time.Second, "every member sees n1 as it is", s.seesReal(v, true))
			if s.sawForged(v) {
				t.Error("an observer showed the forged address")
			}
		})
	}
}

// A conflict report whose incarnation is at or above the clock ceiling is not
// outbid: the victim's incarnation cannot be driven to 2^64−1 through reports.
func TestSimAbsurdConflictNotOutbid(t *testing.T) {
	s := newSim(t, 34, lan)
	nodes := s.addN(2)
	v := nodes[0]
	s.runUntil(2*time.Second, "both see both", s.allSee("n1,n2"))
	inc := v.node.Local().Incarnation
	f := membership.Forgery{ID: nodes[1].id, Inc: nodes[1].inc, Seq: 1 << 40, Conflict: true,
		Target: v.id, TargetInc: math.MaxUint64 - 1}
	s.forge(s.attacker(), f, []*simNode{v})
	s.run(100 * time.Millisecond)
	if got := v.node.Local().Incarnation; got != inc {
		t.Errorf("incarnation %d → %d after an absurd conflict report", inc, got)
	}
	if v.node.Stats().Impersonations != 0 {
		t.Error("absurd report counted as refuted")
	}
}

// New refuses an incarnation that observers would refuse, and a negative skew.
func TestConfigPlausibility(t *testing.T) {
	clock := membershiptest.NewFakeClock(simEpoch)
	ceiling := uint64(simEpoch.Add(membership.DefaultMaxClockSkew).UnixNano())
	for _, tc := range []struct {
		name string
		cfg  membership.Config
		ok   bool
	}{
		{"counter incarnation", membership.Config{Incarnation: 7}, true},
		{"at the ceiling", membership.Config{Incarnation: ceiling}, true},
		{"above the ceiling", membership.Config{Incarnation: ceiling + 1}, false},
		{"2^64-1", membership.Config{Incarnation: math.MaxUint64}, false},
		{"wider skew admits it", membership.Config{Incarnation: ceiling + 1, MaxClockSkew: time.Minute}, true},
		{"negative skew", membership.Config{MaxClockSkew: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Keys, cfg.Clock, cfg.DisableMulticast, cfg.Seeds = [][]byte{testKey}, clock, true, []string{"127.0.0.1:1"}
			n, err := membership.New(cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
			if n != nil {
				n.Close()
			}
		})
	}
}

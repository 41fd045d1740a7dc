//go:build unix

package membership_test

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
)

// TestFiguresScale simulates the built-in backend at N = 16, 64, 256 and
// 1,000 (the deterministic single-goroutine simulation, default timing, LAN
// delays) with multicast and with unicast seeds (every node given every
// other as a seed, so the steady state is reached at once), and prints per
// node the packets and bytes sent and received per second, the CPU per node
// (the simulation's own CPU time per simulated second, divided by N: the
// cost of sending, authenticating and handling the packets), and the
// detection time of a crash at every observer. The window is 5 s of
// simulated time (1 s at 1,000 nodes, where a node receives 5,000 packets a
// second). It runs only with TRELLIS_FIGURES=1 and without -race
// (membership/memberlist/FIGURES.md); N = 1,000 takes about 10 minutes per
// mode on this machine:
//
//	TRELLIS_FIGURES=1 go test -run TestFiguresScale -v -timeout 90m ./membership
func TestFiguresScale(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") != "1" || raceEnabled {
		t.Skip("set TRELLIS_FIGURES=1, without -race, to measure")
	}
	sizes := []int{16, 64, 256, 1000}
	if v := os.Getenv("TRELLIS_FIGURES_N"); v != "" {
		var n int
		fmt.Sscan(v, &n)
		sizes = []int{n}
	}
	for _, unicast := range []bool{false, true} {
		for _, n := range sizes {
			mode := "multicast"
			if unicast {
				mode = "unicast"
			}
			t.Run(fmt.Sprintf("%s/%d", mode, n), func(t *testing.T) { scaleBuiltin(t, n, unicast) })
		}
	}
}

func scaleBuiltin(t *testing.T, n int, unicast bool) {
	s := newSim(t, 41, lan)
	s.quiet, s.subBuffer = true, 64
	if unicast {
		seeds := make([]string, n)
		for i := range seeds {
			seeds[i] = simAddr(i + 1).String()
		}
		s.mutate = func(c *membership.Config) {
			c.DisableMulticast = true
			c.Seeds = seeds
		}
	}
	for i := range n {
		s.add(fmt.Sprintf("n%d", i+1))
	}
	s.runUntil(30*time.Second, "everyone sees everyone", func() bool {
		for _, sn := range s.nodes {
			sn.events = sn.events[:0] // Joined events: not needed
		}
		for _, sn := range s.nodes {
			if sn.node.SimLen() != n {
				return false
			}
		}
		return true
	})
	s.run(time.Second)
	window := 5 * time.Second
	if n >= 1000 {
		window = time.Second
	}
	before := totals(s)
	cpu0 := cpuTime()
	s.run(window)
	cpu := cpuTime() - cpu0
	after := totals(s)
	per := func(a, b uint64) float64 { return float64(a-b) / float64(n) / window.Seconds() }
	cpuPerNode := cpu.Seconds() / window.Seconds() / float64(n)

	// Detection: crash members one at a time; each observer's delay from
	// the crash to its Failed event.
	kills := 4
	if n >= 1000 {
		kills = 1
	}
	var took []time.Duration
	for k := range kills {
		for _, sn := range s.nodes {
			sn.events = sn.events[:0]
		}
		victim := s.nodes[1+k*(n-1)/kills]
		at := s.clock.Now()
		s.crash(victim)
		others := s.others(victim)
		s.runUntil(5*time.Second, "every observer declares the victim failed", func() bool {
			for _, o := range others {
				if _, ok := o.firstEvent(membership.Failed, victim, at); !ok {
					return false
				}
			}
			return true
		})
		for _, o := range others {
			ft, _ := o.firstEvent(membership.Failed, victim, at)
			took = append(took, ft.Sub(at))
		}
		s.run(time.Duration(k*37%200) * time.Millisecond) // another phase for the next kill
	}
	slices.Sort(took)
	mode := "multicast"
	if unicast {
		mode = "unicast"
	}
	t.Logf("built-in %-9s N=%4d: per node sent %6.0f pkt/s %8.0f B/s, received %6.0f pkt/s %8.0f B/s, CPU %.4f core; detection p50 %v p99 %v max %v (%d observations)",
		mode, n, per(after.ps, before.ps), per(after.bs, before.bs), per(after.pr, before.pr), per(after.br, before.br), cpuPerNode,
		took[len(took)/2].Round(time.Millisecond), took[len(took)*99/100].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), len(took))
}

type traffic struct{ ps, bs, pr, br uint64 }

func totals(s *sim) traffic {
	var tr traffic
	for _, sn := range s.nodes {
		if !sn.up {
			continue
		}
		st := sn.node.Stats()
		tr.ps += st.PacketsSent
		tr.bs += st.BytesSent
		tr.pr += st.PacketsReceived
		tr.br += st.BytesReceived
	}
	return tr
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

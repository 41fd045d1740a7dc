package membership_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
)

// TestSimHeartbeatBandwidth measures what one node sends and receives per second
// in a steady cluster of 16 and 64 nodes, with multicast and with unicast seeds
// (FIGURES.md). With multicast a node sends the same whatever N; with unicast it
// sends one copy per member.
func TestSimHeartbeatBandwidth(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("long single-goroutine simulation: skipped with -short and -race")
	}
	const window = 20 * time.Second
	sent := map[string]float64{}
	for _, tc := range []struct {
		n       int
		unicast bool
	}{{16, false}, {64, false}, {16, true}, {64, true}} {
		mode := "multicast"
		if tc.unicast {
			mode = "unicast"
		}
		key := fmt.Sprintf("%s/%d", mode, tc.n)
		t.Run(key, func(t *testing.T) {
			s := newSim(t, 21, lan)
			if tc.unicast {
				s.mutate = func(c *membership.Config) {
					c.DisableMulticast = true
					c.Seeds = []string{simAddr(1).String()}
					if c.Name == "n1" {
						c.Seeds = []string{simAddr(2).String()}
					}
				}
			}
			for i := range tc.n {
				s.add(fmt.Sprintf("n%d", i+1))
			}
			s.runUntil(20*time.Second, "everyone sees everyone", func() bool {
				for _, sn := range s.nodes {
					if len(sn.node.Members()) != tc.n {
						return false
					}
				}
				return true
			})
			s.run(2 * time.Second)
			var before, after uint64
			var rbefore, rafter uint64
			for _, sn := range s.nodes {
				st := sn.node.Stats()
				before, rbefore = before+st.BytesSent, rbefore+st.BytesReceived
			}
			s.run(window)
			for _, sn := range s.nodes {
				st := sn.node.Stats()
				after, rafter = after+st.BytesSent, rafter+st.BytesReceived
				if st.Failures != 0 {
					t.Errorf("%s: %d failures", sn.name, st.Failures)
				}
			}
			perNode := float64(after-before) / float64(tc.n) / window.Seconds()
			recv := float64(rafter-rbefore) / float64(tc.n) / window.Seconds()
			sent[key] = perNode
			t.Logf("%s N=%d: per node %.0f B/s sent, %.0f B/s received (UDP payload)", mode, tc.n, perNode, recv)
		})
	}
	// Multicast: 5 heartbeats a second, whatever N.
	if m16, m64 := sent["multicast/16"], sent["multicast/64"]; math.Abs(m64-m16)/m16 > 0.05 || m16 > 5*100 {
		t.Errorf("multicast: %.0f B/s at N=16, %.0f at N=64: want about 5 × heartbeat size at both", m16, m64)
	}
	// Unicast: one copy per other member (plus peers messages), so about 63/15 times more.
	if u16, u64 := sent["unicast/16"], sent["unicast/64"]; u64/u16 < 3.5 || u64/u16 > 5 {
		t.Errorf("unicast: %.0f B/s at N=16, %.0f at N=64: ratio %.1f, want about 63/15", u16, u64, u64/u16)
	}
}

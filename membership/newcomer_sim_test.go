package membership_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
)

// msgPeers is the message type of a peers message (the fourth byte of every
// packet, see wire.go).
const msgPeers = 4

// A newcomer among members of one seed costs the cluster its greetings and
// its seed's announcement, not a second announcement of every member that
// greeted it. Before, the newcomer announced the 31 members that greeted it
// (and its seed) to all its targets: 35 peers messages, 10,115 B in its first
// second at N = 32, and 39.9 KB of peers messages from everyone against
// 27.7 KB in a quiet second; now none from the newcomer and 30.3 KB from
// everyone, for the same heartbeats. Three rules make it (engine.join,
// onPeers, tellNewcomers): the seed tells the newcomer its members; a member
// met at a seed is not announced; a member that a seed names is not
// announced (at N = 8 here a member announces the newcomer again without
// it, the newcomer's greeting having overtaken the seed's announcement).
func TestSimNewcomerNotReannounced(t *testing.T) {
	for _, n := range []int{8, 32} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newSim(t, 5, lan)
			s.oneSeed()
			for i := range n {
				s.add(fmt.Sprintf("n%d", i+1))
				s.run(time.Millisecond)
			}
			everyone := func(want int) func() bool {
				return func() bool {
					for _, sn := range s.nodes {
						if sn.node.SimLen() != want {
							return false
						}
					}
					return true
				}
			}
			s.runUntil(5*time.Second, "everyone sees everyone", everyone(n))
			s.run(3 * time.Second)

			// Peers messages and heartbeats sent in a second, by the
			// newcomer and by the others.
			type tally struct{ peers, peersBytes, newcomerPeers, newcomerPeersBytes int }
			measure := func(newcomer netip.AddrPort, during func()) tally {
				var c tally
				s.capture = func(to, from netip.AddrPort, p []byte) {
					switch {
					case p[3] != msgPeers:
					case from == newcomer:
						c.newcomerPeers++
						c.newcomerPeersBytes += len(p)
					default:
						c.peers++
						c.peersBytes += len(p)
					}
				}
				defer func() { s.capture = nil }()
				during()
				return c
			}
			quiet := measure(netip.AddrPort{}, func() { s.run(time.Second) })
			join := measure(simAddr(n+1), func() {
				s.add("newcomer")
				took := s.runUntil(time.Second, "everyone sees the newcomer", everyone(n+1))
				if limit := membership.DefaultInterval / 2; took > limit {
					t.Errorf("the newcomer met everyone after %v, want within %v", took, limit)
				}
				s.run(time.Second - took)
			})
			t.Logf("N=%d: quiet second: %d peers messages (%d B); newcomer's first second: %d peers messages (%d B) from the others, %d (%d B) from the newcomer",
				n, quiet.peers, quiet.peersBytes, join.peers, join.peersBytes, join.newcomerPeers, join.newcomerPeersBytes)
			// The newcomer's own peers messages are at most its regular
			// gossip: peersFanout messages of up to 16 entries (289 B).
			if join.newcomerPeersBytes > 3*289 {
				t.Errorf("the newcomer sent %d peers messages (%d B) in its first second, want at most its regular gossip (3 messages, 867 B)",
					join.newcomerPeers, join.newcomerPeersBytes)
			}
			// The others: their regular gossip (each message perhaps an
			// entry, 15 B, longer: the newcomer's), the seed's announcement
			// (a 64 B message per member) and its list of members to the
			// newcomer (⌈n/16⌉ messages).
			if extra, limit := join.peersBytes-quiet.peersBytes, 15*quiet.peers+64*n+289*(n/16+1); extra > limit {
				t.Errorf("the others sent %d B more peers messages than in a quiet second, want at most %d", extra, limit)
			}
		})
	}
}

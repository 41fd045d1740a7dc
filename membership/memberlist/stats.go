package memberlist

import (
	"strings"
	"sync/atomic"

	"github.com/trellisrpc/trellis/membership"
)

// stats counts what the node can tell of the membership's work (see Stats).
type stats struct {
	suspicions, failures, refutations atomic.Uint64
	forged, malformed, foreign        atomic.Uint64
}

// Stats returns what the node counted of the membership's work since it
// was made: the members it suspected, declared failed, and found alive
// again while suspected; and the packets and streams memberlist refused,
// as its log reports them: forged (no key of the ring decrypts them),
// malformed (they do not decode), or of another cluster (another
// ClusterLabel). memberlist keeps no count of the packets it sends and
// receives per node: PacketsSent, PacketsReceived and their bytes stay 0,
// as do the figures that only the built-in protocol has (Replayed,
// Implausible, Impersonations and the like).
func (n *Node) Stats() membership.Stats {
	s := &n.stats
	return membership.Stats{
		Suspicions: s.suspicions.Load(), Failures: s.failures.Load(), Refutations: s.refutations.Load(),
		Forged: s.forged.Load(), Malformed: s.malformed.Load(), ForeignCluster: s.foreign.Load(),
	}
}

// refusal returns the counter of a message of memberlist's log that
// reports a packet or stream it refused, or nil for any other message.
func (s *stats) refusal(msg string) *atomic.Uint64 {
	rest, ok := strings.CutPrefix(msg, "memberlist: ")
	if !ok {
		return nil
	}
	switch {
	case strings.HasPrefix(rest, "Decrypt packet failed"),
		strings.HasPrefix(rest, "failed to receive: ") && strings.Contains(rest, "decrypt"):
		return &s.forged
	case strings.HasPrefix(rest, "discarding packet with unacceptable label"),
		strings.HasPrefix(rest, "discarding stream with unacceptable label"):
		return &s.foreign
	case strings.HasPrefix(rest, "Failed to decode "),
		strings.HasPrefix(rest, "Failed to decompress payload"),
		strings.HasPrefix(rest, "Got invalid checksum"),
		strings.HasPrefix(rest, "missing message type byte"),
		strings.HasPrefix(rest, "msg type ("),
		strings.HasPrefix(rest, "Message type ("),
		strings.HasPrefix(rest, "Received invalid msgType"),
		strings.HasPrefix(rest, "unexpected double packet label header"),
		strings.HasPrefix(rest, "unexpected double stream label header"):
		return &s.malformed
	}
	return nil
}

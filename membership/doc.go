// Package membership finds the nodes of a Trellis cluster, notices quickly and
// correctly when one dies, and names the leader: the oldest live member. It knows
// nothing of RPC.
//
// # Use
//
//	node, err := membership.New(membership.Config{
//		Name: "node1", Addr: "10.0.0.1:7001", // Addr: the RPC address others will dial
//		Keys: [][]byte{clusterKey},           // shared by the cluster, ≥ 16 bytes
//	})
//	sub := node.Subscribe(0)                  // before Start, to see every event
//	err = node.Start(ctx)
//	for {
//		ev, err := sub.Next(ctx)              // Joined, Updated, Suspected, Failed, Left, LeaderChanged
//		...
//	}
//	node.Leave(ctx)                           // others see Left at once
//
// Members returns the live members ordered by join time then ID, Leader the first
// of them. *Node implements Discovery, the interface the rest of Trellis uses, so a
// different backend (hashicorp/memberlist, say) can replace it without touching
// callers.
//
// # Discovery
//
// Every Interval (200 ms) a node sends a heartbeat — ID, name, RPC address, start
// time, incarnation, sequence number, up to MaxMetaLen bytes of metadata — to the
// IPv4 multicast group DefaultGroup:DefaultPort (239.77.77.77:7946, TTL 1, on
// Config.Interface or the interface the routing table picks). Where multicast is
// unavailable (clouds, containers), Config.Seeds lists unicast addresses
// (default port DefaultUnicastPort, 7947); heartbeats go to the seeds and to every
// member heard or learned, and every 5 intervals each node tells 3 random unicast
// targets the addresses of 16 of the members it hears, taken in turn (a peers
// message), so that with a single seed every node soon heartbeats every other, at
// a gossip cost per node that does not grow with N. The same detector runs on
// both. Unicast heartbeating costs N-1 packets per interval per node; multicast
// costs one.
//
// # Authentication
//
// Every packet carries a 128-bit HMAC-SHA256 tag computed over the cluster label
// and the packet with the first key of the keyring; every key of the ring is
// accepted, so keys rotate without downtime (Node.SetKeys). A 4-byte tag derived
// from the label tells a foreign cluster's packet (counted in
// Stats.ForeignCluster) from a forgery (Stats.Forged). Each sender's sequence
// numbers pass a 64-wide anti-replay window, and a lower incarnation than known is
// refused (Stats.Replayed); the window of a failed or departed member is kept for
// TombstoneTTL (10 min) so that a replay cannot resurrect it. A replay older than
// that of a member that is gone can make it reappear for at most FailAfter.
// Malformed packets are dropped (Stats.Malformed): the decoder checks every length
// against the packet and never allocates.
//
// # Failure detection
//
// Each node keeps, per member, the time of its freshest evidence of life. A member
// silent for SuspectAfter (4 intervals, 800 ms) is Suspected: the node probes it
// directly every half interval and asks ProbeFanout (3) other members whether
// they hear it; a witness answers with the age of its own freshest evidence, which
// postpones the verdict but only a packet from the member itself clears the
// suspicion (Updated, back to StateAlive). The member is declared Failed when
// nobody has had evidence of it for FailAfter (1.2 s) and the suspicion has lasted
// at least two intervals (so a local stall makes the node probe, not fail
// everyone). A dead node is therefore declared failed by every observer within
// FailAfter plus one check period (50 ms) of its last heartbeat: ≤ 1.25 s, inside
// the 1.5 s promise. Random loss rarely silences a member for 800 ms from one
// observer and practically never from all its witnesses too, so observers do not
// disagree (see the tests and FIGURES.md for 30 % loss).
//
// The promise assumes the observer runs. When a node finds that it has not run
// for more than four check periods (CPU starvation, a long pause, a suspended VM:
// Stats.Stalls), the time it lost is not counted as its members' silence,
// because their packets are still waiting unread in its socket; a member that
// really died meanwhile is declared failed that much later.
//
// A graceful Leave sends the leave three times and is seen as Left within a
// network delay. A restart is told apart from a late packet by its incarnation
// (Config.Incarnation, default the start time in nanoseconds): when a member
// with a known ID appears with a higher incarnation, the old life ends with a
// Failed event and the new one begins with Joined; packets of the old life are
// then refused. A member declared failed that is heard again with the same
// incarnation (a healed partition or cable) simply Joins again, keeping its join
// time and so its place in the order.
//
// # Leader and partitions
//
// The leader is the oldest live member (join time, then smallest ID); suspected
// members are still live. The join time is the start time each member advertises
// itself, so all observers order members identically (up to clock skew between
// hosts). In a partition each side declares the other side failed and follows its
// own oldest member: membership alone can yield two leaders, one per side. The
// topology layer adds a majority rule on top (a leader acts only while it sees a
// majority of the last agreed membership). After the partition heals, members
// rejoin with their original join time and everyone follows the global oldest
// member again.
//
// # Events
//
// Subscriptions never block the detector: each has a bounded queue; when it is
// full the oldest event is dropped and the next delivered event carries the number
// dropped in Event.Missed, a signal to reconcile with Members.
//
// # Testing
//
// Time (Clock) and the network (Transport) are injectable; package
// membershiptest provides a fake clock and an in-memory network with loss, delay,
// duplication, reordering and partitions.
package membership

// Package membership finds the nodes of a Trellis cluster, notices quickly and
// correctly when one dies, and names the leader: the oldest live member. It knows
// nothing of RPC.
//
// # Use
//
//	node, err := membership.New(membership.Config{
//		Name: "node1", Addr: "10.0.0.1:7001", // Addr: the RPC address others will dial
//		Keyring: ring,                        // keyring.New(clusterKey): shared by the cluster, ≥ 16 bytes
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
// a gossip cost per node that does not grow with N. A newcomer is met faster
// than that: the seed it heartbeats answers at once and, at its next tick,
// tells every member of it, who greet it with a heartbeat, and tells it every
// member, whom it greets, so members that share a seed meet in a few network
// delays. A change of metadata (SetMeta) also goes out at once, not at the
// next interval. The same detector runs on
// both. Unicast heartbeating costs N-1 packets per interval per node; multicast
// costs one.
//
// # Cluster size
//
// Whatever the transport, each node receives N−1 heartbeats per interval and its
// detector walks every member at each tick. Measured in simulation
// (membership/memberlist/FIGURES.md): a node takes in 1,280 packets (94 KB) a
// second at 256 members and 5,000 (369 KB) at 1,000, its CPU growing from
// 0.4–0.5 % to 3.4–4.6 % of a core before socket costs, while detection stays
// at 1.25 s (p99). This backend is the right choice up to about a hundred
// members on one network; beyond, use a gossip backend (package
// membership/memberlist: 2 packets a second per node at any size, detection in
// 9.7–14 s).
//
// # Authentication
//
// Every packet carries a 128-bit HMAC-SHA256 tag computed over the cluster label
// and the packet with the first key of the keyring; every key of the ring is
// accepted, so keys rotate without downtime (Node.SetKeys, or Set on the
// *keyring.Ring shared with the RPC transport, which rotates both). A 4-byte tag derived
// from the label tells a foreign cluster's packet (counted in
// Stats.ForeignCluster) from a forgery (Stats.Forged). Each sender's sequence
// numbers pass a 64-wide anti-replay window, and a lower incarnation than known is
// refused (Stats.Replayed); the window of a failed or departed member is kept for
// TombstoneTTL (10 min) so that a replay cannot resurrect it. A replay older than
// that of a member that is gone can make it reappear for at most FailAfter.
// Malformed packets are dropped (Stats.Malformed): the decoder checks every length
// against the packet and never allocates. What the key does and does not protect
// against is under Trust below.
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
// A member that hears nothing while its own packets still arrive (a one-way
// cut, a broken receive path, a firewall dropping what comes in: "deaf")
// declares every other member failed; from then on its heartbeats say that it
// hears no member, and the others do not count them as evidence of life: they
// declare it failed within about 2.5 s of the cut, as they would a silent
// member, instead of keeping a member that no connection reaches. They keep
// heartbeating its address, and once it hears again it is a member for
// everyone within a few intervals. A member that was deaf from its start, or
// hears only some of the others, is not detected so.
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
// with a known ID appears with a higher incarnation (from another address only
// once the old life has been silent for two intervals, see Trust), the old life
// ends with a Failed event and the new one begins with Joined; packets of the old life are
// then refused. A member declared failed that is heard again with the same
// incarnation (a healed partition or cable) simply Joins again, keeping its join
// time and so its place in the order. A restarted node whose incarnation is
// lower than one the others know (its previous life raised its own to refute an
// impostor, see Trust, or Config.Incarnation went down) is told so in a conflict
// report when they refuse its first heartbeat, and raises its incarnation above
// theirs: the restart is accepted within a heartbeat or two.
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
// # Trust
//
// The cluster key makes a member; nothing finer is authenticated: every holder
// of the key can sign any packet, under any member's ID.
//
// Without the key, a program that reaches the port can do nothing but drop,
// delay, duplicate or reorder packets (which a network can do anyway: a member
// whose packets do not arrive is declared failed). Its own packets are refused
// (Stats.Forged, ForeignCluster, Malformed); captured packets replayed are
// refused (Stats.Replayed) as above. A replayed packet can make a node answer
// with one small conflict report, at most one per member per interval, to the
// replay's source address.
//
// A holder of the key (a member, or whoever obtained its key) is a member, and
// can do what a member does, under IDs of its own: join as many members as
// MaxMembers allows, with any name, RPC address, metadata and a join time as old
// as it likes, which makes it the leader; membership elects, it does not vet. It
// can also forge packets of other members: keep a dead member looking alive for
// as long as it sends, announce another member's leave or change its metadata
// (both undone by the member's next heartbeat), answer probes in its name.
//
// What it cannot do is take a live member's place for longer than a heartbeat
// or two per forged packet. A member's life is bound to the address its
// packets come from: while an observer still hears the member's current life
// (within two intervals), it refuses a leave, a restart or a refutation of
// that ID from any other address (a real restart on a new port is accepted
// once the old life has fallen silent), so a forger that cannot spoof the
// member's source address never makes observers declare it failed or gone. A
// claim of a member's ID with a higher incarnation,
// or with the member's incarnation and a sequence number ahead of it, is
// refuted as in SWIM: the member raises its incarnation above the claim, and its
// heartbeat, sent at once (at most once per Interval/4), replaces the
// impostor everywhere, with its own address and join time, so its place in the
// leader order. The member learns of the claim directly if it hears it, or from
// any observer: an observer that replaces a life by one from another address
// reports the conflict to the old address at once, and one that refuses a
// member's packet because it knows a newer life of the member reports it to the
// packet's source (Stats.Conflicts; the member counts Stats.Impersonations). An
// attacker that keeps forging keeps the member flapping (Failed and Joined
// events, or Updated when the claim copies the member's fields) for as long as
// it keeps sending, and no longer. Observers refuse, as implausible
// (Stats.Implausible):
//
//   - an incarnation above the local time in Unix nanoseconds plus
//     MaxClockSkew (10 s): 2^64−1 is refused, and the bidding between a forger
//     and the real member is bounded by a clock, so the member can always outbid
//     the forger and incarnations never run out;
//   - a join time after the local time plus MaxClockSkew, or not after 1970;
//   - a new life of a known ID that claims a join time before the first one known
//     for it (a restart starts later; a refutation keeps the join time): an
//     impostor cannot make itself older than the member it copies;
//   - a heartbeat that changes a member's name, address or join time within a
//     life (only metadata changes during a life).
//
// So a forgery can neither evict a member for good nor keep a restarted member
// out. A key that leaks must be rotated out (Node.SetKeys) on every node. IDs are
// not bound to holders: binding them would need a key per member, which this
// package does not have. The RPC address a member advertises is a hint: the RPC
// handshake, not membership, authenticates the node behind it.
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

// Package memberlist is a membership backend built on hashicorp/memberlist
// (SWIM with suspicion and Lifeguard, the gossip membership under Consul,
// Nomad and Serf). *Node implements membership.Discovery, so the rest of
// Trellis uses it exactly as it uses the built-in backend, membership.Node.
//
// # When to use it
//
// The built-in backend heartbeats every member every 200 ms: each node sends
// N−1 packets per interval with unicast seeds (one with multicast) and
// receives N−1, so its load grows linearly with the cluster. Measured in its
// deterministic simulation (FIGURES.md): a node takes in 320 packets a second
// (23 KB) at N = 64, 1,280 (94 KB) at 256 and 5,000 (369 KB) at 1,000, and its
// CPU grows from 0.1 % of a core at 64 to 0.4–0.5 % at 256 and 3.4–4.6 % at
// 1,000 before socket costs. It detects a dead member in 1.25 s (p99) whatever
// the size, and it is the right choice up to about a hundred members on one
// network.
//
// memberlist probes one member per second and gossips only while it has news,
// so each node sends and receives 2 UDP packets a second (~185 bytes) whatever
// N; only its periodic full state exchange (TCP), which carries every member,
// grows, as N ÷ log N. Measured in a synctest simulation of up to 1,000 real
// memberlist nodes advertising what real members do (FIGURES.md), with the
// LAN preset (a state exchange every 60 s, stretched with log2 N): 235 bytes a
// second per node in total at N = 64, 251 at 256, 420 at 1,000 (1.79×, all of
// the growth in the state exchanges; UDP 1.01×); with Tune restoring
// memberlist's 30 s, 284 and 659 (2.32×). The price is slower detection:
// 9.7 s (p99) at 64 members, 12.4 s at 256 and 13.8 s at 1,000, growing with
// memberlist's suspicion timeout (4 × log10 N probe intervals). It is the choice beyond about a hundred members, across
// networks without multicast, or across data centres (the WAN preset).
//
// # With cluster.Join
//
// Backend selects this backend in cluster.Join, with one option:
//
//	cluster.Options{Key: key, Seeds: seeds, Discovery: memberlist.Backend(memberlist.Config{})}
//
// # What members advertise
//
// A member's ID is its memberlist name (nodeid.ID.String(): 16 lower-case
// hexadecimal digits). Its other Trellis fields — incarnation, join time,
// name, RPC address — and its user metadata travel in memberlist's node
// metadata, which holds 512 bytes (MaxNodeMeta): user metadata may use
// MaxUserMeta(len(name), len(addr)) of them, and New and SetMeta refuse more
// with an error wrapping ErrMetaTooLarge. The encoding is compact because
// memberlist's full state exchanges carry every member's metadata: the ID is
// not repeated, and the join time is written as its offset from the
// incarnation (one byte with the default incarnation, the start time), so a
// member with a short name and address and the cluster's record costs about
// 47 bytes per exchange after memberlist's compression, against 64 with the
// ID repeated and the join time in full (FIGURES.md). A member whose name is
// not an ID, or whose metadata does not decode, is kept out of the member list
// with a warning in the log. This is version 2 of the encoding; members of
// earlier builds (version 1) are refused with an error naming both versions:
// a cluster cannot mix them, so upgrade all its members together.
//
// # Events
//
// memberlist's join, update and leave notifications become Joined, Updated,
// Failed and Left; memberlist does not tell a failure from a leave, so a
// leaving node first advertises metadata marked as leaving, then leaves. A
// restart is a new life when its incarnation (Config.Incarnation, by default
// the start time) is higher: Failed for the old life, then Joined. Suspected
// is published when the local node's own probe of a member went unanswered
// (memberlist reports this only in its log, which the Node reads), and cleared
// with Updated when the member answers a probe again; suspicions other members
// raise are not reported: memberlist keeps them in its private member table
// and tells no delegate (the State of the nodes Memberlist.Members returns is
// not kept up to date), so the first this node hears of them is the verdict. LeaderChanged follows the event that changed the
// oldest live member, as in the built-in backend. Events are published under
// one lock, in the order the member table changed, through a
// membership.EventHub: a slow subscriber loses its oldest events (Missed) and
// never blocks memberlist.
//
// # Security
//
// Every packet and stream is encrypted and authenticated with AES-GCM by
// memberlist (GossipVerifyIncoming and GossipVerifyOutgoing are forced on),
// under keys derived from the cluster keyring with HKDF-SHA256 (DeriveKey):
// memberlist wants 16-, 24- or 32-byte AES keys, and the cluster key, which
// also authenticates heartbeats and RPC connections, is not used directly.
// The cluster label is memberlist's label, bound into each message. SetKeys
// rotates the keyring without downtime.
//
// # Partitions
//
// memberlist declares the other side of a partition dead and, after
// GossipToTheDeadTime, stops talking to it; the Node therefore retries its
// seeds and the members it saw fail every RejoinInterval (5 s) for
// ReconnectTimeout (10 min), which merges the sides once the network heals.
// As with the built-in backend, each side follows its own oldest member
// meanwhile; the cluster layer's policy keeps the minority from committing.
//
// # Settings
//
// Config.Preset picks memberlist's LAN (default), WAN or Local timing. The
// LAN preset is memberlist's but for one setting: the full state exchange
// (push/pull) comes every 60 s (LANPushPullInterval), not 30 s, which keeps a
// node's traffic within 2× of its N = 64 figure at 1,000 members; anti-entropy
// then repairs missed gossip half as often (after a burst of joins, the
// stragglers may learn the last members up to one period later), and failure
// detection is unaffected. Config.Tune may change any memberlist setting the
// Node does not own, PushPullInterval included. Logs
// go to Config.Logger at the level memberlist gives them.
//
// # Testing
//
// Package memberlisttest is an in-memory memberlist.Transport with partitions
// and traffic counters; the conformance suite (membershiptest.Run) runs on it
// and on loopback sockets.
package memberlist

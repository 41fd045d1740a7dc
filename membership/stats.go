package membership

import "sync/atomic"

// Stats counts what a Node sent, received and refused. Every dropped packet is
// counted in exactly one of Malformed, ForeignCluster, Forged, Replayed,
// Implausible and Ignored.
type Stats struct {
	// PacketsSent and BytesSent count packets handed to the transport (a
	// multicast packet counts once), BytesSent their UDP payload bytes.
	PacketsSent, BytesSent uint64
	// PacketsReceived and BytesReceived count every packet read, accepted or not.
	PacketsReceived, BytesReceived uint64
	// SendErrors counts packets the transport refused to send.
	SendErrors uint64
	// Malformed counts packets that did not decode (bad magic, version, lengths).
	Malformed uint64
	// ForeignCluster counts well-formed packets carrying another cluster's tag.
	ForeignCluster uint64
	// Forged counts packets whose authentication tag no key of the ring verifies.
	Forged uint64
	// Replayed counts authentic packets refused as old: a sequence number already
	// seen or too old, or a previous incarnation. Network duplicates and reordering
	// beyond the replay window land here too.
	Replayed uint64
	// Implausible counts authentic packets refused because what they claim
	// cannot be true of an honest member: an incarnation or a join time beyond
	// the local clock plus MaxClockSkew, a new life that claims an earlier join
	// time than the member's first known one, or a name, address or join time
	// that changes within a life.
	Implausible uint64
	// Ignored counts authentic packets not acted upon: the node's own multicast
	// echo, packets that claim the local node's ID (see Impersonations), a
	// leave or new life of a member from another address while its current
	// life is still heard,
	// packets from a member over the MaxMembers cap, heartbeats of a member
	// that hears no member while this node hears others (see Failure
	// detection in the package documentation), and probes or acks that
	// concern no current suspicion.
	Ignored uint64
	// Impersonations counts the times this node raised its incarnation to refute
	// a life of its own ID it does not have: a packet bearing its ID with a
	// higher incarnation or sequence number than its own, heard directly or
	// reported by another member. Conflicts counts the reports this node sent
	// to members whose packets it refused because it knows a newer life of them.
	Impersonations, Conflicts uint64
	// Suspicions, Failures and Refutations count members this node suspected,
	// declared failed, and found alive again while suspected.
	Suspicions, Failures, Refutations uint64
	// Stalls counts the times this node found it had not run for more than four
	// check periods; that time is not counted as the members' silence.
	Stalls uint64
}

type counters struct {
	packetsSent, bytesSent, packetsReceived, bytesReceived    atomic.Uint64
	sendErrors, malformed, foreign, forged, replayed, ignored atomic.Uint64
	suspicions, failures, refutations, stalls                 atomic.Uint64
	implausible, impersonations, conflicts                    atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		PacketsSent: c.packetsSent.Load(), BytesSent: c.bytesSent.Load(),
		PacketsReceived: c.packetsReceived.Load(), BytesReceived: c.bytesReceived.Load(),
		SendErrors: c.sendErrors.Load(), Malformed: c.malformed.Load(),
		ForeignCluster: c.foreign.Load(), Forged: c.forged.Load(),
		Replayed: c.replayed.Load(), Ignored: c.ignored.Load(),
		Suspicions: c.suspicions.Load(), Failures: c.failures.Load(),
		Refutations: c.refutations.Load(), Stalls: c.stalls.Load(),
		Implausible: c.implausible.Load(), Impersonations: c.impersonations.Load(),
		Conflicts: c.conflicts.Load(),
	}
}

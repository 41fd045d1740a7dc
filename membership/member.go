package membership

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// State is what the local node believes about a member.
type State uint8

const (
	// StateAlive: the member was heard from recently.
	StateAlive State = iota + 1
	// StateSuspected: the member has been silent for Config.SuspectAfter; the
	// local node is probing it directly and asking other members whether they hear
	// it. A suspected member is still live: it is listed and can be leader.
	StateSuspected
	// StateFailed: no evidence of life from anyone for Config.FailAfter despite
	// probing.
	StateFailed
	// StateLeft: the member announced a graceful leave.
	StateLeft
)

// String returns the state's lower-case name.
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspected:
		return "suspected"
	case StateFailed:
		return "failed"
	case StateLeft:
		return "left"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Live reports whether a member in state s is counted as a member (alive or
// suspected).
func (s State) Live() bool { return s == StateAlive || s == StateSuspected }

// Member is a snapshot of one member of the cluster.
type Member struct {
	// ID identifies the member; it is stable across the member's restarts only if
	// its owner configures it so (Config.ID).
	ID nodeid.ID
	// Name is the member's human-readable name.
	Name string
	// Addr is the RPC address the member advertises (opaque to membership).
	Addr string
	// JoinTime is the start of the member's current life as the member itself
	// advertises it. Every observer sees the same value, so every observer orders
	// members the same way (see Less); ordering across hosts is therefore only as
	// good as their clock synchronisation.
	JoinTime time.Time
	// Incarnation numbers the member's lives: a restart advertises a higher one.
	Incarnation uint64
	// Meta is the member's user metadata (at most MaxMetaLen bytes). Members,
	// Leader and Local return a fresh copy; in an Event it is shared by every
	// subscriber and must not be modified.
	Meta []byte
	// State is what the local node believes about the member.
	State State
	// Local is true for the local node's own entry.
	Local bool
	// PacketAddr is the UDP address the member's packets come from; for the local
	// node, the local address of its transport (zero before Start, and for
	// backends without one).
	PacketAddr netip.AddrPort
}

// clone returns m with its own copy of Meta.
func (m Member) clone() Member {
	if m.Meta != nil {
		m.Meta = append([]byte{}, m.Meta...)
	}
	return m
}

// String returns a short description: name, ID and state.
func (m Member) String() string {
	return fmt.Sprintf("%s(%s,%s)", m.Name, m.ID, m.State)
}

// Less orders members by join time, then by ID: the first member of a live list is
// the oldest, the leader.
func Less(a, b Member) bool { return compareMembers(a, b) < 0 }

func compareMembers(a, b Member) int {
	if c := a.JoinTime.Compare(b.JoinTime); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// SortMembers sorts ms in place by join time, then ID.
func SortMembers(ms []Member) { slices.SortFunc(ms, compareMembers) }

// Oldest returns the oldest live member of ms (by join time, then ID), which is the
// leader, and false if ms has no live member. ms need not be sorted.
func Oldest(ms []Member) (Member, bool) {
	var best Member
	found := false
	for _, m := range ms {
		if !m.State.Live() {
			continue
		}
		if !found || compareMembers(m, best) < 0 {
			best, found = m, true
		}
	}
	return best, found
}

// EventKind says what happened to a member.
type EventKind uint8

const (
	// Joined: a member was heard for the first time, a failed or departed member
	// was heard again (a healed partition), or a member restarted with a higher
	// incarnation (after a Failed event for its previous life).
	Joined EventKind = iota + 1
	// Updated: a member changed its metadata, a suspected member was heard
	// directly again (its State is back to StateAlive), or a member raised its
	// incarnation to refute a claim of its ID, nothing else changing.
	Updated
	// Suspected: a member fell silent and is being probed.
	Suspected
	// Failed: a member was declared dead, or its previous life ended because it
	// restarted with a higher incarnation (a Joined event for the new life follows).
	Failed
	// Left: a member announced a graceful leave.
	Left
	// LeaderChanged: the oldest live member changed. Member is the new leader (the
	// zero Member if none) and Previous the old leader's ID (nodeid.None if none).
	LeaderChanged
)

// String returns the kind's name, as written in the constants.
func (k EventKind) String() string {
	switch k {
	case Joined:
		return "Joined"
	case Updated:
		return "Updated"
	case Suspected:
		return "Suspected"
	case Failed:
		return "Failed"
	case Left:
		return "Left"
	case LeaderChanged:
		return "LeaderChanged"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is a change in the membership as seen by the local node.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Member is the member concerned, as it is after the change (for
	// LeaderChanged, the new leader).
	Member Member
	// Previous is the previous leader's ID for LeaderChanged, and nodeid.None
	// otherwise.
	Previous nodeid.ID
	// Time is when the local node observed the change, on its clock.
	Time time.Time
	// Missed counts the events this subscription dropped just before this one
	// because its queue was full; a subscriber that sees Missed > 0 should
	// reconcile with Members().
	Missed uint64
}

// String returns a one-line description of the event.
func (e Event) String() string {
	if e.Kind == LeaderChanged {
		return fmt.Sprintf("%s %s (previous %s)", e.Kind, e.Member, e.Previous)
	}
	return fmt.Sprintf("%s %s", e.Kind, e.Member)
}

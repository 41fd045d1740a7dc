package topology

import (
	"fmt"
	"strings"

	"github.com/trellisrpc/trellis/nodeid"
)

// Policy decides whether a leader may commit a new topology, given the
// members of the last committed topology and the members it can see.
//
// The policy is what keeps a partition from producing two leaders that push
// different topologies to the same members.
type Policy interface {
	// Name returns the policy's name.
	Name() string
	// Allow reports whether a leader that sees the members visible (itself
	// included) may commit a topology that replaces the one committed over
	// lastCommitted. It must depend only on its arguments.
	Allow(lastCommitted, visible []nodeid.ID) bool
}

// CanCommit reports whether policy p lets a leader that sees visible (itself
// included) commit a topology replacing the one committed over
// lastCommitted. A nil p means [Majority].
func CanCommit(p Policy, lastCommitted, visible []nodeid.ID) bool {
	if p == nil {
		p = Majority{}
	}
	return p.Allow(lastCommitted, visible)
}

// PolicyByName returns the built-in policy with the given name: "majority"
// or "always". Case is ignored.
func PolicyByName(name string) (Policy, error) {
	for _, p := range []Policy{Majority{}, Always{}} {
		if strings.EqualFold(name, p.Name()) {
			return p, nil
		}
	}
	return nil, fmt.Errorf("topology: unknown policy %q (want majority or always)", name)
}

// Majority lets a leader commit only while it sees a strict majority of the
// members of the last committed topology: more than half of them, counting
// itself, and not counting members that joined since. Two sides of a
// partition cannot both hold a strict majority of the same membership, so
// at most one of them moves on; the other keeps its last committed topology
// and serves what it can reach until the partition heals.
//
// A tie commits nowhere: a 2|2 split of four members leaves both sides with
// two of four, and neither commits until the partition heals. Likewise a
// two-member cluster that loses either member cannot commit until it
// returns, and a cluster that loses half or more of its members at once
// stays on its last topology. When nothing has been committed yet
// (lastCommitted is empty) the first topology is allowed. (Package cluster
// leaves out of lastCommitted the members that left gracefully: a member
// that said goodbye is on no side of a partition, so the last of two
// commits alone when the other leaves, not when it dies.)
type Majority struct{}

// Name returns "majority".
func (Majority) Name() string { return "majority" }

// Allow reports whether visible holds more than half of the distinct ids
// in lastCommitted, or lastCommitted is empty.
func (Majority) Allow(lastCommitted, visible []nodeid.ID) bool {
	committed := make(map[nodeid.ID]bool, len(lastCommitted)) // id → seen
	for _, id := range lastCommitted {
		committed[id] = false
	}
	if len(committed) == 0 {
		return true
	}
	seen := 0
	for _, id := range visible {
		if s, ok := committed[id]; ok && !s {
			committed[id] = true
			seen++
		}
	}
	return 2*seen > len(committed)
}

// Always lets a leader commit whatever it sees. It keeps every side of a
// partition working with the members it can reach, at a risk: each side
// elects its own leader, and both commit topologies, with competing epochs,
// that may name the same members (a member that sees both sides, as in an
// asymmetric partition, receives both). Use it only where availability
// matters more than a single agreed topology, or where partitions cannot
// happen, such as a single host.
type Always struct{}

// Name returns "always".
func (Always) Name() string { return "always" }

// Allow returns true.
func (Always) Allow(_, _ []nodeid.ID) bool { return true }

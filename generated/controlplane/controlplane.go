// Package controlplane holds the services that Trellis nodes use among
// themselves, and proxygen's output for them: the framework uses its own
// generator. Package cluster drives them.
package controlplane

import (
	"context"

	"github.com/trellisrpc/trellis/nodeid"
)

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Cascade -cluster=false

// Cascade is served by every member of a cluster. The leader proposes each
// new topology in two phases along a spanning tree of the old and new
// edges: Prepare everywhere, then Commit everywhere, so that no member
// installs a topology that the others never received. Each member forwards
// the call to its children in the tree before answering.
type Cascade interface {
	// Prepare offers a topology. A member refuses a proposal whose epoch is
	// not above the topology it has committed, below one it has prepared,
	// or equal to one it has prepared for another leader; and a proposal
	// based on an epoch older than the one it has committed if the
	// cluster's policy would not let the proposal replace its own.
	Prepare(ctx context.Context, p Proposal) error
	// Commit installs the prepared topology of the given epoch.
	Commit(ctx context.Context, leader nodeid.ID, epoch uint64) error
	// Leaving tells a neighbour that the caller is leaving the cluster, its
	// departure announced. A leaving member waits for its neighbours to
	// close their connections to it; one that is leaving too closes none,
	// so each stops waiting for the neighbours that told it they leave.
	Leaving(ctx context.Context) error
}

// A Proposal is a topology offered by a leader.
type Proposal struct {
	// Leader is the proposing node.
	Leader nodeid.ID
	// Epoch numbers the topology; it only grows.
	Epoch uint64
	// Strategy names the strategy that computed the edges.
	Strategy string
	// Members are the members, oldest first.
	Members []Member
	// Edges are the edges of the proposed topology.
	Edges []Edge
	// Previous are the edges of the topology committed before that Edges
	// lacks: the tree along which the proposal travels, and the connections
	// kept while it is pending, span old and new edges.
	Previous []Edge
	// Base is the epoch of the leader's last committed topology, the one
	// its policy check was made against. A member that has committed a
	// later epoch checks the policy against its own topology.
	Base uint64
}

// A Member is a member of a proposed topology.
type Member struct {
	ID   nodeid.ID
	Name string
	Addr string // RPC address
}

// An Edge joins two members.
type Edge struct {
	A, B nodeid.ID
}

// Package topology computes how the members of a Trellis cluster are
// connected, and how a call travels between members that are not connected.
//
// Everything in this package is a pure function of its arguments. The leader
// feeds the ordered member list (oldest first, so index 0 is the leader) and
// the previously committed [Topology] to [Compute] with a [Strategy]; the
// result has the next epoch and a sorted, validated edge list, so two nodes
// that compute the same topology hold identical values. Each edge is one
// connection, dialled by the node with the smaller id ([Dialer]); [Diff]
// tells a node which connections to open and which to close when a new
// topology is committed, and [Routes] gives the next hop towards every
// member it can reach along the edges.
//
// Four strategies are built in: [Ring], [Star], [Bus] (every pair connected)
// and [Hypercube] (for any number of members). [StrategyByName] maps their
// names to values for command-line flags; users may implement [Strategy] for
// their own shapes.
//
// [Policy] decides whether a leader may commit a new topology while part of
// the cluster is out of sight ([Majority] or [Always]). [Diagram] renders a
// topology as text, such as the reference form
//
//	LeaderNode -- Node1 -- Node2 -- LeaderNode
//
// The protocol that cascades a topology from the leader to every member is
// built on top of these functions elsewhere.
package topology

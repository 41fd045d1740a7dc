package topology

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/trellisrpc/trellis/nodeid"
)

// Member is one member of the cluster as the topology sees it.
//
// A []Member is ordered by membership: oldest member first, so index 0 is
// the leader. Strategies that depend on order ([Ring], [Hypercube]) use this
// order, never the ids.
type Member struct {
	// ID identifies the member; it must not be nodeid.None.
	ID nodeid.ID
	// Name is the human-readable name used by [Diagram]; it may be empty.
	Name string
	// Addr is the address other members dial to reach this one.
	Addr string
}

// label returns the member's name, or its id when it has none.
func (m Member) label() string {
	if m.Name != "" {
		return m.Name
	}
	return m.ID.String()
}

// Edge is an undirected edge between two members: one connection.
// An edge is normalised when A < B; [NewEdge] returns normalised edges.
type Edge struct {
	A, B nodeid.ID
}

// NewEdge returns the normalised edge between a and b (smaller id first).
func NewEdge(a, b nodeid.ID) Edge {
	if b < a {
		a, b = b, a
	}
	return Edge{A: a, B: b}
}

// compareEdges orders edges by A, then by B.
func compareEdges(x, y Edge) int {
	if c := cmp.Compare(x.A, y.A); c != 0 {
		return c
	}
	return cmp.Compare(x.B, y.B)
}

// Topology is one version of the cluster's shape: who is a member and which
// pairs of members are connected.
//
// A valid topology (see [Topology.Validate]) keeps its edges normalised and
// sorted, so two nodes holding the same topology hold identical values and
// [Topology.Equal] compares them field by field.
type Topology struct {
	// Epoch numbers topologies; each one computed by [Compute] has the
	// epoch of its predecessor plus one. Members reject stale epochs.
	Epoch uint64
	// Strategy is the name of the strategy that computed the edges.
	Strategy string
	// Members lists the members in membership order (index 0 is the leader).
	Members []Member
	// Edges lists the connections, normalised and sorted by (A, B).
	Edges []Edge
}

// Contains reports whether id is a member of t.
func (t Topology) Contains(id nodeid.ID) bool {
	_, ok := t.Lookup(id)
	return ok
}

// Lookup returns the member of t with the given id.
func (t Topology) Lookup(id nodeid.ID) (Member, bool) {
	for _, m := range t.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// Neighbours returns the ids connected to id by an edge, sorted in
// increasing order. It returns nil when id has no edge.
func (t Topology) Neighbours(id nodeid.ID) []nodeid.ID {
	var ns []nodeid.ID
	for _, e := range t.Edges {
		switch id {
		case e.A:
			ns = append(ns, e.B)
		case e.B:
			ns = append(ns, e.A)
		}
	}
	slices.Sort(ns)
	return ns
}

// HasEdge reports whether t connects a and b, in either order.
// It relies on the edges being sorted, as they are in a valid topology.
func (t Topology) HasEdge(a, b nodeid.ID) bool {
	_, found := slices.BinarySearchFunc(t.Edges, NewEdge(a, b), compareEdges)
	return found
}

// Equal reports whether t and u are the same topology: same epoch, same
// strategy name, same members in the same order and the same edges.
// A nil slice equals an empty one.
func (t Topology) Equal(u Topology) bool {
	return t.Epoch == u.Epoch &&
		t.Strategy == u.Strategy &&
		slices.Equal(t.Members, u.Members) &&
		slices.Equal(t.Edges, u.Edges)
}

// Validate reports the first reason t is not a well-formed topology, or nil.
// A well-formed topology has members with distinct ids other than
// nodeid.None, and edges that join two distinct members, are normalised
// (A < B), appear once and are sorted by (A, B).
//
// A topology received from another node should be validated before use.
func (t Topology) Validate() error {
	seen := make(map[nodeid.ID]struct{}, len(t.Members))
	for i, m := range t.Members {
		if m.ID == nodeid.None {
			return fmt.Errorf("topology: member %d (%q) has no id", i, m.Name)
		}
		if _, dup := seen[m.ID]; dup {
			return fmt.Errorf("topology: member id %v appears twice", m.ID)
		}
		seen[m.ID] = struct{}{}
	}
	for i, e := range t.Edges {
		switch {
		case e.A == e.B:
			return fmt.Errorf("topology: edge %v -- %v is a self loop", e.A, e.B)
		case e.A > e.B:
			return fmt.Errorf("topology: edge %v -- %v is not normalised (want the smaller id first)", e.A, e.B)
		}
		if _, ok := seen[e.A]; !ok {
			return fmt.Errorf("topology: edge %v -- %v: %v is not a member", e.A, e.B, e.A)
		}
		if _, ok := seen[e.B]; !ok {
			return fmt.Errorf("topology: edge %v -- %v: %v is not a member", e.A, e.B, e.B)
		}
		if i > 0 {
			switch c := compareEdges(t.Edges[i-1], e); {
			case c == 0:
				return fmt.Errorf("topology: edge %v -- %v appears twice", e.A, e.B)
			case c > 0:
				return fmt.Errorf("topology: edges are not sorted at index %d (%v -- %v)", i, e.A, e.B)
			}
		}
	}
	return nil
}

// Compute returns the topology that strategy s gives for members, the
// member list in membership order (oldest first; index 0 is the leader).
// prev is the last committed topology, or nil for the first one; the result
// has epoch prev.Epoch+1 (1 when prev is nil).
//
// Compute copies members, so the caller may reuse the slice. It normalises,
// sorts and de-duplicates the edges that s returns, then validates the
// result: Compute panics if members contains nodeid.None or a duplicate id,
// or if s returns a self loop or an edge to a non-member, since both are
// programming errors rather than conditions a caller could handle.
func Compute(s Strategy, members []Member, prev *Topology) Topology {
	t := Topology{
		Epoch:    1,
		Strategy: s.Name(),
		Members:  slices.Clone(members),
	}
	if prev != nil {
		t.Epoch = prev.Epoch + 1
	}
	t.Edges = normalise(s.Edges(slices.Clone(members), prev))
	if err := t.Validate(); err != nil {
		panic(fmt.Sprintf("topology: Compute with strategy %q: %v", t.Strategy, err))
	}
	return t
}

// normalise returns edges with each edge normalised, sorted and de-duplicated,
// in a new non-nil slice.
func normalise(edges []Edge) []Edge {
	out := make([]Edge, 0, len(edges))
	for _, e := range edges {
		out = append(out, NewEdge(e.A, e.B))
	}
	slices.SortFunc(out, compareEdges)
	return slices.Compact(out)
}

// memberIDs returns the ids of members, in order.
func memberIDs(members []Member) []nodeid.ID {
	ids := make([]nodeid.ID, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	return ids
}

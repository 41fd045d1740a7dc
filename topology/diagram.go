package topology

import (
	"cmp"
	"slices"
	"strings"

	"github.com/trellisrpc/trellis/nodeid"
)

// Diagram renders t as text, naming members by [Member.Name] (or by id when
// a member has no name):
//
//   - no member: the empty string;
//   - one member: its name;
//   - a topology computed by [Ring] whose edges form a ring: one line that
//     starts at the leader, steps first to whichever of the leader's two
//     neighbours comes earlier in t.Members (the member that joined right
//     after the leader, when nobody has left), follows the cycle and ends
//     at the leader again, as in "LeaderNode -- Node1 -- Node2 -- LeaderNode"
//     ("LeaderNode -- Node1 -- LeaderNode" for two members);
//   - otherwise: one line "A -- B" per edge, the older member of the pair
//     first, lines ordered by the membership position of A, then of B, and
//     separated by newlines.
//
// The result has no trailing newline.
func Diagram(t Topology) string {
	switch len(t.Members) {
	case 0:
		return ""
	case 1:
		return t.Members[0].label()
	}
	g := newGraph(t)
	name := func(id nodeid.ID) string {
		if i, ok := g.index[id]; ok {
			return t.Members[i].label()
		}
		return id.String()
	}
	if t.Strategy == (Ring{}).Name() {
		if order, ok := ringOrder(t); ok {
			var b strings.Builder
			for _, id := range order {
				b.WriteString(name(id))
				b.WriteString(" -- ")
			}
			b.WriteString(name(order[0]))
			return b.String()
		}
	}
	// pos orders members by membership, and anything else after them by id.
	pos := func(id nodeid.ID) int {
		if i, ok := g.index[id]; ok {
			return i
		}
		return len(t.Members)
	}
	older := func(a, b nodeid.ID) int {
		if c := cmp.Compare(pos(a), pos(b)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	}
	pairs := make([]Edge, 0, len(t.Edges)) // A is the older end, not the smaller id
	for _, e := range t.Edges {
		if older(e.B, e.A) < 0 {
			e.A, e.B = e.B, e.A
		}
		pairs = append(pairs, e)
	}
	slices.SortFunc(pairs, func(x, y Edge) int {
		if c := older(x.A, y.A); c != 0 {
			return c
		}
		return older(x.B, y.B)
	})
	lines := make([]string, len(pairs))
	for i, e := range pairs {
		lines[i] = name(e.A) + " -- " + name(e.B)
	}
	return strings.Join(lines, "\n")
}

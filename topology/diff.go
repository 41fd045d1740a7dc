package topology

import (
	"slices"

	"github.com/trellisrpc/trellis/nodeid"
)

// Diff returns what self must change to move from topology prev to next:
// the neighbours to connect to (in next, not in prev) and those to
// disconnect from (in prev, not in next), each sorted by id. Of each pair,
// only the [Dialer] opens the connection; both ends close it.
func Diff(prev, next Topology, self nodeid.ID) (add, remove []nodeid.ID) {
	before, after := prev.Neighbours(self), next.Neighbours(self)
	for _, id := range after {
		if _, found := slices.BinarySearch(before, id); !found {
			add = append(add, id)
		}
	}
	for _, id := range before {
		if _, found := slices.BinarySearch(after, id); !found {
			remove = append(remove, id)
		}
	}
	return add, remove
}

// Dialer returns which of the two ends of an edge opens its connection:
// the one with the smaller id.
func Dialer(a, b nodeid.ID) nodeid.ID {
	return min(a, b)
}

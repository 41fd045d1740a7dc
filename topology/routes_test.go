package topology

import (
	"slices"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
)

// plain returns a topology over members with the given ids (in that
// membership order) and edges, for hand-made shapes.
func plain(ids []nodeid.ID, edges ...Edge) Topology {
	ms := make([]Member, len(ids))
	for i, id := range ids {
		ms[i] = Member{ID: id}
	}
	return Topology{Epoch: 3, Members: ms, Edges: normalise(edges)}
}

func TestRoutes(t *testing.T) {
	// A square 1–2–4–3–1 with a tail 4–5: from 1, member 4 is two hops
	// away through 2 or 3, and 2 wins the tie.
	square := plain([]nodeid.ID{4, 3, 2, 1, 5}, Edge{1, 2}, Edge{2, 4}, Edge{3, 4}, Edge{1, 3}, Edge{4, 5})
	// Two components: 1–2 and 3–4.
	split := plain([]nodeid.ID{1, 2, 3, 4}, Edge{1, 2}, Edge{3, 4})
	type route struct {
		dst, next nodeid.ID
		dist      int
	}
	tests := []struct {
		name   string
		top    Topology
		self   nodeid.ID
		routes []route // every destination, sorted by id
	}{
		{"square from 1", square, 1, []route{{2, 2, 1}, {3, 3, 1}, {4, 2, 2}, {5, 2, 3}}},
		{"square from 4", square, 4, []route{{1, 2, 2}, {2, 2, 1}, {3, 3, 1}, {5, 5, 1}}},
		{"square from 5", square, 5, []route{{1, 4, 3}, {2, 4, 2}, {3, 4, 2}, {4, 4, 1}}},
		{"split", split, 3, []route{{4, 4, 1}}},
		{"not a member", square, 9, nil},
		{"alone", plain([]nodeid.ID{7}), 7, nil},
	}
	for _, tt := range tests {
		rt := Routes(tt.top, tt.self)
		if rt.Self() != tt.self || rt.Epoch() != tt.top.Epoch {
			t.Errorf("%s: Self, Epoch = %v, %d; want %v, %d", tt.name, rt.Self(), rt.Epoch(), tt.self, tt.top.Epoch)
		}
		var want []nodeid.ID
		for _, r := range tt.routes {
			want = append(want, r.dst)
			next, ok := rt.NextHop(r.dst)
			dist, okD := rt.Distance(r.dst)
			if !ok || !okD || next != r.next || dist != r.dist {
				t.Errorf("%s: route to %v = next %v (%v), %d hops (%v); want next %v, %d hops",
					tt.name, r.dst, next, ok, dist, okD, r.next, r.dist)
			}
		}
		if got := rt.Destinations(); !slices.Equal(got, want) {
			t.Errorf("%s: Destinations = %v, want %v", tt.name, got, want)
		}
		for _, dst := range []nodeid.ID{tt.self, 99} {
			if next, ok := rt.NextHop(dst); ok {
				t.Errorf("%s: NextHop(%v) = %v, true; want false", tt.name, dst, next)
			}
			if _, ok := rt.Distance(dst); ok {
				t.Errorf("%s: Distance(%v) reports a route", tt.name, dst)
			}
		}
	}
	var zero RoutingTable
	if _, ok := zero.NextHop(1); ok || len(zero.Destinations()) != 0 {
		t.Error("the zero RoutingTable has a route")
	}
}

func TestPath(t *testing.T) {
	square := plain([]nodeid.ID{4, 3, 2, 1, 5}, Edge{1, 2}, Edge{2, 4}, Edge{3, 4}, Edge{1, 3}, Edge{4, 5})
	split := plain([]nodeid.ID{1, 2, 3, 4}, Edge{1, 2}, Edge{3, 4})
	tests := []struct {
		name     string
		top      Topology
		src, dst nodeid.ID
		want     []nodeid.ID
	}{
		{"tie to the smaller id", square, 1, 5, []nodeid.ID{1, 2, 4, 5}},
		{"reverse", square, 5, 1, []nodeid.ID{5, 4, 2, 1}},
		{"neighbour", square, 3, 4, []nodeid.ID{3, 4}},
		{"self", square, 3, 3, []nodeid.ID{3}},
		{"unreachable", split, 1, 4, nil},
		{"unknown src", square, 9, 1, nil},
		{"unknown dst", square, 1, 9, nil},
	}
	for _, tt := range tests {
		if got := Path(tt.top, tt.src, tt.dst); !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("%s: Path(%v, %v) = %v, want %v", tt.name, tt.src, tt.dst, got, tt.want)
		}
	}
}

func TestDiameterConnected(t *testing.T) {
	tests := []struct {
		name      string
		top       Topology
		diameter  int
		connected bool
	}{
		{"empty", Topology{}, 0, true},
		{"one", plain([]nodeid.ID{1}), 0, true},
		{"two apart", plain([]nodeid.ID{1, 2}), -1, false},
		{"path of four", plain([]nodeid.ID{1, 2, 3, 4}, Edge{1, 2}, Edge{2, 3}, Edge{3, 4}), 3, true},
		{"split", plain([]nodeid.ID{1, 2, 3, 4}, Edge{1, 2}, Edge{3, 4}), -1, false},
		{"ring of 7", Compute(Ring{}, testMembers(7), nil), 3, true},
		{"star of 7", Compute(Star{}, testMembers(7), nil), 2, true},
	}
	for _, tt := range tests {
		if got := Diameter(tt.top); got != tt.diameter {
			t.Errorf("%s: Diameter = %d, want %d", tt.name, got, tt.diameter)
		}
		if got := Connected(tt.top); got != tt.connected {
			t.Errorf("%s: Connected = %v, want %v", tt.name, got, tt.connected)
		}
	}
}

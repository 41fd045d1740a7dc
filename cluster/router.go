package cluster

import (
	"fmt"
	"slices"
	"sync"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// router routes calls along the committed topology. When the link to the
// next hop is down (the neighbour crashed, and the leader has not yet
// cascaded a topology without it), it routes around that link over the
// remaining edges, so calls keep flowing during the repair; relays do the
// same with their own links. A relay never sends a call back where it came
// from: with no other way it fails the call at once (ErrNoRoute), and the
// hop budget of a call bounds any longer transient loop.
type router struct {
	t         topology.Topology
	self      nodeid.ID
	primary   topology.RoutingTable
	connected func(nodeid.ID) bool

	mu  sync.Mutex
	alt map[string]topology.RoutingTable // routes without some links, by the links left out
}

func newRouter(t topology.Topology, self nodeid.ID, connected func(nodeid.ID) bool) *router {
	return &router{t: t, self: self, primary: topology.Routes(t, self), connected: connected,
		alt: make(map[string]topology.RoutingTable)}
}

// NextHop implements runtime.Router.
func (r *router) NextHop(dst nodeid.ID) (nodeid.ID, bool) {
	next, ok := r.primary.NextHop(dst)
	if !ok || r.connected(next) {
		return next, ok
	}
	return r.around(dst, nodeid.None)
}

// NextHopAvoiding implements runtime.AvoidingRouter: the next hop toward
// dst that is not avoid (the neighbour a relayed call came from), so that a
// call whose primary route leads back (the link onward is down) takes the
// other way round, if there is one.
func (r *router) NextHopAvoiding(dst, avoid nodeid.ID) (nodeid.ID, bool) {
	return r.around(dst, avoid)
}

// around routes over the topology without the links that are down and
// without the link to avoid.
func (r *router) around(dst, avoid nodeid.ID) (nodeid.ID, bool) {
	var out []nodeid.ID
	for _, nb := range r.t.Neighbours(r.self) {
		if nb == avoid || !r.connected(nb) {
			out = append(out, nb)
		}
	}
	key := fmt.Sprint(out)
	r.mu.Lock()
	rt, ok := r.alt[key]
	if !ok {
		if len(r.alt) > 64 {
			clear(r.alt) // link states churn: keep the cache small
		}
		rt = topology.Routes(r.without(out), r.self)
		r.alt[key] = rt
	}
	r.mu.Unlock()
	return rt.NextHop(dst)
}

// without returns the topology minus the edges from self to down.
func (r *router) without(down []nodeid.ID) topology.Topology {
	t := r.t
	t.Edges = make([]topology.Edge, 0, len(r.t.Edges))
	for _, e := range r.t.Edges {
		other := e.A
		if other == r.self {
			other = e.B
		} else if e.B != r.self {
			t.Edges = append(t.Edges, e)
			continue
		}
		if !slices.Contains(down, other) {
			t.Edges = append(t.Edges, e)
		}
	}
	return t
}

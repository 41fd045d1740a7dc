package cluster

import (
	"fmt"
	"slices"
	"sync"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

var _ runtime.SourceChecker = (*router)(nil)

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

	// prev routes along the topology committed before t: calls routed
	// along it may still arrive (see PlausibleSource). Its own prev is nil.
	prev *router

	mu  sync.Mutex
	alt map[string]topology.RoutingTable // routes without some links, by the links left out
	via map[viaKey]topology.RoutingTable // neighbours' routes, by the links left out
}

type viaKey struct {
	down string // the links of self left out
	via  nodeid.ID
}

func newRouter(t topology.Topology, self nodeid.ID, connected func(nodeid.ID) bool) *router {
	return &router{t: t, self: self, primary: topology.Routes(t, self), connected: connected,
		alt: make(map[string]topology.RoutingTable), via: make(map[viaKey]topology.RoutingTable)}
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

// PlausibleSource implements runtime.SourceChecker: a routed call from src
// may come from neighbour via if via is one hop closer to src than this
// node, on the committed topology or on the topology without this node's
// links that are down (around which calls are routed), or the same on the
// topology committed before (calls routed along it may still arrive). A
// call that takes a longer detour (around a link down elsewhere, before the
// leader commits a topology without it) is refused: its caller sees the
// refusal and may retry once the topology is repaired.
func (r *router) PlausibleSource(src, via nodeid.ID) bool {
	return r.plausible(src, via) || r.prev != nil && r.prev.plausible(src, via)
}

// plausible is PlausibleSource for r's topology alone.
func (r *router) plausible(src, via nodeid.ID) bool {
	if r.closer(src, via, nil) {
		return true
	}
	var down []nodeid.ID
	for _, nb := range r.t.Neighbours(r.self) {
		if nb != via && !r.connected(nb) {
			down = append(down, nb)
		}
	}
	return len(down) > 0 && r.closer(src, via, down)
}

// closer reports whether via is a neighbour of self one hop closer to src
// than self, over the topology without self's links to down.
func (r *router) closer(src, via nodeid.ID, down []nodeid.ID) bool {
	key := viaKey{fmt.Sprint(down), via}
	r.mu.Lock()
	defer r.mu.Unlock()
	self := r.primary
	if down != nil {
		var ok bool
		if self, ok = r.alt[key.down]; !ok {
			if len(r.alt) > 64 {
				clear(r.alt)
			}
			self = topology.Routes(r.without(down), r.self)
			r.alt[key.down] = self
		}
	}
	if d, ok := self.Distance(via); !ok || d != 1 {
		return false // not a neighbour
	}
	ds, ok := self.Distance(src)
	if !ok {
		return false
	}
	if via == src {
		return true
	}
	rt, ok := r.via[key]
	if !ok {
		if len(r.via) > 256 {
			clear(r.via)
		}
		t := r.t
		if down != nil {
			t = r.without(down)
		}
		rt = topology.Routes(t, via)
		r.via[key] = rt
	}
	dv, ok := rt.Distance(src)
	return ok && dv < ds
}

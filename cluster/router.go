package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

var (
	_ runtime.SourceChecker = (*router)(nil)
	_ runtime.RouteWaiter   = (*router)(nil)
)

// router routes calls along the committed topology. When the link to the
// next hop of one of this node's own calls is down (the neighbour crashed,
// and the leader has not yet cascaded a topology without it), it routes
// around that link over the remaining edges, so calls keep flowing during
// the repair. A relay is stricter: it hands a call on only to a connected
// neighbour strictly nearer to the destination than itself on the committed
// topology, never back where the call came from, and otherwise refuses it at
// once (ErrNoRoute, unsent: the caller's node waits for a route and sends it
// again, see WaitRoute). Each hop then shortens the distance left, so relays
// that route by one topology never pass a call round a cycle, whatever
// links each of them sees down; the hop budget of a call bounds what
// routing by different topologies (during a commit) could leave.
type router struct {
	t         topology.Topology
	self      nodeid.ID
	connected func(nodeid.ID) bool
	// wait waits for a route to appear (see WaitRoute); nil: no waiting.
	wait func(ctx context.Context, dst nodeid.ID, since time.Time) bool

	// primaryRT is the routing table of t, computed on first use (see
	// primary): a router is installed as a commit is published, and at a
	// thousand members the table takes a millisecond to compute.
	primaryOnce sync.Once
	primaryRT   topology.RoutingTable

	// prev routes along the topology committed before t: calls routed
	// along it may still arrive (see PlausibleSource). Its own prev is nil.
	prev *router
	// proposed routes along the proposal this node has prepared above t,
	// if any: its members route by it as soon as they commit it, maybe
	// before this node does (see PlausibleSource).
	proposed atomic.Pointer[router]

	mu     sync.Mutex
	alt    map[string]topology.RoutingTable    // routes without some links, by the links left out
	via    map[viaKey]topology.RoutingTable    // neighbours' routes, by the links left out
	toward map[nodeid.ID]topology.RoutingTable // routes from destinations (their distances to every node)
}

type viaKey struct {
	down string // the links of self left out
	via  nodeid.ID
}

func newRouter(t topology.Topology, self nodeid.ID, connected func(nodeid.ID) bool) *router {
	return &router{t: t, self: self, connected: connected,
		alt: make(map[string]topology.RoutingTable), via: make(map[viaKey]topology.RoutingTable),
		toward: make(map[nodeid.ID]topology.RoutingTable)}
}

// primary returns the routing table of the committed topology.
func (r *router) primary() topology.RoutingTable {
	r.primaryOnce.Do(func() { r.primaryRT = topology.Routes(r.t, r.self) })
	return r.primaryRT
}

// propose records t, the topology of a proposal this node has prepared:
// until the next commit, a routed call plausible on it is accepted too.
func (r *router) propose(t topology.Topology) {
	if t.Epoch > r.t.Epoch {
		r.proposed.Store(newRouter(t, r.self, r.connected))
	}
}

// NextHop implements runtime.Router.
func (r *router) NextHop(dst nodeid.ID) (nodeid.ID, bool) {
	next, ok := r.primary().NextHop(dst)
	if !ok || r.connected(next) {
		return next, ok
	}
	return r.around(dst)
}

// WaitRoute implements runtime.RouteWaiter: a call that found no route to
// dst (a link being redialled, here or at a relay; a topology being
// repaired) waits for one while dst is a live member, for three cluster
// Intervals at most since it first failed (see Cluster.waitRoute).
func (r *router) WaitRoute(ctx context.Context, dst nodeid.ID, since time.Time) bool {
	return r.wait != nil && r.wait(ctx, dst, since)
}

// NextHopAvoiding implements runtime.AvoidingRouter: the next hop of a call
// for dst relayed from neighbour from is a connected neighbour other than
// from, strictly nearer to dst than this node on the committed topology
// (the primary next hop when its link is up); there is none when every
// such neighbour's link is down, and the relay fails the call at once.
func (r *router) NextHopAvoiding(dst, from nodeid.ID) (nodeid.ID, bool) {
	d, ok := r.primary().Distance(dst)
	if !ok {
		return nodeid.None, false
	}
	if next, _ := r.primary().NextHop(dst); next != from && r.connected(next) {
		return next, true
	}
	if d == 1 {
		return nodeid.None, false // dst is the neighbour whose link is down
	}
	toward := r.routesFrom(dst)
	for _, nb := range r.t.Neighbours(r.self) {
		if nb == from || !r.connected(nb) {
			continue
		}
		if dn, ok := toward.Distance(nb); ok && dn < d {
			return nb, true
		}
	}
	return nodeid.None, false
}

// routesFrom returns the routing table of dst in the committed topology:
// its distances are every node's distance to dst.
func (r *router) routesFrom(dst nodeid.ID) topology.RoutingTable {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, ok := r.toward[dst]
	if !ok {
		if len(r.toward) > 64 {
			clear(r.toward)
		}
		rt = topology.Routes(r.t, dst)
		r.toward[dst] = rt
	}
	return rt
}

// around routes this node's own call over the topology without the links
// that are down.
func (r *router) around(dst nodeid.ID) (nodeid.ID, bool) {
	var out []nodeid.ID
	for _, nb := range r.t.Neighbours(r.self) {
		if !r.connected(nb) {
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
// links that are down (around which calls are routed); or the same on the
// topology committed before (calls routed along it may still arrive), or on
// the proposal this node has prepared (its other members may have committed
// it already, and route by it). Each of them comes from the leader, over the
// authenticated cascade: a neighbour can only claim a source that lies
// behind it on one of them. A call that takes a longer detour (around a
// link down elsewhere, before the leader commits a topology without it) is
// refused: its caller sees the refusal and may retry once the topology is
// repaired.
func (r *router) PlausibleSource(src, via nodeid.ID) bool {
	if r.plausible(src, via) || r.prev != nil && r.prev.plausible(src, via) {
		return true
	}
	p := r.proposed.Load()
	return p != nil && p.plausible(src, via)
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
	self := r.primary()
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

// routeWaits is how many Intervals a call waits at most for a missing
// route to a live member: a dropped link is redialled at the next
// reconciliation, an Interval later at most, and a topology repaired by
// a cascade of a few round trips.
const routeWaits = 3

// waitRoute waits until a route to dst may have appeared (the view
// changed: a commit, a membership event; or a fraction of an Interval
// passed, in which a link may have been redialled, here or at a relay),
// and reports whether to route the call again: not if dst is not a live
// member (gone, it fails fast with the error it had), nor once the call has
// waited routeWaits Intervals since it first failed, nor once ctx is done
// or the cluster closed.
func (c *Cluster) waitRoute(ctx context.Context, dst nodeid.ID, since time.Time) bool {
	changed := c.viewChanged()
	if dst == c.self || !slices.ContainsFunc(c.view().members, func(m Member) bool { return m.ID == dst }) {
		return false
	}
	left := time.Until(since.Add(routeWaits * c.cfg.Interval))
	if left <= 0 {
		return false
	}
	t := time.NewTimer(min(left, max(c.cfg.Interval/4, time.Millisecond)))
	defer t.Stop()
	select {
	case <-changed:
		return true
	case <-t.C:
		return true
	case <-c.closed:
		return false
	case <-ctx.Done():
		return false
	}
}

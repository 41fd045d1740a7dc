// Package status serves a node's view of its cluster over HTTP, for
// operators: one self-contained HTML page (no external assets) that
// refreshes itself, with the members, the leader and the epoch, the
// topology drawn as SVG, this node's connections, its calls per method and
// its references and streams; the same data as JSON; and health endpoints
// for orchestrators.
//
//	GET /             the page
//	GET /status.json  the Snapshot the page draws
//	GET /healthz      200 while the node is up
//	GET /readyz       200 once the node has joined, holds a committed
//	                  topology and its connections are exactly its edges;
//	                  503 with the reason otherwise
//
// Mount it under a prefix with http.StripPrefix (the page's links are
// relative; asked for as the prefix without its trailing slash, the page
// redirects to the prefix with one). The command trellis (cmd/trellis)
// reads /status.json.
package status

import (
	"errors"
	"slices"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// Membership is what the status reads of the membership;
// membership.Discovery implements it.
type Membership interface {
	Local() membership.Member
	Members() []membership.Member
	Leader() (membership.Member, bool)
}

// Topology is what the status reads of the cluster; *cluster.Cluster
// implements it.
type Topology interface {
	Topology() topology.Topology
	Stats() cluster.Stats
}

// Config says what the status shows.
type Config struct {
	// Node is the node whose status is shown. Required.
	Node *runtime.Node
	// Membership is the node's membership. Required.
	Membership Membership
	// Cluster is the node's cluster. Required.
	Cluster Topology
	// Services, if set, returns the services a member advertises; the
	// local node's registered services are shown without it.
	Services func(membership.Member) []string
	// Refresh is how often the page fetches the status again (default 1 s).
	Refresh time.Duration
}

// A Status serves the status of one node; it is an http.Handler.
type Status struct {
	cfg   Config
	calls *callStats
	start time.Time
}

// New returns the status of cfg.Node. It installs a call observer on the
// node (runtime.Node.Observe) that counts the calls it makes and serves,
// per method, from now on.
func New(cfg Config) (*Status, error) {
	if cfg.Node == nil || cfg.Membership == nil || cfg.Cluster == nil {
		return nil, errors.New("status: Config.Node, Membership and Cluster are required")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	s := &Status{cfg: cfg, calls: newCallStats(), start: time.Now()}
	cfg.Node.Observe(s.calls)
	return s, nil
}

// ForCluster returns the status of a member that joined its cluster with
// cluster.Join: its node, membership and topology, and the services every
// member advertises. Serve it with http.ListenAndServe or mount it under a
// prefix with http.StripPrefix. New allows more settings (a Refresh period,
// a cluster made with cluster.New).
func ForCluster(c *cluster.Cluster) (*Status, error) {
	if c == nil {
		return nil, errors.New("status: ForCluster: nil cluster")
	}
	return New(Config{
		Node:       c.Node(),
		Membership: c.Discovery(),
		Cluster:    c,
		Services:   clusterServices(c),
	})
}

// clusterServices returns a Config.Services that lists the services each
// member advertises in its membership record (cluster.MemberServices), and
// for c's own member those registered on its node (as the other members
// will read them once its record is sent again), the runtime's and the
// cluster's own left out.
func clusterServices(c *cluster.Cluster) func(membership.Member) []string {
	names := func(svcs []cluster.Service) []string {
		out := make([]string, len(svcs))
		for i, s := range svcs {
			out[i] = s.Name
		}
		return out
	}
	return func(m membership.Member) []string {
		if m.ID != c.ID() {
			return names(cluster.MemberServices(m))
		}
		for _, cm := range c.Members() {
			if cm.Local {
				return names(cm.Services)
			}
		}
		return nil
	}
}

// Snapshot is the status of a node at one moment: what /status.json holds.
type Snapshot struct {
	Time     time.Time `json:"time"`
	Node     string    `json:"node"` // this node's id
	Name     string    `json:"name"`
	Addr     string    `json:"addr,omitempty"`
	Uptime   float64   `json:"uptime_seconds"`
	Leader   string    `json:"leader,omitempty"` // the leader's id
	Epoch    uint64    `json:"epoch"`
	Strategy string    `json:"strategy,omitempty"`
	// Members are the live members, oldest first, then the members of the
	// committed topology that are no longer live (state "failed"; see
	// Member.State for a node that has left).
	Members []Member `json:"members"`
	// Edges are the committed topology's edges.
	Edges []Edge `json:"edges"`
	// Connections are this node's connections.
	Connections []Connection `json:"connections"`
	// Methods are the calls made and served per method, since New.
	Methods    []MethodStats `json:"methods"`
	References References    `json:"references"`
	Streams    Streams       `json:"streams"`
	Cascades   Cascades      `json:"cascades"`
	Ready      bool          `json:"ready"`
	// NotReady says why the node is not ready.
	NotReady string `json:"not_ready,omitempty"`
}

// A Member is one member as this node sees it.
type Member struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Addr string `json:"addr,omitempty"`
	// State is alive, suspected or failed; left for this node once its
	// membership has stopped (after Leave or Close), and then unknown for
	// the other members of its last topology, which it no longer watches.
	State       string   `json:"state"`
	Incarnation uint64   `json:"incarnation"`
	Services    []string `json:"services,omitempty"`
	Self        bool     `json:"self,omitempty"`
	Leader      bool     `json:"leader,omitempty"`
	// InTopology reports whether the member is in the committed topology.
	InTopology bool `json:"in_topology"`
}

// An Edge is an edge of the committed topology.
type Edge struct {
	A string `json:"a"`
	B string `json:"b"`
	// State is "connected" for an edge of this node's with its connection
	// open, "disconnected" for one without, "down" when an end is not
	// live, and "remote" for an edge between two other live members (this
	// node cannot see that connection).
	State string `json:"state"`
}

// A Connection is one of this node's connections.
type Connection struct {
	Peer string `json:"peer"`
	Name string `json:"name,omitempty"`
	// Edge reports whether the connection is an edge of the committed
	// topology (a connection that is not is being drained).
	Edge bool `json:"edge"`
}

// MethodStats counts the calls of one method on one side.
type MethodStats struct {
	Service string `json:"service"`
	Method  string `json:"method"`
	Side    string `json:"side"` // client or server
	Calls   uint64 `json:"calls"`
	Errors  uint64 `json:"errors"`
	// MeanSeconds and P99Seconds are the calls' mean and (approximate)
	// 99th-percentile durations.
	MeanSeconds float64 `json:"mean_seconds"`
	P99Seconds  float64 `json:"p99_seconds"`
}

// References counts this node's references (see runtime.RefStats).
type References struct {
	Exported int `json:"exported"`
	Holders  int `json:"holders"`
	Imported int `json:"imported"`
	Pending  int `json:"pending_releases"`
}

// Streams counts this node's open streams.
type Streams struct {
	Sending   int `json:"sending"`
	Receiving int `json:"receiving"`
}

// Cascades counts the topology cascades this node led.
type Cascades struct {
	Led         uint64  `json:"led"`
	Failed      uint64  `json:"failed"`
	MeanSeconds float64 `json:"mean_seconds"`
}

// Snapshot returns the node's status now.
func (s *Status) Snapshot() Snapshot {
	n := s.cfg.Node
	local := s.cfg.Membership.Local()
	live := s.cfg.Membership.Members()
	top := s.cfg.Cluster.Topology()
	snap := Snapshot{
		Time:     time.Now().UTC(),
		Node:     n.ID().String(),
		Name:     n.Name(),
		Uptime:   time.Since(s.start).Seconds(),
		Epoch:    top.Epoch,
		Strategy: top.Strategy,
		Members:  []Member{},
		Edges:    []Edge{},
	}
	if a := n.Addr(); a != nil {
		snap.Addr = a.String()
	}
	leader, hasLeader := s.cfg.Membership.Leader()
	if hasLeader {
		snap.Leader = leader.ID.String()
	}
	alive := make(map[runtime.NodeID]bool, len(live))
	for _, m := range live {
		alive[m.ID] = true
		mb := Member{
			ID: m.ID.String(), Name: m.Name, Addr: m.Addr, State: m.State.String(), Incarnation: m.Incarnation,
			Self: m.ID == local.ID, Leader: hasLeader && m.ID == leader.ID, InTopology: top.Contains(m.ID),
		}
		switch {
		case s.cfg.Services != nil:
			mb.Services = s.cfg.Services(m)
		case mb.Self:
			mb.Services = n.Services()
		}
		snap.Members = append(snap.Members, mb)
	}
	self := n.ID()
	// A node always sees itself live while its membership runs: once it
	// has left (or its membership was closed), it is shown as left, and the
	// other members of its last topology as unknown, not failed: it no
	// longer watches them.
	left := !alive[self] && top.Contains(self)
	for _, m := range top.Members {
		switch {
		case alive[m.ID]:
		case m.ID == self:
			snap.Members = append(snap.Members, Member{ID: m.ID.String(), Name: m.Name, Addr: m.Addr, State: "left",
				Incarnation: local.Incarnation, Self: true, InTopology: true, Services: n.Services()})
		case left:
			snap.Members = append(snap.Members, Member{ID: m.ID.String(), Name: m.Name, Addr: m.Addr, State: "unknown", InTopology: true})
		default:
			snap.Members = append(snap.Members, Member{ID: m.ID.String(), Name: m.Name, Addr: m.Addr, State: "failed", InTopology: true})
		}
	}
	for _, e := range top.Edges {
		st := "remote"
		switch {
		case !alive[e.A] || !alive[e.B]:
			st = "down"
		case e.A == self || e.B == self:
			other := e.A
			if other == self {
				other = e.B
			}
			st = "disconnected"
			if n.Connected(other) {
				st = "connected"
			}
		}
		snap.Edges = append(snap.Edges, Edge{A: e.A.String(), B: e.B.String(), State: st})
	}
	neighbours := top.Neighbours(self)
	for _, p := range n.Peers() {
		c := Connection{Peer: p.String(), Edge: slices.Contains(neighbours, p)}
		if m, ok := top.Lookup(p); ok {
			c.Name = m.Name
		}
		snap.Connections = append(snap.Connections, c)
	}
	snap.Methods = s.calls.snapshot()
	rs := n.RefStats()
	snap.References = References{Exported: rs.Exports, Holders: rs.Holds, Imported: rs.Imports, Pending: rs.Pending}
	snap.Streams.Sending, snap.Streams.Receiving = n.StreamStats()
	cs := s.cfg.Cluster.Stats()
	snap.Cascades = Cascades{Led: cs.Cascades, Failed: cs.Failed}
	if cs.Cascades > 0 {
		snap.Cascades.MeanSeconds = cs.Duration.Seconds() / float64(cs.Cascades)
	}
	snap.NotReady = notReady(self, alive[self], top, n.Peers())
	snap.Ready = snap.NotReady == ""
	return snap
}

// notReady says why a node is not ready, or returns "".
func notReady(self runtime.NodeID, joined bool, top topology.Topology, peers []runtime.NodeID) string {
	switch {
	case !joined && top.Contains(self):
		return "left the cluster"
	case !joined:
		return "not a live member of the cluster"
	case top.Epoch == 0:
		return "no committed topology yet"
	case !top.Contains(self):
		return "not a member of the committed topology (epoch " + itoa(top.Epoch) + ")"
	}
	want := top.Neighbours(self)
	slices.Sort(want)
	if !slices.Equal(want, peers) {
		return "connections (" + itoa(uint64(len(peers))) + ") differ from the edges of epoch " + itoa(top.Epoch) + " (" + itoa(uint64(len(want))) + ")"
	}
	return ""
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// Package metrics exports what a Trellis node does as Prometheus metrics:
// calls per service and method (outcome by kind, latency and bytes, on the
// client and the server side), in-flight, routed and relayed calls and
// their hops, connections, references and streams, and, when given them,
// the membership (members by state, suspicions, failures, heartbeats
// refused as forged or replayed) and the topology (epoch, members, edges,
// cascades and their duration).
//
// The package is opt-in: a program that does not import it does not link
// it nor pay for it. New installs a call observer on the node (see
// runtime.Node.Observe) and a relay interceptor; the other figures are
// read from the node, the membership and the cluster when Prometheus
// scrapes. The observer runs inside the node's interceptors: the calls an
// interceptor refuses without calling next are not counted, and a call's
// outcome is the machinery's or the handler's, not one an interceptor puts
// in its place. The calls of Trellis's own control plane (a cluster
// cascading its topology calls the service
// "github.com/trellisrpc/trellis/generated/controlplane.Cascade") are
// counted like the application's, under their own service label.
//
// It uses github.com/prometheus/client_golang rather than the OpenTelemetry
// metric API with its Prometheus exporter: the format operators scrape is
// Prometheus's, and client_golang writes it directly; the figures of the
// calls are kept per method, in per-processor stripes of integer counters
// (a few uncontended atomic adds per call), and become Prometheus
// counters and histograms when scraped; the OpenTelemetry route adds a
// translation layer (names, units, attribute sets looked up per
// measurement) and far more dependencies for the same output. Traces,
// where OpenTelemetry is the standard, are in package tracing.
//
// Labels stay bounded: service and method names (from the generated
// descriptions), an outcome kind from a fixed set (runtime.ErrorKind), a
// membership state or a refusal reason. No node id is ever a label.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/internal/percpu"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/topology"
)

// MembershipSource is what the collector reads of a membership backend;
// *membership.Node and the memberlist backend's *memberlist.Node implement
// it.
type MembershipSource interface {
	Members() []membership.Member
	Stats() membership.Stats
}

// TopologySource is what the collector reads of a cluster; *cluster.Cluster
// implements it.
type TopologySource interface {
	Topology() topology.Topology
	Stats() cluster.Stats
}

// ForCluster returns the configuration that measures a member that joined
// its cluster with cluster.Join: its node, its topology and, when its
// membership backend reports them, the membership's figures. The built-in
// backend reports them all; the memberlist backend reports members,
// suspicions, failures and refused packets, and no packet counts (its
// packets sent and received stay at 0). Set Buckets or ConstLabels on the
// result before passing it to New.
func ForCluster(c *cluster.Cluster) Config {
	cfg := Config{Node: c.Node(), Cluster: c}
	if m, ok := c.Discovery().(MembershipSource); ok {
		cfg.Membership = m
	}
	return cfg
}

// Config says what a Collector measures.
type Config struct {
	// Node is the node whose calls, connections, references and streams
	// are measured. Required.
	Node *runtime.Node
	// Membership, if set, adds the membership's figures.
	Membership MembershipSource
	// Cluster, if set, adds the topology's figures.
	Cluster TopologySource
	// Buckets are the latency histograms' upper bounds in seconds
	// (default: 50 µs to 5 s, roughly ×2.5 apart).
	Buckets []float64
	// ConstLabels are added to every metric: to tell apart several nodes
	// registered in one registry, for example {"node": name}.
	ConstLabels prometheus.Labels
}

// DefaultBuckets are the latency histograms' default bounds, in seconds.
var DefaultBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5}

// A Collector is a prometheus.Collector of one node's metrics. Register it
// with a prometheus.Registerer and serve the registry (promhttp).
type Collector struct {
	cfg Config

	// Call figures, kept by the call observer in stripes (stripes.go) and
	// turned into metrics when Prometheus scrapes.
	methods   atomic.Pointer[map[*codegen.MethodDesc]*methodMetrics]
	methodsMu sync.Mutex // held to add a method
	stripes   *percpu.Picker
	bounds    []int64 // the latency buckets' upper bounds, in nanoseconds
	// Relayed calls: counted with client_golang's counters (a relayed call
	// costs far more than an increment, striped or not).
	relayed, relayedFailures prometheus.Counter

	clientCalls, serverCalls       *prometheus.Desc // service, method, outcome
	clientLatency, serverLatency   *prometheus.Desc // service, method
	clientSent, clientReceived     *prometheus.Desc // service, method
	serverReceived, serverSent     *prometheus.Desc // service, method
	clientInFlight, serverInFlight *prometheus.Desc
	routed, hops                   *prometheus.Desc

	// Figures read at scrape time.
	connections, exports, holds, imports, pending, streams *prometheus.Desc
	members, suspicions, failures, refutations, refused    *prometheus.Desc
	hbSent, hbReceived                                     *prometheus.Desc
	epoch, topoMembers, edges, cascades, cascadeDuration   *prometheus.Desc
}

// New returns a collector of cfg.Node's metrics and installs its call
// observer and relay interceptor on the node: the calls that start
// afterwards are counted. Make one collector per node: each New installs
// another observer, which counts every call again.
func New(cfg Config) (*Collector, error) {
	if cfg.Node == nil {
		return nil, errors.New("metrics: Config.Node is required")
	}
	if len(cfg.Buckets) == 0 {
		cfg.Buckets = DefaultBuckets
	}
	if !slices.IsSorted(cfg.Buckets) {
		return nil, fmt.Errorf("metrics: Config.Buckets %v are not in increasing order", cfg.Buckets)
	}
	if math.IsInf(cfg.Buckets[len(cfg.Buckets)-1], +1) {
		cfg.Buckets = cfg.Buckets[:len(cfg.Buckets)-1] // +Inf is implicit
	}
	c := &Collector{cfg: cfg, stripes: percpu.NewPicker(), bounds: latencyBounds(cfg.Buckets)}
	c.methods.Store(&map[*codegen.MethodDesc]*methodMetrics{})
	cl := cfg.ConstLabels
	c.relayed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "trellis", Name: "relayed_calls_total", Help: "Calls this node relayed between two other nodes.", ConstLabels: cl})
	c.relayedFailures = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "trellis", Name: "relayed_call_failures_total", Help: "Relayed calls whose reply could not be forwarded (next hop lost, caller gone).", ConstLabels: cl})

	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("trellis_"+name, help, labels, cl)
	}
	c.clientCalls = desc("client_calls_total", "Calls made, by method and outcome (ok, application, or the kind of failure of the machinery).", "service", "method", "outcome")
	c.serverCalls = desc("server_calls_total", "Calls served, by method and outcome (ok, application, remote_panic, ...).", "service", "method", "outcome")
	c.clientLatency = desc("client_call_duration_seconds", "Time from a call's start to the arrival of its reply, or to its failure, on the caller.", "service", "method")
	c.serverLatency = desc("server_call_duration_seconds", "Time a call's handler took, on the server.", "service", "method")
	c.clientSent = desc("client_sent_bytes_total", "Bytes of the calls made (envelope and arguments).", "service", "method")
	c.clientReceived = desc("client_received_bytes_total", "Bytes of the replies received (envelope and results).", "service", "method")
	c.serverReceived = desc("server_received_bytes_total", "Bytes of the encoded arguments of the calls served.", "service", "method")
	c.serverSent = desc("server_sent_bytes_total", "Bytes of the encoded results of the calls served.", "service", "method")
	c.clientInFlight = desc("client_calls_in_flight", "Calls made and awaiting their outcome.")
	c.serverInFlight = desc("server_calls_in_flight", "Calls being served.")
	c.routed = desc("client_routed_calls_total", "Calls made to a node that is not a neighbour, handed to a neighbour to relay.")
	c.hops = desc("server_call_hops", "Connections crossed by the calls served (1: from a neighbour).")
	c.connections = desc("connections", "Open connections to other nodes.")
	c.exports = desc("references_exported", "Objects this node exports by reference.")
	c.holds = desc("references_holders", "(object, holder) pairs of the objects this node exports.")
	c.imports = desc("references_imported", "Objects of other nodes this node holds proxies of.")
	c.pending = desc("references_releases_pending", "Releases of references not yet sent.")
	c.streams = desc("streams", "Open streams, by direction.", "direction")
	c.members = desc("membership_members", "Live members as this node sees them, by state.", "state")
	c.suspicions = desc("membership_suspicions_total", "Members this node suspected.")
	c.failures = desc("membership_failures_total", "Members this node declared failed.")
	c.refutations = desc("membership_refutations_total", "Suspected members found alive again.")
	c.refused = desc("membership_packets_refused_total", "Heartbeat packets refused, by reason (forged, replayed, malformed, foreign_cluster).", "reason")
	c.hbSent = desc("membership_packets_sent_total", "Membership packets sent.")
	c.hbReceived = desc("membership_packets_received_total", "Membership packets received, accepted or not.")
	c.epoch = desc("topology_epoch", "Epoch of the committed topology (0 before the first).")
	c.topoMembers = desc("topology_members", "Members of the committed topology.")
	c.edges = desc("topology_edges", "Edges of the committed topology.")
	c.cascades = desc("topology_cascades_total", "Topologies this node cascaded as leader, by outcome (ok, failed).", "outcome")
	c.cascadeDuration = desc("topology_cascade_duration_seconds", "Duration of the cascades this node led (prepare and commit).")

	cfg.Node.Observe(callObserver{c})
	cfg.Node.Intercept(nil, nil, c.interceptRelay)
	return c, nil
}

// callDescs are the descriptions of the call metrics made at scrape time.
func (c *Collector) callDescs() []*prometheus.Desc {
	return []*prometheus.Desc{
		c.clientCalls, c.serverCalls, c.clientLatency, c.serverLatency,
		c.clientSent, c.clientReceived, c.serverReceived, c.serverSent,
		c.clientInFlight, c.serverInFlight, c.routed, c.hops,
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.relayed.Describe(ch)
	c.relayedFailures.Describe(ch)
	for _, d := range c.callDescs() {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{c.connections, c.exports, c.holds, c.imports, c.pending, c.streams} {
		ch <- d
	}
	if c.cfg.Membership != nil {
		for _, d := range []*prometheus.Desc{c.members, c.suspicions, c.failures, c.refutations, c.refused, c.hbSent, c.hbReceived} {
			ch <- d
		}
	}
	if c.cfg.Cluster != nil {
		for _, d := range []*prometheus.Desc{c.epoch, c.topoMembers, c.edges, c.cascades, c.cascadeDuration} {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.relayed.Collect(ch)
	c.relayedFailures.Collect(ch)
	c.collectCalls(ch)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	n := c.cfg.Node
	gauge(c.connections, float64(len(n.Peers())))
	rs := n.RefStats()
	gauge(c.exports, float64(rs.Exports))
	gauge(c.holds, float64(rs.Holds))
	gauge(c.imports, float64(rs.Imports))
	gauge(c.pending, float64(rs.Pending))
	sending, receiving := n.StreamStats()
	gauge(c.streams, float64(sending), "sending")
	gauge(c.streams, float64(receiving), "receiving")

	if m := c.cfg.Membership; m != nil {
		counts := map[membership.State]int{membership.StateAlive: 0, membership.StateSuspected: 0}
		for _, mb := range m.Members() {
			counts[mb.State]++
		}
		for st, k := range counts {
			gauge(c.members, float64(k), st.String())
		}
		s := m.Stats()
		counter(c.suspicions, s.Suspicions)
		counter(c.failures, s.Failures)
		counter(c.refutations, s.Refutations)
		counter(c.refused, s.Forged, "forged")
		counter(c.refused, s.Replayed, "replayed")
		counter(c.refused, s.Malformed, "malformed")
		counter(c.refused, s.ForeignCluster, "foreign_cluster")
		counter(c.hbSent, s.PacketsSent)
		counter(c.hbReceived, s.PacketsReceived)
	}
	if cl := c.cfg.Cluster; cl != nil {
		t := cl.Topology()
		gauge(c.epoch, float64(t.Epoch))
		gauge(c.topoMembers, float64(len(t.Members)))
		gauge(c.edges, float64(len(t.Edges)))
		s := cl.Stats()
		counter(c.cascades, s.Cascades-s.Failed, "ok")
		counter(c.cascades, s.Failed, "failed")
		ch <- prometheus.MustNewConstSummary(c.cascadeDuration, s.Cascades, s.Duration.Seconds(), nil)
	}
}

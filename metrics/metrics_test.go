package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/memberlist"
	"github.com/trellisrpc/trellis/metrics"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// scrape gathers reg and returns its text exposition parsed back, so every
// check goes through the format Prometheus reads.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode: %v", err)
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	out, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v\n%s", err, buf.String())
	}
	return out
}

// value returns the value of the sample of family name whose labels
// include labels ("k=v" pairs), or -1 if there is none. A histogram or
// summary gives its count.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount())
		}
	}
	return -1
}

// routes is a fixed routing table.
type routes map[runtime.NodeID]runtime.NodeID

func (r routes) NextHop(dst runtime.NodeID) (runtime.NodeID, bool) {
	next, ok := r[dst]
	return next, ok
}

// testKeyring is the cluster keyring of the nodes these tests make.
var testKeyring, _ = keyring.New([]byte("metrics-test-cluster-key-0123456"))

func newNode(t *testing.T, name string) *runtime.Node {
	t.Helper()
	n, err := runtime.NewNode(runtime.Config{Name: name, Addr: "127.0.0.1:0", Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	if err := testsvc.RegisterKitchen(n, testsvc.NewImpl()); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCallMetrics makes calls of every outcome from A to C over a line
// A-B-C and checks the client's, the relay's and the server's counters.
func TestCallMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b, c := newNode(t, "A"), newNode(t, "B"), newNode(t, "C")
	if _, err := a.Connect(ctx, b.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Connect(ctx, c.Addr().String()); err != nil {
		t.Fatal(err)
	}
	a.SetRouter(routes{c.ID(): b.ID()})
	b.SetRouter(routes{})
	c.SetRouter(routes{a.ID(): b.ID()}) // the way back: C accepts a call from A only through B
	regs := map[string]*prometheus.Registry{}
	for name, n := range map[string]*runtime.Node{"A": a, "B": b, "C": c} {
		col, err := metrics.New(metrics.Config{Node: n})
		if err != nil {
			t.Fatal(err)
		}
		regs[name] = prometheus.NewRegistry()
		regs[name].MustRegister(col)
	}
	k := testsvc.NewKitchenProxy(a, c.ID())
	const svc = "service=github.com/trellisrpc/trellis/internal/testsvc.Kitchen"
	for i := range 3 {
		if _, _, err := k.Echo(ctx, "hello", i); err != nil {
			t.Fatal(err)
		}
	}
	k.Fail(ctx, "plain")
	k.Panic(ctx, "boom")
	dctx, dcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	k.Sleep(dctx, time.Minute)
	dcancel()
	testsvc.NewKitchenProxy(a, runtime.NodeID(4242)).Nothing(ctx)

	ma := scrape(t, regs["A"])
	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"ok calls", "trellis_client_calls_total", []string{svc, "method=Echo", "outcome=ok"}, 3},
		{"application errors", "trellis_client_calls_total", []string{svc, "method=Fail", "outcome=application"}, 1},
		{"remote panics", "trellis_client_calls_total", []string{svc, "method=Panic", "outcome=remote_panic"}, 1},
		{"deadlines", "trellis_client_calls_total", []string{svc, "method=Sleep", "outcome=deadline_exceeded"}, 1},
		{"no route", "trellis_client_calls_total", []string{svc, "method=Nothing", "outcome=no_route"}, 1},
		{"latencies", "trellis_client_call_duration_seconds", []string{svc, "method=Echo"}, 3},
		{"routed", "trellis_client_routed_calls_total", nil, 6},
		{"in flight", "trellis_client_calls_in_flight", nil, 0},
		{"connections", "trellis_connections", nil, 1},
	}
	for _, tt := range tests {
		if got := value(ma, tt.metric, tt.labels...); got != tt.want {
			t.Errorf("A: %s: %s%v = %v, want %v", tt.name, tt.metric, tt.labels, got, tt.want)
		}
	}
	if got := value(ma, "trellis_client_sent_bytes_total", svc, "method=Echo"); got <= 0 {
		t.Errorf("A: sent bytes for Echo = %v, want > 0", got)
	}
	if got := value(ma, "trellis_client_received_bytes_total", svc, "method=Echo"); got <= 0 {
		t.Errorf("A: received bytes for Echo = %v, want > 0", got)
	}
	if got := value(scrape(t, regs["B"]), "trellis_relayed_calls_total"); got != 6 {
		t.Errorf("B: relayed calls = %v, want 6", got)
	}
	// The server's counters move once its handlers end; the one whose
	// deadline passed may still be ending.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mc := scrape(t, regs["C"])
		ok := value(mc, "trellis_server_calls_total", svc, "method=Echo", "outcome=ok") == 3 &&
			value(mc, "trellis_server_calls_total", svc, "method=Panic", "outcome=remote_panic") == 1 &&
			value(mc, "trellis_server_calls_total", svc, "method=Fail", "outcome=application") == 1 &&
			value(mc, "trellis_server_calls_total", svc, "method=Sleep", "outcome=deadline_exceeded") == 1 &&
			value(mc, "trellis_server_call_hops", nil...) == 6
		if ok {
			break
		}
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			for _, n := range []string{"trellis_server_calls_total", "trellis_server_call_hops"} {
				fmt.Fprintln(&buf, mc[n])
			}
			t.Fatalf("C's server counters did not reach the calls made:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond) // polling a scrape: there is no event to await
	}
}

// freeUDPAddr returns a loopback UDP address that was free a moment ago.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

// member is one in-process cluster member on loopback.
type member struct {
	node *runtime.Node
	disc *membership.Node
	cl   *cluster.Cluster
}

func startMember(t *testing.T, name, bind string, key []byte, seeds ...string) *member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	node := newNode(t, name)
	disc, err := membership.New(membership.Config{
		ID: node.ID(), Name: name, Addr: node.Addr().String(),
		Keys: [][]byte{key}, DisableMulticast: true, BindAddr: bind, Seeds: seeds,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := disc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disc.Close() })
	cl, err := cluster.New(cluster.Config{Node: node, Discovery: disc})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &member{node: node, disc: disc, cl: cl}
}

// TestMembershipAndTopologyMetrics runs a cluster of three, lets a node
// with the wrong key send heartbeats to one of them and kills another, and
// checks that the topology's and the membership's figures follow.
func TestMembershipAndTopologyMetrics(t *testing.T) {
	seed := freeUDPAddr(t)
	a := startMember(t, "A", seed, testKey, seed)
	b := startMember(t, "B", "127.0.0.1:0", testKey, seed)
	c := startMember(t, "C", "127.0.0.1:0", testKey, seed)
	col, err := metrics.New(metrics.Config{Node: a.node, Membership: a.disc, Cluster: a.cl, ConstLabels: prometheus.Labels{"node": "A"}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.cl.Wait(ctx, func(t topology.Topology) bool { return len(t.Members) == 3 && len(t.Edges) == 3 }); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, reg)
	for _, tt := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"trellis_topology_members", nil, 3},
		{"trellis_topology_edges", nil, 3},
		{"trellis_membership_members", []string{"state=alive"}, 3},
		{"trellis_membership_failures_total", nil, 0},
		{"trellis_membership_packets_refused_total", []string{"reason=forged"}, 0},
	} {
		if got := value(m, tt.metric, append(tt.labels, "node=A")...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
		}
	}
	if got := value(m, "trellis_topology_epoch"); got < 1 {
		t.Errorf("epoch = %v, want >= 1", got)
	}
	// A commits locally before its commit reaches the others: wait until a
	// cascade of A's has reached every member, or C's death could fail the
	// first one.
	var okBefore float64
	for {
		if okBefore = value(scrape(t, reg), "trellis_topology_cascades_total", "outcome=ok"); okBefore >= 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no cascade of A's reached every member")
		}
		time.Sleep(10 * time.Millisecond) // polling a scrape: there is no event to await
	}
	// A stranger with another key: its heartbeats are forged to A.
	stranger, err := membership.New(membership.Config{
		Name: "stranger", Addr: "127.0.0.1:1", Keys: [][]byte{[]byte("another key, 32 bytes long......")},
		DisableMulticast: true, BindAddr: "127.0.0.1:0", Seeds: []string{seed},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := stranger.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	// C crashes.
	c.cl.Close()
	c.disc.Close()
	c.node.Close(context.Background())
	_ = b

	deadline := time.Now().Add(8 * time.Second)
	for {
		m := scrape(t, reg)
		forged := value(m, "trellis_membership_packets_refused_total", "reason=forged")
		failures := value(m, "trellis_membership_failures_total")
		alive := value(m, "trellis_membership_members", "state=alive")
		edges := value(m, "trellis_topology_edges")
		// A, the oldest, leads: it cascaded the topology of three, then
		// the one of two.
		cascades := value(m, "trellis_topology_cascades_total", "outcome=ok")
		if forged > 0 && failures >= 1 && alive == 2 && edges == 1 && cascades > okBefore {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a forger came and C died: forged %v, failures %v, alive %v, edges %v, cascades %v; want > 0, >= 1, 2, 1, > %v", forged, failures, alive, edges, cascades, okBefore)
		}
		time.Sleep(20 * time.Millisecond) // polling a scrape: there is no event to await
	}
}

// TestInFlight checks the in-flight gauges while a call is being served,
// and after.
func TestInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := newNode(t, "A"), newNode(t, "B")
	if _, err := a.Connect(ctx, b.Addr().String()); err != nil {
		t.Fatal(err)
	}
	regs := map[*runtime.Node]*prometheus.Registry{}
	for _, n := range []*runtime.Node{a, b} {
		col, err := metrics.New(metrics.Config{Node: n})
		if err != nil {
			t.Fatal(err)
		}
		regs[n] = prometheus.NewRegistry()
		regs[n].MustRegister(col)
	}
	served := make(chan struct{})
	b.Intercept(nil, func(ctx context.Context, _ *runtime.IncomingCall, next func(context.Context) error) error {
		close(served)
		return next(ctx)
	}, nil)
	callCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- testsvc.NewKitchenProxy(a, b.ID()).Sleep(callCtx, time.Minute) }()
	select {
	case <-served:
	case <-ctx.Done():
		t.Fatal("the call was not served within 10 s")
	}
	if got := value(scrape(t, regs[a]), "trellis_client_calls_in_flight"); got != 1 {
		t.Errorf("A: client calls in flight = %v during the call, want 1", got)
	}
	if got := value(scrape(t, regs[b]), "trellis_server_calls_in_flight"); got != 1 {
		t.Errorf("B: server calls in flight = %v during the call, want 1", got)
	}
	stop()
	<-done
	if got := value(scrape(t, regs[a]), "trellis_client_calls_in_flight"); got != 0 {
		t.Errorf("A: client calls in flight = %v after the call, want 0", got)
	}
	// B ends the call when the caller's cancel frame arrives.
	for deadline := time.Now().Add(5 * time.Second); value(scrape(t, regs[b]), "trellis_server_calls_in_flight") != 0; {
		if time.Now().After(deadline) {
			t.Fatal("B: server calls in flight did not return to 0 within 5 s of the call's cancellation")
		}
		time.Sleep(10 * time.Millisecond) // polling a scrape: there is no event to await
	}
}

// TestForCluster measures a member joined with cluster.Join: its calls,
// its membership and its topology, from the configuration ForCluster makes.
func TestForCluster(t *testing.T) {
	for _, tt := range []struct {
		name      string
		discovery func(membership.Config) (membership.Discovery, error)
	}{
		{"built-in membership", nil},
		{"memberlist", memberlist.Backend(memberlist.Config{Preset: memberlist.Local})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			seed := freeUDPAddr(t)
			c, err := cluster.Join(ctx, cluster.Options{
				Name: "A", Key: testKey, Addr: "127.0.0.1:0", Seeds: []string{seed}, GossipAddr: seed, Discovery: tt.discovery,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cfg := metrics.ForCluster(c)
			if cfg.Node != c.Node() || cfg.Cluster == nil || cfg.Membership == nil {
				t.Fatalf("ForCluster = %+v: want the node, the cluster and the membership", cfg)
			}
			col, err := metrics.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(col)
			if _, err := c.Wait(ctx, func(t topology.Topology) bool { return len(t.Members) == 1 }); err != nil {
				t.Fatal(err)
			}
			m := scrape(t, reg)
			if got := value(m, "trellis_membership_members", "state=alive"); got != 1 {
				t.Errorf("trellis_membership_members{state=alive} = %v, want 1", got)
			}
			if got := value(m, "trellis_topology_members"); got != 1 {
				t.Errorf("trellis_topology_members = %v, want 1", got)
			}
		})
	}
}

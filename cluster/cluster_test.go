package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// member is one in-process cluster member on loopback.
type member struct {
	name string
	node *runtime.Node
	disc *membership.Node
	cl   *cluster.Cluster
	port int // RPC listening port
	dead bool
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

// startMember starts a member whose membership binds bind (empty: any port)
// and heartbeats seeds.
func startMember(t *testing.T, name, bind string, seeds ...string) *member {
	return startMemberWith(t, topology.Ring{}, name, bind, seeds...)
}

// startMemberWith starts a member using strategy s.
func startMemberWith(t *testing.T, s topology.Strategy, name, bind string, seeds ...string) *member {
	t.Helper()
	return startMemberOpts(t, memberOpts{strategy: s}, name, bind, seeds...)
}

// memberOpts are the less common settings of a test member.
type memberOpts struct {
	strategy topology.Strategy
	fabric   *fabric       // carries the membership packets (nil: plain UDP)
	id       nodeid.ID     // the node's ID (zero: random)
	addr     string        // the RPC address (empty: any port)
	interval time.Duration // the cluster's Interval (zero: the default)
}

// startMemberOpts starts a member with o.
func startMemberOpts(t *testing.T, o memberOpts, name, bind string, seeds ...string) *member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if o.strategy == nil {
		o.strategy = topology.Ring{}
	}
	if o.addr == "" {
		o.addr = "127.0.0.1:0"
	}
	ring, err := keyring.New(testKey) // one ring for the RPC handshakes and the heartbeats
	if err != nil {
		t.Fatal(err)
	}
	node, err := runtime.NewNode(runtime.Config{Name: name, Addr: o.addr, ID: o.id, Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	mcfg := membership.Config{
		ID: node.ID(), Name: name, Addr: node.Addr().String(),
		Keyring: ring, DisableMulticast: true, BindAddr: "127.0.0.1:0", Seeds: seeds,
	}
	if bind != "" {
		mcfg.BindAddr = bind
	}
	if o.fabric != nil {
		tr, err := o.fabric.listen(mcfg.BindAddr)
		if err != nil {
			t.Fatal(err)
		}
		mcfg.Transport = tr
		o.fabric.attach(node)
	}
	s := o.strategy
	disc, err := membership.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := disc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	impl := testsvc.NewImpl()
	if err := testsvc.RegisterKitchen(node, impl); err != nil {
		t.Fatal(err)
	}
	if err := testsvc.RegisterControl(node, impl); err != nil {
		t.Fatal(err)
	}
	var logger *slog.Logger
	if os.Getenv("TRELLIS_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cl, err := cluster.New(cluster.Config{Node: node, Discovery: disc, Strategy: s, Logger: logger, Interval: o.interval})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Start(); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(node.Addr().String(), ":")
	p, _ := strconv.Atoi(port)
	m := &member{name: name, node: node, disc: disc, cl: cl, port: p}
	t.Cleanup(func() { m.kill() })
	return m
}

// kill stops the member without a goodbye, as a crash would.
func (m *member) kill() {
	if m.dead {
		return
	}
	m.dead = true
	m.cl.Close()
	m.disc.Close() // no-op if frozen
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no draining: a crash
	m.node.Close(ctx)
}

// agree waits until every live member has committed the same topology with
// exactly the live members, and the established TCP connections among them
// (counted from /proc/net/tcp) equal its edges.
func agree(t *testing.T, ms []*member, within time.Duration) topology.Topology {
	t.Helper()
	deadline := time.Now().Add(within)
	var live []*member
	for _, m := range ms {
		if !m.dead {
			live = append(live, m)
		}
	}
	var last string
	for {
		ok, top, why := agreement(live)
		if ok {
			return top
		}
		last = why
		if time.Now().After(deadline) {
			for _, m := range live {
				top := m.cl.Topology()
				t.Logf("%s: epoch %d %s; members %v", m.name, top.Epoch, topology.Diagram(top), m.disc.Members())
			}
			t.Fatalf("no agreement within %v: %s", within, last)
		}
		time.Sleep(20 * time.Millisecond) // polling sockets: there is no event to await
	}
}

func agreement(live []*member) (bool, topology.Topology, string) {
	first := live[0].cl.Topology()
	if len(first.Members) != len(live) {
		return false, first, fmt.Sprintf("%s has %d members, want %d", live[0].name, len(first.Members), len(live))
	}
	for _, m := range live {
		top := m.cl.Topology()
		if !top.Equal(first) {
			return false, first, fmt.Sprintf("%s has epoch %d, %s has epoch %d", live[0].name, first.Epoch, m.name, top.Epoch)
		}
		if !top.Contains(m.node.ID()) {
			return false, first, fmt.Sprintf("%s is not in the topology", m.name)
		}
	}
	ports := make(map[int]bool)
	for _, m := range live {
		ports[m.port] = true
	}
	conns, err := establishedTo(ports)
	if err != nil {
		return false, first, err.Error()
	}
	if conns != len(first.Edges) {
		return false, first, fmt.Sprintf("%d TCP connections, %d edges", conns, len(first.Edges))
	}
	return true, first, ""
}

// establishedTo counts the established TCP sockets whose local port is one
// of ports: the accepting ends of the connections between members.
func establishedTo(ports map[int]bool) (int, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "01" { // 01: ESTABLISHED
			continue
		}
		_, local, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseInt(local, 16, 32)
		if err == nil && ports[int(port)] {
			n++
		}
	}
	return n, sc.Err()
}

// caller makes routed calls from one member to another until stopped and
// checks that every failure is a typed machinery error.
type caller struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	kinds      map[string]int // failures by message
	untyped    []error
	stop       chan struct{}
	done       chan struct{}
}

func startCaller(from, to *member) *caller {
	c := &caller{stop: make(chan struct{}), done: make(chan struct{})}
	k := testsvc.NewKitchenProxy(from.node, to.node.ID())
	go func() {
		defer close(c.done)
		for i := 0; ; i++ {
			select {
			case <-c.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s, n, err := k.Echo(ctx, "ping", i)
			cancel()
			switch {
			case err == nil && s == "ping" && n == i:
				c.ok.Add(1)
			case errors.Is(err, runtime.ErrUnreachable), errors.Is(err, runtime.ErrNoRoute),
				errors.Is(err, runtime.ErrDeadlineExceeded), errors.Is(err, runtime.ErrShuttingDown):
				c.failed.Add(1)
				c.mu.Lock()
				if c.kinds == nil {
					c.kinds = map[string]int{}
				}
				msg := err.Error()
				if i := strings.LastIndex(msg, ": "); i > 0 && len(msg) > 60 {
					msg = msg[strings.Index(msg, "trellis:"):]
				}
				c.kinds[msg]++
				c.mu.Unlock()
			default:
				c.mu.Lock()
				c.untyped = append(c.untyped, fmt.Errorf("call %d: %q %d %w", i, s, n, err))
				c.mu.Unlock()
			}
		}
	}()
	return c
}

func (c *caller) finish(t *testing.T) {
	close(c.stop)
	<-c.done
	for _, err := range c.untyped {
		t.Errorf("untyped failure: %v", err)
	}
}

func (c *caller) waitSuccess(t *testing.T, within time.Duration) {
	t.Helper()
	start := c.ok.Load()
	deadline := time.Now().Add(within)
	for c.ok.Load() < start+5 {
		if time.Now().After(deadline) {
			t.Fatalf("routed calls did not succeed again within %v (failed so far: %d)", within, c.failed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(ms []*member) map[nodeid.ID]*member {
	m := make(map[nodeid.ID]*member)
	for _, x := range ms {
		m[x.node.ID()] = x
	}
	return m
}

func TestEightNodesAgreeAndSurviveKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 nodes and waits for failure detection")
	}
	seeds := []string{freeUDPAddr(t)}
	ms := []*member{startMember(t, "LeaderNode", seeds[0], seeds...)}
	for i := 1; i < 8; i++ {
		ms = append(ms, startMember(t, fmt.Sprintf("Node%d", i), "", seeds...))
		seeds = append(seeds, ms[i].disc.Local().PacketAddr.String())
		agree(t, ms, 5*time.Second) // members join one by one, in order
	}
	top := agree(t, ms, 5*time.Second)
	if want := "LeaderNode -- Node1 -- Node2 -- Node3 -- Node4 -- Node5 -- Node6 -- Node7 -- LeaderNode"; topology.Diagram(top) != want {
		t.Fatalf("topology %q, want %q", topology.Diagram(top), want)
	}
	byID := names(ms)
	from, to := ms[2], ms[6] // four hops apart on the ring of 8
	if path := from.cl.Route(to.node.ID()); len(path) != 5 {
		t.Fatalf("route %v, want 4 hops", path)
	}
	calls := startCaller(from, to)
	defer calls.finish(t)
	calls.waitSuccess(t, 2*time.Second)

	for _, victim := range []*member{ms[0], ms[7]} { // the leader, then a node on the route
		victim.kill()
		start := time.Now()
		// Failure detection (≤ 1.5 s) plus the cascade: ~1.2 s here, and
		// 2.5 s to over 3 s with the whole suite under -race beside it.
		top := agree(t, ms, 5*time.Second)
		t.Logf("killed %s: agreement on epoch %d after %v: %s", victim.name, top.Epoch, time.Since(start).Round(time.Millisecond), topology.Diagram(top))
		calls.waitSuccess(t, 2*time.Second)
		var hops []string
		for _, id := range from.cl.Route(to.node.ID()) {
			hops = append(hops, byID[id].name)
		}
		t.Logf("route %s", strings.Join(hops, " -> "))
	}
	t.Logf("routed calls: %d ok, %d failed with typed errors", calls.ok.Load(), calls.failed.Load())
	calls.mu.Lock()
	for k, n := range calls.kinds {
		t.Logf("  %6d × %s", n, k)
	}
	calls.mu.Unlock()
}

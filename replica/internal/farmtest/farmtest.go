// Package farmtest runs farms of in-process cluster members with replica
// stores on loopback, for the tests of package replica and its users.
package farmtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/membershiptest"
	"github.com/trellisrpc/trellis/replica"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// Config configures the stores of a farm (Cluster is set per server).
type Config = replica.Config

// A Server is one in-process cluster member with a store.
type Server struct {
	Name  string
	Store *replica.Store
	node  *runtime.Node
	disc  *membership.Node
	cl    *cluster.Cluster
	dead  bool
	addr  netip.AddrPort // its membership address on the farm's network, if any
}

// Node returns the server's node; with Topology and Wait it makes a Server
// a replica.Cluster.
func (s *Server) Node() *runtime.Node { return s.node }

// Discovery returns the server's membership: with it the store knows when
// the server is cut off from the majority.
func (s *Server) Discovery() membership.Discovery { return s.disc }

// Topology returns the server's committed topology.
func (s *Server) Topology() topology.Topology { return s.cl.Topology() }

// Wait waits until the server's committed topology satisfies ok.
func (s *Server) Wait(ctx context.Context, ok func(topology.Topology) bool) (topology.Topology, error) {
	return s.cl.Wait(ctx, ok)
}

// A Farm is a set of servers joined into one ring.
type Farm struct {
	Servers []*Server
	t       testing.TB
	seeds   []string
	cfg     Config
	net     *membershiptest.Network // nil: membership over UDP on loopback
}

// New starts n servers and waits until they agree on a topology.
func New(t testing.TB, n int, cfg Config) *Farm {
	f := &Farm{t: t, cfg: cfg}
	for i := range n {
		f.Start(fmt.Sprintf("s%d", i))
	}
	f.Agree()
	return f
}

// NewPartitionable is New with the servers' heartbeats carried by an
// in-memory network, so that Partition can cut servers off from each other
// (their RPC connections stay on loopback: the cluster closes them when
// membership says a member failed).
func NewPartitionable(t testing.TB, n int, cfg Config) *Farm {
	f := &Farm{t: t, cfg: cfg, net: membershiptest.NewNetwork(membershiptest.Options{Seed: 1})}
	for i := range n {
		f.Start(fmt.Sprintf("s%d", i))
	}
	f.Agree()
	return f
}

// Partition splits a partitionable farm's heartbeats into the groups given;
// Heal ends it.
func (f *Farm) Partition(groups ...[]*Server) {
	var gs [][]netip.AddrPort
	for _, g := range groups {
		var as []netip.AddrPort
		for _, s := range g {
			as = append(as, s.addr)
		}
		gs = append(gs, as)
	}
	f.net.Partition(gs...)
}

// Heal ends a partition.
func (f *Farm) Heal() { f.net.Heal() }

// Start starts a server and joins it to the farm.
func (f *Farm) Start(name string) *Server {
	t := f.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ring, err := keyring.New(testKey) // one ring for the RPC handshakes and the heartbeats
	if err != nil {
		t.Fatal(err)
	}
	node, err := runtime.NewNode(runtime.Config{Name: name, Addr: "127.0.0.1:0", Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	mcfg := membership.Config{
		ID: node.ID(), Name: name, Addr: node.Addr().String(),
		Keyring: ring, DisableMulticast: true, BindAddr: "127.0.0.1:0",
	}
	// Every server binds a known address and seeds every earlier one, so
	// that the farm holds together whichever server dies.
	mcfg.BindAddr = freeUDPAddr(t)
	var addr netip.AddrPort
	if f.net != nil {
		addr = netip.MustParseAddrPort(mcfg.BindAddr)
		ep, err := f.net.Listen(addr, false)
		if err != nil {
			t.Fatal(err)
		}
		mcfg.Transport = ep
	}
	f.seeds = append(f.seeds, mcfg.BindAddr)
	mcfg.Seeds = f.seeds
	disc, err := membership.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := disc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := cluster.New(cluster.Config{Node: node, Discovery: disc})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Name: name, node: node, disc: disc, cl: cl, addr: addr}
	cfg := f.cfg
	cfg.Cluster = s
	if s.Store, err = replica.New(cfg); err != nil {
		t.Fatal(err)
	}
	f.Servers = append(f.Servers, s)
	t.Cleanup(s.Kill)
	return s
}

// freeUDPAddr returns a loopback UDP address that was free a moment ago.
func freeUDPAddr(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// Kill stops s without a goodbye, as a crash would.
func (s *Server) Kill() {
	if s.dead {
		return
	}
	s.dead = true
	s.Store.Close()
	s.cl.Close()
	s.disc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.node.Close(ctx)
}

// Stop stops s gracefully: its entries are handed over, then it leaves.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Store.Leave(ctx); err != nil {
		t.Fatalf("%s: leave: %v", s.Name, err)
	}
	s.dead = true
	s.Store.Close()
	s.cl.Close()
	s.disc.Leave(ctx)
	s.disc.Close()
	s.node.Close(ctx)
}

// Live returns the servers still running.
func (f *Farm) Live() []*Server {
	var l []*Server
	for _, s := range f.Servers {
		if !s.dead {
			l = append(l, s)
		}
	}
	return l
}

// Agree waits until every live server has committed the same topology with
// exactly the live servers.
func (f *Farm) Agree() topology.Topology {
	f.t.Helper()
	return f.AgreeAmong(f.Live()...)
}

// AgreeAmong waits until the servers given have committed the same
// topology with exactly them as members.
func (f *Farm) AgreeAmong(live ...*Server) topology.Topology {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		top := live[0].cl.Topology()
		ok := len(top.Members) == len(live)
		for _, s := range live {
			if !s.cl.Topology().Equal(top) || len(s.disc.Members()) != len(live) {
				ok = false
			}
		}
		if ok {
			return top
		}
		// Wait for the next commit on the first server, or briefly for the
		// others to catch up with it.
		wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		live[0].cl.Wait(wctx, func(t topology.Topology) bool { return t.Epoch > top.Epoch })
		wcancel()
		if ctx.Err() != nil {
			for _, s := range live {
				top := s.cl.Topology()
				f.t.Logf("%s: epoch %d %s; members %v", s.Name, top.Epoch, topology.Diagram(top), s.disc.Members())
			}
			f.t.Fatalf("servers did not agree on a topology of %d members within 15 s", len(live))
		}
	}
}

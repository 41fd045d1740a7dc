package replica_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/replica"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// server is one in-process cluster member with a store, on loopback.
type server struct {
	name  string
	node  *runtime.Node
	disc  *membership.Node
	cl    *cluster.Cluster
	store *replica.Store
	dead  bool
}

// Node and the cluster's methods make a server a replica.Cluster.
func (s *server) Node() *runtime.Node         { return s.node }
func (s *server) Topology() topology.Topology { return s.cl.Topology() }
func (s *server) Wait(ctx context.Context, ok func(topology.Topology) bool) (topology.Topology, error) {
	return s.cl.Wait(ctx, ok)
}

// farm is a set of servers joined into one ring.
type farm struct {
	t       *testing.T
	servers []*server
	seed    string
	cfg     replica.Config
}

func newFarm(t *testing.T, n int, cfg replica.Config) *farm {
	f := &farm{t: t, cfg: cfg}
	for i := range n {
		f.start(fmt.Sprintf("s%d", i))
	}
	f.agree()
	return f
}

// start starts a server and joins it to the farm.
func (f *farm) start(name string) *server {
	t := f.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	node, err := runtime.NewNode(runtime.Config{Name: name, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	mcfg := membership.Config{
		ID: node.ID(), Name: name, Addr: node.Addr().String(),
		Keys: [][]byte{testKey}, DisableMulticast: true, BindAddr: "127.0.0.1:0",
	}
	if f.seed == "" {
		f.seed = freeUDPAddr(t)
		mcfg.BindAddr = f.seed
	}
	mcfg.Seeds = []string{f.seed}
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
	s := &server{name: name, node: node, disc: disc, cl: cl}
	cfg := f.cfg
	cfg.Cluster = s
	if s.store, err = replica.New(cfg); err != nil {
		t.Fatal(err)
	}
	f.servers = append(f.servers, s)
	t.Cleanup(s.kill)
	return s
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

// kill stops s without a goodbye, as a crash would.
func (s *server) kill() {
	if s.dead {
		return
	}
	s.dead = true
	s.store.Close()
	s.cl.Close()
	s.disc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.node.Close(ctx)
}

// stop stops s gracefully: its entries are handed over, then it leaves.
func (s *server) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.store.Leave(ctx); err != nil {
		t.Fatalf("%s: leave: %v", s.name, err)
	}
	s.dead = true
	s.store.Close()
	s.cl.Close()
	s.disc.Leave(ctx)
	s.disc.Close()
	s.node.Close(ctx)
}

// live returns the servers still running.
func (f *farm) live() []*server {
	var l []*server
	for _, s := range f.servers {
		if !s.dead {
			l = append(l, s)
		}
	}
	return l
}

// agree waits until every live server has committed the same topology with
// exactly the live servers.
func (f *farm) agree() topology.Topology {
	f.t.Helper()
	live := f.live()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var top topology.Topology
	for {
		top = live[0].cl.Topology()
		ok := len(top.Members) == len(live)
		for _, s := range live {
			if !s.cl.Topology().Equal(top) {
				ok = false
			}
		}
		if ok {
			return top
		}
		// Wait for the next commit on the first server, or a short while
		// for the others to catch up.
		wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		live[0].cl.Wait(wctx, func(t topology.Topology) bool { return t.Epoch > top.Epoch })
		wcancel()
		if ctx.Err() != nil {
			f.t.Fatalf("servers did not agree on a topology of %d members within 15 s", len(live))
		}
	}
}

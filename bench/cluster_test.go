package main

// The cluster proxy figure: a call through a cluster proxy (which chooses
// the member per call) beside a call through the plain proxy to the same
// node, in the same process and the same run, in alternating rounds:
//
//	cd bench && TRELLIS_FIGURES=1 go test -run ClusterProxyFigure -v
//
// CPU per call is the process's user+system time (client and server
// together, the same work on both sides but the proxy's) over the calls.

import (
	"context"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/bench/echo"
	"github.com/trellisrpc/trellis/cluster"
)

var clusterKey = []byte("bench-cluster-key-0123456789abcdef")

func TestClusterProxyFigure(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") != "1" {
		t.Skip("set TRELLIS_FIGURES=1 to measure")
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := pc.LocalAddr().String()
	pc.Close()
	ctx := context.Background()
	join := func(name, gossip string) *cluster.Cluster {
		c, err := cluster.Join(ctx, cluster.Options{Name: name, Addr: "127.0.0.1:0", Key: clusterKey, GossipAddr: gossip, Seeds: []string{seed}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	server := join("server", seed)
	if err := echo.RegisterEchoer(server.Node(), echo.Impl{}); err != nil {
		t.Fatal(err)
	}
	client := join("client", "127.0.0.1:0")
	deadline := time.Now().Add(20 * time.Second)
	for !slices.ContainsFunc(client.Members(), func(m cluster.Member) bool { return m.Serves(echo.EchoerService) }) || !client.Node().Connected(server.ID()) {
		if time.Now().After(deadline) {
			t.Fatal("the client never saw the server serve Echoer")
		}
		time.Sleep(20 * time.Millisecond)
	}

	plain := echo.NewEchoerProxy(client.Node(), server.ID())
	clustered := echo.NewEchoerClusterProxy(client)
	req := echo.Req{ID: 1, Name: "bench", Tags: []string{"a", "b"}, Payload: make([]byte, 64)}
	const rounds, calls = 10, 5000
	type side struct {
		cpu  time.Duration
		n    int
		lats []time.Duration
	}
	var sides [2]side
	run := func(s *side, p echo.Echoer) {
		lats := make([]time.Duration, 0, calls)
		c0 := selfCPU()
		for range calls {
			t0 := time.Now()
			if _, err := p.Echo(ctx, req); err != nil {
				t.Fatal(err)
			}
			lats = append(lats, time.Since(t0))
		}
		s.cpu += selfCPU() - c0
		s.n += calls
		s.lats = append(s.lats, lats...)
	}
	run(&side{}, plain) // warm up
	run(&side{}, clustered)
	for r := range rounds {
		if r%2 == 0 {
			run(&sides[0], plain)
			run(&sides[1], clustered)
		} else {
			run(&sides[1], clustered)
			run(&sides[0], plain)
		}
	}
	p50 := func(s *side) time.Duration {
		slices.Sort(s.lats)
		return s.lats[len(s.lats)/2]
	}
	cpu := func(s *side) time.Duration { return s.cpu / time.Duration(s.n) }
	pl, cl := &sides[0], &sides[1]
	t.Logf("plain proxy:   CPU/call %v  p50 %v", cpu(pl), p50(pl))
	t.Logf("cluster proxy: CPU/call %v  p50 %v", cpu(cl), p50(cl))
	t.Logf("cluster ÷ plain: CPU/call %.3f× (target ≤ 1.05×), p50 %.3f× (target ≤ 1.1×)",
		float64(cpu(cl))/float64(cpu(pl)), float64(p50(cl))/float64(p50(pl)))
}

package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/cluster/status"
	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// member is one in-process cluster member on loopback.
type member struct {
	node *runtime.Node
	disc *membership.Node
	cl   *cluster.Cluster
	dead bool
}

// kill stops the member without a goodbye, as a crash would.
func (m *member) kill() {
	if m.dead {
		return
	}
	m.dead = true
	m.cl.Close()
	m.disc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.node.Close(ctx)
}

// startCluster starts n members forming a ring (heartbeats every 100 ms, so
// that a crash is noticed within about a second) and waits until the
// first one has committed a topology of all of them.
func startCluster(t *testing.T, n int) []*member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := c.LocalAddr().String()
	c.Close()
	ms := make([]*member, n)
	for i := range ms {
		name := string(rune('A' + i))
		ring, err := keyring.New(testKey) // one ring for the RPC handshakes and the heartbeats
		if err != nil {
			t.Fatal(err)
		}
		node, err := runtime.NewNode(runtime.Config{Name: name, Addr: "127.0.0.1:0", Keyring: ring})
		if err != nil {
			t.Fatal(err)
		}
		if err := testsvc.RegisterKitchen(node, testsvc.NewImpl()); err != nil {
			t.Fatal(err)
		}
		bind := "127.0.0.1:0"
		if i == 0 {
			bind = seed
		}
		disc, err := membership.New(membership.Config{
			ID: node.ID(), Name: name, Addr: node.Addr().String(), Keyring: ring,
			DisableMulticast: true, BindAddr: bind, Seeds: []string{seed},
			Interval: 100 * time.Millisecond, SuspectAfter: 400 * time.Millisecond, FailAfter: 600 * time.Millisecond,
		})
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
		m := &member{node: node, disc: disc, cl: cl}
		t.Cleanup(m.kill)
		ms[i] = m
	}
	if _, err := ms[0].cl.Wait(ctx, func(t topology.Topology) bool { return len(t.Members) == n }); err != nil {
		t.Fatal(err)
	}
	return ms
}

// serve serves the status of m on a loopback HTTP server.
func serve(t *testing.T, m *member, refresh time.Duration) (*status.Status, *httptest.Server) {
	t.Helper()
	st, err := status.New(status.Config{Node: m.node, Membership: m.disc, Cluster: m.cl, Refresh: refresh})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st)
	t.Cleanup(srv.Close)
	return st, srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitSnapshot fetches /status.json until ok accepts it, for at most within.
func waitSnapshot(t *testing.T, url string, within time.Duration, ok func(status.Snapshot) error) status.Snapshot {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, body := get(t, url+"/status.json")
		var s status.Snapshot
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatalf("status.json does not decode: %v\n%s", err, body)
		}
		err := ok(s)
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after %v: %v\n%s", within, err, body)
		}
		time.Sleep(20 * time.Millisecond) // polling a page: there is no event to await
	}
}

// TestStatusOfARing checks the JSON, the health endpoints and the call
// counts of a node of a ring of four, then that they follow a crash.
func TestStatusOfARing(t *testing.T) {
	ms := startCluster(t, 4)
	_, srv := serve(t, ms[0], time.Second)
	ready := func(n int) func(status.Snapshot) error {
		return func(s status.Snapshot) error {
			if !s.Ready || len(s.Edges) != n || len(s.Connections) != 2 && n > 2 {
				return fmt.Errorf("ready %v (%s), %d edges, %d connections; want %d edges", s.Ready, s.NotReady, len(s.Edges), len(s.Connections), n)
			}
			for _, e := range s.Edges {
				if e.State == "down" || e.State == "disconnected" {
					return fmt.Errorf("edge %s-%s is %s", e.A, e.B, e.State)
				}
			}
			return nil
		}
	}
	s := waitSnapshot(t, srv.URL, 10*time.Second, ready(4))
	if s.Name != "A" || s.Leader != ms[0].node.ID().String() || s.Epoch == 0 {
		t.Errorf("snapshot of %q: leader %s epoch %d; want A, led by A, epoch > 0", s.Name, s.Leader, s.Epoch)
	}
	if len(s.Members) != 4 {
		t.Errorf("%d members, want 4: %+v", len(s.Members), s.Members)
	}
	for _, m := range s.Members {
		if m.Self && len(m.Services) == 0 {
			t.Errorf("this node's services are not listed: %+v", m)
		}
	}
	if code, body := get(t, srv.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}
	code, body := get(t, srv.URL+"/")
	if code != 200 || !strings.Contains(body, "<svg id=\"topo\"") || strings.Contains(body, "http://") && !strings.Contains(body, "http://www.w3.org/2000/svg") {
		t.Errorf("/: %d, a page without its SVG or with external references:\n%s", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k := testsvc.NewKitchenProxy(ms[0].node, ms[2].node.ID()) // across the ring: routed
	for range 3 {
		if _, _, err := k.Echo(ctx, "x", 1); err != nil {
			t.Fatal(err)
		}
	}
	k.Fail(ctx, "plain")
	s = waitSnapshot(t, srv.URL, time.Second, func(s status.Snapshot) error {
		for _, m := range s.Methods {
			if m.Side == "client" && m.Method == "Echo" && m.Calls == 3 && m.Errors == 0 && m.MeanSeconds > 0 {
				return nil
			}
		}
		return fmt.Errorf("no client Echo with 3 calls in %+v", s.Methods)
	})
	var fails uint64
	for _, m := range s.Methods {
		if m.Side == "client" && m.Method == "Fail" {
			fails = m.Errors
		}
	}
	if fails != 1 {
		t.Errorf("client Fail errors = %d, want 1", fails)
	}

	ms[3].kill()
	waitSnapshot(t, srv.URL, 5*time.Second, func(s status.Snapshot) error {
		if len(s.Edges) != 3 || len(s.Members) != 3 || !s.Ready {
			return fmt.Errorf("%d members, %d edges, ready %v (%s); want 3, 3, true", len(s.Members), len(s.Edges), s.Ready, s.NotReady)
		}
		return nil
	})
}

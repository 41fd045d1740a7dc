package status_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/cluster/status"
	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/topology"
)

// joinRing starts n members named A, B, ... with cluster.Join on loopback,
// each serving testsvc.Kitchen, and waits until they all hold a topology of
// all of them.
func joinRing(t *testing.T, n int) []*cluster.Cluster {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := pc.LocalAddr().String()
	pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cs := make([]*cluster.Cluster, n)
	for i := range cs {
		gossip := "127.0.0.1:0"
		if i == 0 {
			gossip = seed
		}
		c, err := cluster.Join(ctx, cluster.Options{
			Name: string(rune('A' + i)), Addr: "127.0.0.1:0", Key: testKey,
			GossipAddr: gossip, Seeds: []string{seed},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if err := testsvc.RegisterKitchen(c.Node(), testsvc.NewImpl()); err != nil {
			t.Fatal(err)
		}
		cs[i] = c
	}
	for _, c := range cs {
		if _, err := c.Wait(ctx, func(t topology.Topology) bool { return len(t.Members) == n }); err != nil {
			t.Fatalf("%s: %v", c.Node().Name(), err)
		}
	}
	return cs
}

// TestForCluster serves the status of a member joined with cluster.Join and
// checks that the page shows the whole cluster, with the services every
// member advertises, and that the member is healthy and ready.
func TestForCluster(t *testing.T) {
	cs := joinRing(t, 3)
	st, err := status.ForCluster(cs[1])
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st)
	t.Cleanup(srv.Close)
	kitchen := testsvc.KitchenService.Name
	s := waitSnapshot(t, srv.URL, 10*time.Second, func(s status.Snapshot) error {
		if !s.Ready || len(s.Members) != 3 || len(s.Edges) != 3 {
			return fmt.Errorf("ready %v (%s), %d members, %d edges; want ready, 3, 3", s.Ready, s.NotReady, len(s.Members), len(s.Edges))
		}
		for _, m := range s.Members {
			// Every member's services are those it advertises: the
			// Kitchen, and not the runtime's or the cluster's own.
			if !slices.Equal(m.Services, []string{kitchen}) {
				return fmt.Errorf("member %s advertises %q, want [%s]", m.Name, m.Services, kitchen)
			}
		}
		return nil
	})
	if s.Name != "B" || s.Node != cs[1].ID().String() || s.Leader != cs[0].ID().String() {
		t.Errorf("status of %s (%s), leader %s; want B (%s), led by A (%s)", s.Name, s.Node, s.Leader, cs[1].ID(), cs[0].ID())
	}
	for _, path := range []string{"/healthz", "/readyz", "/"} {
		if code, body := get(t, srv.URL+path); code != 200 {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
}

func TestForClusterNil(t *testing.T) {
	if _, err := status.ForCluster(nil); err == nil {
		t.Fatal("ForCluster(nil) succeeded")
	}
}

// TestLastMemberReadyAfterTheOtherLeaves: of two members, one leaves
// gracefully; the other commits a topology of its own and is ready. (It
// stayed on the topology of two, the one that had left shown failed, and
// answered /readyz with 503 for good: an orchestrator would have killed the
// last member.)
func TestLastMemberReadyAfterTheOtherLeaves(t *testing.T) {
	cs := joinRing(t, 2)
	st, err := status.ForCluster(cs[1])
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st)
	t.Cleanup(srv.Close)
	waitSnapshot(t, srv.URL, 10*time.Second, func(s status.Snapshot) error {
		if !s.Ready {
			return fmt.Errorf("not ready: %s", s.NotReady)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cs[0].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, srv.URL, 5*time.Second, func(s status.Snapshot) error {
		if !s.Ready || len(s.Members) != 1 || len(s.Edges) != 0 {
			return fmt.Errorf("ready %v (%s), %d members, %d edges; want ready, alone", s.Ready, s.NotReady, len(s.Members), len(s.Edges))
		}
		return nil
	})
	if code, body := get(t, srv.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz of the last member: %d %s", code, body)
	}
}

// TestMountedUnderAPrefix mounts the status under /trellis with
// http.StripPrefix, as the package documentation says: asked for without
// the trailing slash, the page redirects to the prefix with one, where its
// relative fetch of status.json stays inside the mount.
func TestMountedUnderAPrefix(t *testing.T) {
	cs := joinRing(t, 1)
	st, err := status.ForCluster(cs[0])
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/trellis/", http.StripPrefix("/trellis", st))
	mux.Handle("/trellis", http.StripPrefix("/trellis", st))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, tc := range []struct {
		path     string
		code     int
		location string
	}{
		{"/trellis", http.StatusMovedPermanently, "/trellis/"},
		{"/trellis?x=1", http.StatusMovedPermanently, "/trellis/?x=1"},
		{"/trellis/", http.StatusOK, ""},
		{"/trellis/status.json", http.StatusOK, ""},
		{"/trellis/healthz", http.StatusOK, ""},
	} {
		resp, err := client.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Location") != tc.location {
			t.Errorf("GET %s: %d, Location %q; want %d, %q", tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.code, tc.location)
		}
	}
}

// TestStatusAfterLeave: the status of a member that has left shows it as
// left, with its incarnation and as this node, and the other members of
// its last topology as unknown (it no longer watches them), not failed.
func TestStatusAfterLeave(t *testing.T) {
	cs := joinRing(t, 2)
	st, err := status.ForCluster(cs[1])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inc := cs[1].Discovery().Local().Incarnation
	if err := cs[1].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	s := st.Snapshot()
	got := map[string]status.Member{}
	for _, m := range s.Members {
		got[m.Name] = m
	}
	if a := got["A"]; a.State != "unknown" {
		t.Errorf("A after B left, at B: %+v; want state unknown", a)
	}
	if b := got["B"]; b.State != "left" || !b.Self || b.Incarnation != inc {
		t.Errorf("B after it left, at B: %+v; want state left, self, incarnation %d", b, inc)
	}
	if s.Ready || s.NotReady != "left the cluster" {
		t.Errorf("ready %v (%q) after Leave; want not ready, left the cluster", s.Ready, s.NotReady)
	}
}

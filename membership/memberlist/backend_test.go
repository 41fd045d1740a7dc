package memberlist_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/membership/memberlist"
	"github.com/trellisrpc/trellis/topology"
)

// TestBackendInJoin joins three members with cluster.Join and the memberlist
// backend on loopback sockets, checks that each membership is a memberlist
// Node carrying what Join computed, that they commit a ring of three, and
// that a graceful leave is followed by a ring of two.
func TestBackendInJoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key := []byte("0123456789abcdef0123456789abcdef")
	var cs []*cluster.Cluster
	var seeds []string
	for i := range 3 {
		c, err := cluster.Join(ctx, cluster.Options{
			Name: fmt.Sprintf("M%d", i), Addr: "127.0.0.1:0", Key: key, Label: "backend-test",
			GossipAddr: "127.0.0.1:0", Seeds: seeds,
			Discovery: memberlist.Backend(memberlist.Config{Tune: loopbackTune, RejoinInterval: 200 * time.Millisecond}),
		})
		if err != nil {
			t.Fatalf("join M%d: %v", i, err)
		}
		t.Cleanup(c.Close)
		n, ok := c.Discovery().(*memberlist.Node)
		if !ok {
			t.Fatalf("M%d's membership is a %T, want *memberlist.Node", i, c.Discovery())
		}
		local := n.Local()
		if local.ID != c.ID() || local.Name != fmt.Sprintf("M%d", i) || local.Addr != c.Node().Addr().String() {
			t.Fatalf("M%d's memberlist node is %v %q at %q; want %v %q at %q", i, local.ID, local.Name, local.Addr, c.ID(), fmt.Sprintf("M%d", i), c.Node().Addr())
		}
		if i == 0 {
			seeds = []string{local.PacketAddr.String()}
		}
		cs = append(cs, c)
	}
	size := func(n int) func(topology.Topology) bool {
		return func(t topology.Topology) bool { return len(t.Members) == n }
	}
	for _, c := range cs {
		if _, err := c.Wait(ctx, size(3)); err != nil {
			t.Fatalf("%s: no ring of 3: %v", c.Node().Name(), err)
		}
	}
	if err := cs[2].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[:2] {
		if _, err := c.Wait(ctx, size(2)); err != nil {
			t.Fatalf("%s: no ring of 2 after M2 left: %v", c.Node().Name(), err)
		}
	}
}

// TestBackendConfigWins checks that what the Config passed to Backend sets
// is kept over what Join computed.
func TestBackendConfigWins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cluster.Join(ctx, cluster.Options{
		Name: "joined", Addr: "127.0.0.1:0", Key: []byte("0123456789abcdef0123456789abcdef"),
		GossipAddr: "127.0.0.1:0",
		Discovery:  memberlist.Backend(memberlist.Config{Name: "configured", Tune: loopbackTune}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Discovery().Local().Name; got != "configured" {
		t.Fatalf("name %q, want the Config's %q", got, "configured")
	}
}

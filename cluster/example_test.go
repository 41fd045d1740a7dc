package cluster_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/examples/kv/kvstore"
)

// freeSeed returns a loopback UDP address for the first member's
// membership to listen on, and the others' seed.
func freeSeed() string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// Two members join a cluster on loopback; one serves a key–value store, the
// other calls it through a cluster proxy that shards by key.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key := []byte("an-example-cluster-key-0123456789")
	seed := freeSeed()

	server, err := cluster.Join(ctx, cluster.Options{Name: "server", Addr: "127.0.0.1:0", Key: key, GossipAddr: seed, Seeds: []string{seed}})
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	kvstore.RegisterStore(server.Node(), &kvstore.Memory{Node: "server"})

	client, err := cluster.Join(ctx, cluster.Options{Name: "client", Addr: "127.0.0.1:0", Key: key, GossipAddr: "127.0.0.1:0", Seeds: []string{seed}})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// Wait until the server, which advertises the store, is in the
	// client's topology and heard serving it.
	if _, err := client.WaitServing(ctx, kvstore.StoreService, 1); err != nil {
		log.Fatal(err)
	}
	store := kvstore.NewStoreClusterProxy(client, cluster.ByKey(nil))
	if err := store.Put(ctx, "greeting", "hello"); err != nil {
		log.Fatal(err)
	}
	e, err := store.Get(ctx, "greeting")
	fmt.Println(e.Value, "from", e.Node, err)
	fmt.Println("members serving the store:", servers(client))
	// Output:
	// hello from server <nil>
	// members serving the store: [server]
}

// servers returns the names of the members that serve kvstore.Store.
func servers(c *cluster.Cluster) []string {
	var names []string
	for _, m := range c.Members() {
		if m.Serves(kvstore.StoreService) {
			names = append(names, m.Name)
		}
	}
	return names
}

// Three members join, each serving the store, and each waits until the
// three serve it before calling: a proxy sharding by key then spreads the
// keys over all of them.
func ExampleCluster_WaitServing() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key := []byte("an-example-cluster-key-0123456789")
	seed := freeSeed()
	var members []*cluster.Cluster
	for i, name := range []string{"kv1", "kv2", "kv3"} {
		gossip := "127.0.0.1:0" // any free port; the first member listens on the seed address
		if i == 0 {
			gossip = seed
		}
		c, err := cluster.Join(ctx, cluster.Options{Name: name, Addr: "127.0.0.1:0", Key: key, GossipAddr: gossip, Seeds: []string{seed}})
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		kvstore.RegisterStore(c.Node(), &kvstore.Memory{Node: name})
		members = append(members, c)
	}
	for _, c := range members {
		if _, err := c.WaitServing(ctx, kvstore.StoreService, 3); err != nil {
			log.Fatal(err)
		}
	}
	owners := map[string]bool{}
	for i := range 30 {
		m, _ := members[0].KeyOwner(kvstore.StoreService, fmt.Sprint("key", i))
		owners[m.Name] = true
	}
	fmt.Println("30 keys owned by", len(owners), "members")
	// Output:
	// 30 keys owned by 3 members
}

// A subscription delivers every topology this member commits, in order.
func ExampleCluster_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seed := freeSeed()
	c, err := cluster.Join(ctx, cluster.Options{Name: "alone", Addr: "127.0.0.1:0", Key: []byte("an-example-cluster-key-0123456789"), GossipAddr: seed, Seeds: []string{seed}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	sub := c.Subscribe(0)
	defer sub.Close()
	ch, err := sub.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.Epoch, len(ch.Topology.Members), ch.Added, ch.Removed)
	// Output:
	// 1 1 [] []
}

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
	// client's topology.
	for len(client.Serving(kvstore.StoreService)) == 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
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

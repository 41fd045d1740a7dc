package replica_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/replica"
	"github.com/trellisrpc/trellis/topology"
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

// Two members join a cluster on loopback, each with a store; an entry
// written on one is read through the other, which proxies to its owner.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key := []byte("an-example-cluster-key-0123456789")
	seed := freeSeed()
	var members []*cluster.Cluster
	for i, name := range []string{"web1", "web2"} {
		gossip := "127.0.0.1:0"
		if i == 0 {
			gossip = seed
		}
		c, err := cluster.Join(ctx, cluster.Options{Name: name, Addr: "127.0.0.1:0", Key: key, GossipAddr: gossip, Seeds: []string{seed}})
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		members = append(members, c)
	}
	var stores []*replica.Store
	for _, c := range members {
		// Wait until both members are in the topology, for the writes
		// to have a backup.
		if _, err := c.Wait(ctx, func(t topology.Topology) bool { return len(t.Members) == 2 }); err != nil {
			log.Fatal(err)
		}
		s, err := replica.New(replica.Config{Cluster: c})
		if err != nil {
			log.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}

	k := stores[0].NewKey() // names its creator: any node finds it at once
	if _, err := stores[0].Put(ctx, k, []byte("cart: 3 items")); err != nil {
		log.Fatal(err)
	}
	it, err := stores[1].Get(ctx, k)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, version %d, %d backup\n", it.Value, it.Version, len(it.Backups))
	// Output:
	// cart: 3 items, version 1, 1 backup
}

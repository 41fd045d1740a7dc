package memberlist_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/memberlist"
	"github.com/trellisrpc/trellis/membership/memberlist/memberlisttest"
	"github.com/trellisrpc/trellis/topology"
)

func Example() {
	key := []byte("a cluster key of at least 16 bytes")
	// Real nodes bind UDP and TCP (Config.BindAddr, default :7948) and name
	// seeds; this example runs two nodes on an in-memory network.
	nw := memberlisttest.NewNetwork()
	first, second := nw.NewTransport(), nw.NewTransport()

	a, err := memberlist.New(memberlist.Config{Name: "a", Addr: "10.0.0.1:7001", Keys: [][]byte{key},
		Transport: first, Preset: memberlist.Local})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer a.Close()

	b, err := memberlist.New(memberlist.Config{Name: "b", Addr: "10.0.0.2:7001", Keys: [][]byte{key},
		Transport: second, Preset: memberlist.Local, Seeds: []string{first.Addr()}})
	if err != nil {
		log.Fatal(err)
	}
	sub := b.Subscribe(0)
	if err := b.Start(ctx); err != nil { // joins through the seed
		log.Fatal(err)
	}
	defer b.Close()

	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		e, err := sub.Next(wctx)
		if err != nil {
			log.Fatal(err)
		}
		if e.Kind == membership.LeaderChanged && e.Member.Name == "a" {
			fmt.Println("b follows", e.Member.Name, "at", e.Member.Addr)
			break
		}
	}
	// Output: b follows a at 10.0.0.1:7001
}

// Backend makes memberlist the membership of a member joined with
// cluster.Join: here two members on loopback, the second joining through
// the first's memberlist address.
func ExampleBackend() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key := []byte("an-example-cluster-key-0123456789")
	first, err := cluster.Join(ctx, cluster.Options{Name: "first", Addr: "127.0.0.1:0", Key: key,
		GossipAddr: "127.0.0.1:0", Discovery: memberlist.Backend(memberlist.Config{Preset: memberlist.Local})})
	if err != nil {
		log.Fatal(err)
	}
	defer first.Close()
	seed := first.Discovery().Local().PacketAddr.String() // memberlist's UDP and TCP address

	second, err := cluster.Join(ctx, cluster.Options{Name: "second", Addr: "127.0.0.1:0", Key: key,
		GossipAddr: "127.0.0.1:0", Seeds: []string{seed},
		Discovery: memberlist.Backend(memberlist.Config{Preset: memberlist.Local})})
	if err != nil {
		log.Fatal(err)
	}
	defer second.Close()

	t, err := second.Wait(ctx, func(t topology.Topology) bool { return len(t.Members) == 2 })
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("members:", t.Members[0].Name, t.Members[1].Name)
	// Output: members: first second
}

package membership_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/membershiptest"
)

// Two nodes find each other; the older one leads. Here they run on an in-memory
// network; leave Transport nil to use UDP multicast.
func Example() {
	nw := membershiptest.NewNetwork(membershiptest.Options{Seed: 1})
	key := []byte("example-cluster-key-0001")
	start := func(name string, ip byte) (*membership.Node, *membership.Subscription) {
		ep, _ := nw.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, ip}), 7947), true)
		n, err := membership.New(membership.Config{Name: name, Addr: name + ":7001", Keys: [][]byte{key}, Transport: ep})
		if err != nil {
			panic(err)
		}
		sub := n.Subscribe(0)
		if err := n.Start(context.Background()); err != nil {
			panic(err)
		}
		return n, sub
	}
	a, subA := start("alpha", 1)
	defer a.Close()
	b, _ := start("beta", 2)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		ev, err := subA.Next(ctx)
		if err != nil {
			panic(err)
		}
		if ev.Kind == membership.Joined {
			fmt.Println("alpha sees", ev.Member.Name, "at", ev.Member.Addr)
			break
		}
	}
	leader, _ := a.Leader()
	fmt.Println("leader:", leader.Name)

	b.Leave(ctx)
	for {
		ev, err := subA.Next(ctx)
		if err != nil {
			panic(err)
		}
		if ev.Kind == membership.Left {
			fmt.Println(ev.Member.Name, "left")
			break
		}
	}
	// Output:
	// alpha sees beta at beta:7001
	// leader: alpha
	// beta left
}

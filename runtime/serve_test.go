package runtime_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/trellisrpc/trellis/cluster/sim"
	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/runtime"
)

// TestServeAndDial puts a node on a listener the caller made and has
// another dial it through Config.Dial, as a simulation's in-memory network
// does.
func TestServeAndDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server, err := runtime.NewNode(runtime.Config{Name: "server", Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close(context.Background())
	if server.Addr() != nil {
		t.Fatalf("a node without Addr listens on %v before Serve", server.Addr())
	}
	if err := server.Serve(ln); err != nil {
		t.Fatal(err)
	}
	if server.Addr().String() != ln.Addr().String() {
		t.Fatalf("Addr %v, the listener's is %v", server.Addr(), ln.Addr())
	}
	other, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := server.Serve(other); err == nil {
		t.Fatal("a second Serve succeeded")
	}

	var dials atomic.Int32
	client, err := runtime.NewNode(runtime.Config{Name: "client", Keyring: testKeyring, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := client.Connect(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if id != server.ID() || dials.Load() != 1 {
		t.Fatalf("connected to %v with %d dials; want %v with 1", id, dials.Load(), server.ID())
	}
}

// TestNodesInSuccessiveBubbles runs a call in two testing/synctest bubbles
// one after the other: nothing a node pools may carry a channel of one
// bubble into the next (that is a fatal error).
func TestNodesInSuccessiveBubbles(t *testing.T) {
	for i := range 2 {
		synctest.Test(t, func(t *testing.T) {
			nw := sim.NewNetwork(uint64(i), 2, sim.LinkConditions{Delay: time.Millisecond})
			server, err := runtime.NewNode(runtime.Config{Name: "server", Keyring: testKeyring})
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close(context.Background())
			ln, _ := nw.Listen(1)
			if err := server.Serve(ln); err != nil {
				t.Fatal(err)
			}
			testsvc.RegisterKitchen(server, testsvc.NewImpl())
			client, err := runtime.NewNode(runtime.Config{Name: "client", Keyring: testKeyring, Dial: nw.Dialer(0)})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close(context.Background())
			if err := client.ConnectTo(context.Background(), server.ID(), nw.StreamAddr(1)); err != nil {
				t.Fatal(err)
			}
			for j := range 3 {
				if s, n, err := testsvc.NewKitchenProxy(client, server.ID()).Echo(context.Background(), "hi", j); err != nil || s != "hi" || n != j {
					t.Fatalf("bubble %d, call %d: %q %d %v", i, j, s, n, err)
				}
			}
		})
	}
}

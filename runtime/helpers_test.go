package runtime_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime/codegen"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// pair is a server node serving testsvc.Impl and a client node connected to it.
type pair struct {
	server, client *trellis.Node
	impl           *testsvc.Impl
	kitchen        *testsvc.KitchenProxy
	control        *testsvc.ControlProxy
}

// newPair starts two nodes on loopback; both are closed when the test ends.
func newPair(t testing.TB) *pair {
	t.Helper()
	ctx := context.Background()
	server := newNode(t, "server", "127.0.0.1:0")
	client := newNode(t, "client", "")
	impl := testsvc.NewImpl()
	if err := testsvc.RegisterKitchen(server, impl); err != nil {
		t.Fatal(err)
	}
	if err := testsvc.RegisterControl(server, impl); err != nil {
		t.Fatal(err)
	}
	id, err := client.Connect(ctx, server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if id != server.ID() {
		t.Fatalf("Connect returned %s, want the server's id %s", id, server.ID())
	}
	return &pair{
		server:  server,
		client:  client,
		impl:    impl,
		kitchen: testsvc.NewKitchenProxy(client, id),
		control: testsvc.NewControlProxy(client, id),
	}
}

// testKeyring is the cluster keyring of the nodes these tests make (the
// server subprocess of the benchmarks included).
var testKeyring = func() *keyring.Ring {
	r, err := keyring.New([]byte("runtime-test-cluster-key-0123456"))
	if err != nil {
		panic(err)
	}
	return r
}()

func newNode(t testing.TB, name, addr string) *trellis.Node {
	t.Helper()
	n, err := trellis.NewNode(trellis.Config{Name: name, Addr: addr, Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

// testCtx returns a context that ends with the test or after 10 s.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkGoroutines fails the test if, within 5 s, the number of goroutines
// does not come back to at most base.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling a count: there is no event to await
	}
}

// rawClient returns the client of a proxy of svc on target, to make calls
// that generated proxies would not make.
func rawClient(n *trellis.Node, target trellis.NodeID, svc *codegen.ServiceDesc, opts ...trellis.ProxyOption) codegen.Client {
	return trellis.NewProxy(n, target, svc, opts...).(codegen.Proxy).TrellisClient()
}

package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/keyring"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// TestFailedNewNodeLeavesNoGoroutine creates nodes on a port in use: each
// fails, and leaves no goroutine behind.
func TestFailedNewNodeLeavesNoGoroutine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	runtime.GC()
	base := runtime.NumGoroutine()
	for range 10 {
		n, err := trellis.NewNode(trellis.Config{Name: "clash", Addr: ln.Addr().String(), Keyring: testKeyring})
		if err == nil {
			n.Close(context.Background())
			t.Fatal("NewNode on a port in use succeeded")
		}
	}
	checkGoroutines(t, base)
}

// TestServeAfterRegister registers a service on a node that does not
// listen yet, then serves it on a listener the test made: the first call
// finds the service. A second Serve is refused, and Close closes the
// listener.
func TestServeAfterRegister(t *testing.T) {
	ctx := testCtx(t)
	server := newNode(t, "server", "")
	if err := testsvc.RegisterKitchen(server, testsvc.NewImpl()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(ln); err != nil {
		t.Fatal(err)
	}
	if got := server.Addr(); got == nil || got.String() != ln.Addr().String() {
		t.Fatalf("Addr = %v, want %v", got, ln.Addr())
	}
	client := newNode(t, "client", "")
	id, err := client.Connect(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if s, n, err := testsvc.NewKitchenProxy(client, id).Echo(ctx, "served", 8); err != nil || s != "served" || n != 8 {
		t.Fatalf("Echo = %q, %d, %v", s, n, err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(ln2); err == nil {
		t.Fatal("a second Serve was accepted")
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Close")
	}
	if err := server.Serve(ln2); !errors.Is(err, trellis.ErrClosed) {
		t.Fatalf("Serve after Close: %v, want ErrClosed", err)
	}
}

// A node that registers its services before it accepts any connection:
// create it without an Addr, register, then serve a listener.
func ExampleNode_Serve() {
	keys, err := keyring.New([]byte("the cluster key all members share")) // read it from a secret store
	if err != nil {
		fmt.Println(err)
		return
	}
	node, err := trellis.NewNode(trellis.Config{Name: "node1", Keyring: keys})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close(context.Background())
	if err := testsvc.RegisterKitchen(node, testsvc.NewImpl()); err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := node.Serve(ln); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("serving:", node.Addr() != nil)
	// Output: serving: true
}

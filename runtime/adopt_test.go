package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/nodeid"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// TestRestartedPeerReplacesItsConnection checks that a peer that dials a
// node again while the node still holds its older connection (the peer
// restarted, and its old life's connection lingers, silent, until the
// keepalive gives up) gets the new connection adopted, not refused as a
// duplicate: calls to its ID reach the new life at once.
func TestRestartedPeerReplacesItsConnection(t *testing.T) {
	a := newNode(t, "A", "127.0.0.1:0")
	id := nodeid.New()
	life := func() *trellis.Node {
		n, err := trellis.NewNode(trellis.Config{Name: "B", ID: id, Keyring: testKeyring})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			n.Close(ctx)
		})
		return n
	}
	ctx := testCtx(t)
	old := life()
	if err := old.ConnectTo(ctx, a.ID(), a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	// A holds the old life's connection (ConnectTo returns once the dialer
	// has it; A adopts it when its own end of the handshake is done).
	for !a.Connected(id) {
		if ctx.Err() != nil {
			t.Fatal("A never adopted the old life's connection")
		}
		time.Sleep(time.Millisecond) // polling connection state: no event to await
	}
	fresh := life() // only the new life serves the kitchen
	if err := testsvc.RegisterKitchen(fresh, testsvc.NewImpl()); err != nil {
		t.Fatal(err)
	}
	if err := fresh.ConnectTo(ctx, a.ID(), a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for old.Connected(a.ID()) || !fresh.Connected(a.ID()) {
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the new life connected: old life connected %v, new life %v; want the old one dropped",
				old.Connected(a.ID()), fresh.Connected(a.ID()))
		}
		time.Sleep(10 * time.Millisecond) // polling connection state: no event to await
	}
	if err := testsvc.NewKitchenProxy(a, id).Nothing(ctx); err != nil {
		t.Fatalf("a call to the restarted peer: %v", err)
	}
}

// TestConnectToSharesOneDial checks that concurrent ConnectTo calls for one
// node open one connection.
func TestConnectToSharesOneDial(t *testing.T) {
	a := newNode(t, "A", "127.0.0.1:0")
	if err := testsvc.RegisterKitchen(a, testsvc.NewImpl()); err != nil {
		t.Fatal(err)
	}
	b := newNode(t, "B", "")
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.ConnectTo(ctx, a.ID(), a.Addr().String())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Had B dialed more than once, A would keep the newest connection and
	// B the first, and each would close the other's: give them the time.
	time.Sleep(200 * time.Millisecond)
	if got := a.Peers(); len(got) != 1 || got[0] != b.ID() || !b.Connected(a.ID()) {
		t.Fatalf("A's peers %v, B connected to A %v; want one connection", got, b.Connected(a.ID()))
	}
	if err := testsvc.NewKitchenProxy(b, a.ID()).Nothing(ctx); err != nil {
		t.Fatalf("a call over it: %v", err)
	}
}

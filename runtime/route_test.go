package runtime_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// routes is a fixed routing table.
type routes map[trellis.NodeID]trellis.NodeID

func (r routes) NextHop(dst trellis.NodeID) (trellis.NodeID, bool) {
	next, ok := r[dst]
	return next, ok
}

// chain starts nodes connected in a line, each serving Kitchen and Control,
// with routes along the line.
func chain(t testing.TB, names ...string) []*trellis.Node {
	t.Helper()
	ns := make([]*trellis.Node, len(names))
	for i, name := range names {
		ns[i] = newNode(t, name, "127.0.0.1:0")
		impl := testsvc.NewImpl()
		testsvc.RegisterKitchen(ns[i], impl)
		testsvc.RegisterControl(ns[i], impl)
	}
	connectLine(t, ns)
	return ns
}

// connectLine connects ns in a line, each to the next, and gives each
// routes along it.
func connectLine(t testing.TB, ns []*trellis.Node) {
	t.Helper()
	for i := 0; i+1 < len(ns); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := ns[i].Connect(ctx, ns[i+1].Addr().String())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range ns {
		r := routes{}
		for j, m := range ns {
			switch {
			case j < i:
				r[m.ID()] = ns[i-1].ID()
			case j > i:
				r[m.ID()] = ns[i+1].ID()
			}
		}
		n.SetRouter(r)
	}
}

func TestRoutedCallsAcrossHops(t *testing.T) {
	ns := chain(t, "A", "B", "C", "D")
	ctx := testCtx(t)
	k := testsvc.NewKitchenProxy(ns[0], ns[3].ID())
	s, n, err := k.Echo(ctx, "far", 3)
	if err != nil || s != "far" || n != 3 {
		t.Fatalf("Echo over 3 hops = %q, %d, %v", s, n, err)
	}
	// Deadlines, cancellation and errors work through relays as well.
	if err := k.Panic(ctx, "relayed"); !errors.Is(err, trellis.ErrRemotePanic) {
		t.Fatalf("panic through relays: %v", err)
	}
	callCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Block(callCtx, "relayed-cancel") }()
	ctl := testsvc.NewControlProxy(ns[0], ns[3].ID())
	if err := ctl.Started(ctx, "relayed-cancel"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, trellis.ErrCanceled) {
		t.Fatalf("cancelled relayed call: %v", err)
	}
	why, err := ctl.Blocked(ctx, "relayed-cancel")
	if err != nil || why != "context canceled (deadline set: false)" {
		t.Fatalf("the cancel did not reach the server through the relays: %q, %v", why, err)
	}
	// References cross relays too.
	for _, n := range ns {
		testsvc.RegisterRegistry(n, &testsvc.RegistryImpl{Node: n})
	}
	cb := testsvc.CallbackFunc(func(ctx context.Context, msg string) (int, error) { return 11, nil })
	if got, err := testsvc.NewRegistryProxy(ns[0], ns[3].ID()).Subscribe(ctx, cb, "m", false); err != nil || got != 11 {
		t.Fatalf("callback through relays: %d, %v", got, err)
	}
}

func TestNoRouteAndTTL(t *testing.T) {
	ns := chain(t, "A", "B")
	ctx := testCtx(t)
	if err := testsvc.NewKitchenProxy(ns[0], 999).Nothing(ctx); !errors.Is(err, trellis.ErrNoRoute) {
		t.Fatalf("call to a node without a route: %v, want ErrNoRoute", err)
	}
}

// trustingRoutes is a routing table that accepts routed calls from any
// source through any link.
type trustingRoutes struct{ routes }

func (trustingRoutes) PlausibleSource(src, via trellis.NodeID) bool { return true }

func TestHopBudgetEndsRoutingCycle(t *testing.T) {
	ns := chain(t, "A", "B", "C")
	ctx := testCtx(t)
	if _, err := ns[2].Connect(ctx, ns[0].Addr().String()); err != nil {
		t.Fatal(err)
	}
	// A cycle: A sends 777 to B, B to C, C to A... no relay sends the call
	// back where it came from, and these routers accept any source (with
	// the default check, C would refuse A's call from B, its route to A
	// being direct), so only the hop budget ends it.
	ns[0].SetRouter(trustingRoutes{routes{777: ns[1].ID()}})
	ns[1].SetRouter(trustingRoutes{routes{777: ns[2].ID()}})
	ns[2].SetRouter(trustingRoutes{routes{777: ns[0].ID()}})
	err := testsvc.NewKitchenProxy(ns[0], 777).Nothing(ctx)
	if !errors.Is(err, trellis.ErrNoRoute) || !strings.Contains(err.Error(), "hop budget") {
		t.Fatalf("call caught in a routing cycle: %v, want ErrNoRoute for the hop budget", err)
	}
}

// avoidingRoutes is a fixed routing table with a second table for calls
// that must avoid a neighbour.
type avoidingRoutes struct {
	routes
	other routes
}

func (r avoidingRoutes) NextHopAvoiding(dst, avoid trellis.NodeID) (trellis.NodeID, bool) {
	next, ok := r.other[dst]
	return next, ok && next != avoid
}

// TestRelayDoesNotSendCallsBack checks that a relay whose route leads back
// where a call came from takes another way if its router knows one, and
// otherwise fails the call at once instead of bouncing it until the hop
// budget is spent.
func TestRelayDoesNotSendCallsBack(t *testing.T) {
	ns := chain(t, "A", "B", "C")
	a, b, c := ns[0], ns[1], ns[2]
	tests := []struct {
		name    string
		routerA trellis.Router
		routerB trellis.Router
		dst     trellis.NodeID
		want    error // nil: the call reaches dst
	}{
		{"back and forth", routes{777: b.ID()}, routes{777: a.ID()}, 777, trellis.ErrNoRoute},
		{"no other way", routes{777: b.ID()}, avoidingRoutes{routes{777: a.ID()}, routes{777: a.ID()}}, 777, trellis.ErrNoRoute},
		{"other way", routes{c.ID(): b.ID()}, avoidingRoutes{routes{c.ID(): a.ID()}, routes{c.ID(): c.ID()}}, c.ID(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.SetRouter(tt.routerA)
			b.SetRouter(tt.routerB)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := testsvc.NewKitchenProxy(a, tt.dst).Nothing(ctx)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("call with another way open: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("call whose relay can only send it back: %v, want %v", err, tt.want)
			}
			if msg := err.Error(); !strings.Contains(msg, "node B relaying") || !strings.Contains(msg, "other than back") {
				t.Fatalf("call whose relay can only send it back: %q, want B to fail it at once", msg)
			}
		})
	}
}

func TestRelayCrashFailsInflightCalls(t *testing.T) {
	ns := chain(t, "A", "B", "C")
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() { done <- testsvc.NewKitchenProxy(ns[0], ns[2].ID()).Block(ctx, "hop") }()
	if err := testsvc.NewControlProxy(ns[0], ns[2].ID()).Started(ctx, "hop"); err != nil {
		t.Fatal(err)
	}
	// The relay B crashes: the call through it fails, typed, at once.
	crash, cancel := context.WithCancel(context.Background())
	cancel()
	ns[1].Close(crash)
	err := <-done
	if !errors.Is(err, trellis.ErrUnreachable) && !errors.Is(err, trellis.ErrShuttingDown) {
		t.Fatalf("call through a crashed relay: %v, want ErrUnreachable", err)
	}
}

func TestHopCutFailsRelayedCalls(t *testing.T) {
	ns := chain(t, "A", "B", "C")
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() { done <- testsvc.NewKitchenProxy(ns[0], ns[2].ID()).Block(ctx, "cut") }()
	if err := testsvc.NewControlProxy(ns[0], ns[2].ID()).Started(ctx, "cut"); err != nil {
		t.Fatal(err)
	}
	// C crashes: B's connection to it closes and B answers A's relayed call.
	crash, cancel := context.WithCancel(context.Background())
	cancel()
	ns[2].Close(crash)
	err := <-done
	if !errors.Is(err, trellis.ErrUnreachable) && !errors.Is(err, trellis.ErrShuttingDown) {
		t.Fatalf("relayed call whose next hop vanished: %v, want ErrUnreachable", err)
	}
	var ce *trellis.CallError
	if errors.As(err, &ce); ce == nil || ce.Node != ns[2].ID() {
		t.Errorf("error %v does not name the target", err)
	}
}

// BenchmarkDirectCall and BenchmarkRoutedCall2Hops compare a call to a
// neighbour with a call relayed by one node.
func BenchmarkDirectCall(b *testing.B) {
	ns := chain(b, "A", "B")
	k := testsvc.NewKitchenProxy(ns[0], ns[1].ID())
	req := smallReq()
	for b.Loop() {
		if _, err := k.EchoReq(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRoutedCall2Hops(b *testing.B) {
	ns := chain(b, "A", "B", "C")
	k := testsvc.NewKitchenProxy(ns[0], ns[2].ID())
	req := smallReq()
	for b.Loop() {
		if _, err := k.EchoReq(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAbortFailsCallsAtOnce checks that Abort ends the calls in flight over
// a connection, direct and relayed, also while the connection is draining.
func TestAbortFailsCallsAtOnce(t *testing.T) {
	tests := []struct {
		name  string
		drain bool // Disconnect first: the connection is draining
		hops  int  // 1: A calls B and aborts B; 2: A calls C through B, B aborts C
	}{
		{"direct", false, 1},
		{"relayed", false, 2},
		{"relayed while draining", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := chain(t, "A", "B", "C")
			ctx := testCtx(t)
			aborter, dst := ns[0], ns[1]
			if tt.hops == 2 {
				aborter, dst = ns[1], ns[2]
			}
			done := make(chan error, 1)
			go func() { done <- testsvc.NewKitchenProxy(ns[0], dst.ID()).Block(ctx, "abort") }()
			if err := testsvc.NewControlProxy(ns[0], dst.ID()).Started(ctx, "abort"); err != nil {
				t.Fatal(err)
			}
			if tt.drain {
				drained := make(chan error, 1)
				go func() { drained <- aborter.Disconnect(ctx, dst.ID()) }()
				for aborter.Connected(dst.ID()) { // Disconnect takes it out of use first
					time.Sleep(time.Millisecond)
				}
				defer func() {
					if err := <-drained; err != nil {
						t.Errorf("Disconnect after Abort: %v", err)
					}
				}()
			}
			start := time.Now()
			aborter.Abort(dst.ID(), errors.New("declared failed"))
			select {
			case err := <-done:
				if !errors.Is(err, trellis.ErrUnreachable) || !strings.Contains(err.Error(), "declared failed") {
					t.Fatalf("call over an aborted connection: %v, want ErrUnreachable naming the cause", err)
				}
				t.Logf("failed %v after Abort: %v", time.Since(start).Round(time.Microsecond), err)
			case <-time.After(2 * time.Second):
				t.Fatal("call over an aborted connection still hangs 2 s after Abort")
			}
			if aborter.Connected(dst.ID()) {
				t.Error("still connected after Abort")
			}
		})
	}
}

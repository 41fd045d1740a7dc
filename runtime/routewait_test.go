package runtime_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// waitingRoutes is a fixed routing table whose WaitRoute runs wait.
type waitingRoutes struct {
	routes
	waits atomic.Int32
	wait  func() bool
}

func (r *waitingRoutes) WaitRoute(ctx context.Context, dst trellis.NodeID, since time.Time) bool {
	r.waits.Add(1)
	return r.wait()
}

// TestCallWaitsForARoute: a call refused unsent by a relay that has no
// route on (its link to the destination is down) asks the caller's
// RouteWaiter to wait, and is sent again while it says so; when it says
// no more, the call fails with the relay's ErrNoRoute.
func TestCallWaitsForARoute(t *testing.T) {
	ns := chain(t, "A", "B", "C")
	a, b, c := ns[0], ns[1], ns[2]
	ctx := testCtx(t)
	r := &waitingRoutes{routes: routes{b.ID(): b.ID(), c.ID(): b.ID()}}
	a.SetRouter(r)
	k := testsvc.NewKitchenProxy(a, c.ID())
	cut := func() {
		t.Helper()
		if err := b.Disconnect(ctx, c.ID()); err != nil {
			t.Fatal(err)
		}
	}

	cut()
	r.wait = func() bool {
		// The link comes back while the call waits.
		if _, err := b.Connect(ctx, c.Addr().String()); err != nil {
			t.Error(err)
		}
		return true
	}
	if s, n, err := k.Echo(ctx, "again", 1); err != nil || s != "again" || n != 1 {
		t.Fatalf("call through a relay whose link came back while it waited: %q, %d, %v", s, n, err)
	}
	if got := r.waits.Load(); got != 1 {
		t.Errorf("the call waited %d times for a route, want 1", got)
	}

	cut()
	r.waits.Store(0)
	r.wait = func() bool { return false }
	_, _, err := k.Echo(ctx, "gone", 2)
	if !errors.Is(err, trellis.ErrNoRoute) || !trellis.NotSent(err) {
		t.Fatalf("call through a relay without a link, its router done waiting: %v, want ErrNoRoute, not sent", err)
	}
	if got := r.waits.Load(); got != 1 {
		t.Errorf("the call waited %d times for a route, want 1", got)
	}

	// A direct proxy does not wait: the control plane reaches neighbours only.
	r.waits.Store(0)
	_, _, err = testsvc.NewKitchenProxy(a, c.ID(), trellis.Direct()).Echo(ctx, "direct", 3)
	if !errors.Is(err, trellis.ErrUnreachable) || r.waits.Load() != 0 {
		t.Fatalf("direct call to a node not connected: %v after %d waits, want ErrUnreachable at once", err, r.waits.Load())
	}
}

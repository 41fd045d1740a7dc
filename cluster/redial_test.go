package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/runtime"
)

// routeWait is how long a call waits at most for a missing route to a live
// member: three cluster Intervals.
func routeWait(interval time.Duration) time.Duration { return 3 * interval }

// waitFor polls cond, which reads state that has no event to await (the
// connections of a node), every few milliseconds for within at most.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRoutedCallsWaitForARedialledLink: routed calls keep going through a
// relay whose link to their destination is cut again and again (and
// redialled by the cluster at its next reconciliation): a call that
// reaches the relay while the link is down waits for the link and is sent
// again, instead of failing at once with ErrNoRoute. A call may fail only
// with ErrNoRoute after the wait's bound, or with ErrUnreachable when it was
// on the link as it was cut (it may have run).
func TestRoutedCallsWaitForARedialledLink(t *testing.T) {
	const interval = 300 * time.Millisecond // the redial comes at the next tick
	ms := startRingOpts(t, memberOpts{interval: interval}, 4)
	x, y := ms[0], ms[2]
	path := x.cl.Route(y.node.ID())
	if len(path) != 3 {
		t.Fatalf("route from %s to %s: %v, want one relay", x.name, y.name, path)
	}
	var r *member
	for _, m := range ms {
		if m.node.ID() == path[1] {
			r = m
		}
	}
	bound := routeWait(interval)

	var (
		mu                    sync.Mutex
		bad                   []string
		ok, okCut, late, lost atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		k := testsvc.NewKitchenProxy(x.node, y.node.ID())
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cut := !r.node.Connected(y.node.ID())
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 2*bound)
				s, n, err := k.Echo(ctx, "ping", i)
				cancel()
				took := time.Since(start)
				switch {
				case err == nil && s == "ping" && n == i:
					ok.Add(1)
					if cut {
						okCut.Add(1)
					}
				case errors.Is(err, runtime.ErrNoRoute) && took >= bound:
					late.Add(1)
				case errors.Is(err, runtime.ErrUnreachable) && !runtime.NotSent(err):
					lost.Add(1) // on the link as it was cut
				default:
					mu.Lock()
					bad = append(bad, fmt.Sprintf("caller %d, call %d: failed after %v: %v", g, i, took, err))
					mu.Unlock()
				}
			}
		})
	}
	for round := range 3 {
		waitFor(t, 10*time.Second, "relay connected to the destination", func() bool { return r.node.Connected(y.node.ID()) })
		before := ok.Load()
		waitFor(t, 10*time.Second, "calls succeeding", func() bool { return ok.Load() >= before+3 })
		r.node.Abort(y.node.ID(), errors.New("test: the edge is cut"))
		t.Logf("round %d: cut %s-%s", round, r.name, y.name)
	}
	waitFor(t, 10*time.Second, "relay connected to the destination", func() bool { return r.node.Connected(y.node.ID()) })
	close(stop)
	wg.Wait()
	t.Logf("%d calls succeeded, %d of them made while the link was down; %d failed with ErrNoRoute after %v, %d were on the link as it was cut", ok.Load(), okCut.Load(), late.Load(), bound, lost.Load())
	for i, b := range bad {
		if i == 10 {
			t.Errorf("... and %d more", len(bad)-i)
			break
		}
		t.Error(b)
	}
	if okCut.Load() == 0 {
		t.Error("no call made while the relay's link was down succeeded")
	}
}

// TestCallsToGoneMembersFailFast: a call to a member that has left, or has
// been declared failed, does not wait for a route to it: it fails at once
// with the documented gone-node errors.
func TestCallsToGoneMembersFailFast(t *testing.T) {
	const interval = 300 * time.Millisecond // calls would wait 900 ms for a route to a live member
	ms := startRingOpts(t, memberOpts{interval: interval}, 4)
	x := ms[0]
	events := x.disc.Subscribe(64)
	defer events.Close()
	gone := func(m *member, kind membership.EventKind) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			e, err := events.Next(ctx)
			if err != nil {
				t.Fatalf("%s did not see %s become %v: %v", x.name, m.name, kind, err)
			}
			if e.Member.ID == m.node.ID() && e.Kind == kind {
				return
			}
		}
	}

	left, killed := ms[2], ms[1]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	left.cl.Close()
	if err := left.disc.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	left.kill()
	gone(left, membership.Left)
	killed.kill()
	gone(killed, membership.Failed)

	for _, m := range []*member{left, killed} {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*routeWait(interval))
		_, _, err := testsvc.NewKitchenProxy(x.node, m.node.ID()).Echo(ctx, "ping", 1)
		cancel()
		took := time.Since(start)
		if !errors.Is(err, runtime.ErrNoRoute) && !errors.Is(err, runtime.ErrUnreachable) {
			t.Errorf("call to %s, gone: %v, want ErrNoRoute or ErrUnreachable", m.name, err)
		}
		if took >= routeWait(interval) {
			t.Errorf("call to %s, gone, failed after %v: it waited for a route", m.name, took)
		}
		t.Logf("call to %s, gone: failed after %v: %v", m.name, took, err)
	}
}

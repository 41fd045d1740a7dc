package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// recorder keeps the events interceptors report, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

func clientRecorder(r *recorder, tag string) trellis.ClientInterceptor {
	return func(ctx context.Context, c *trellis.OutgoingCall, next func(context.Context) error) error {
		r.add("%s> %s", tag, c.Method.Name)
		c.Metadata.Set("by-"+tag, "yes")
		err := next(ctx)
		r.add("%s< %s %s routed=%v", tag, c.Method.Name, trellis.ErrorKind(err), c.Routed)
		return err
	}
}

// TestInterceptorsSeeEveryCallOnce makes calls with every kind of outcome
// over a routed line A-B-C and checks that the client interceptors of A
// (two, chained), the relay interceptor of B and the server interceptor of
// C each see each call exactly once, in order, with its outcome.
func TestInterceptorsSeeEveryCallOnce(t *testing.T) {
	ns := chain(t, "A", "B", "C")
	a, b, c := ns[0], ns[1], ns[2]
	var rec recorder
	a.Intercept(clientRecorder(&rec, "outer"), nil, nil)
	a.Intercept(clientRecorder(&rec, "inner"), nil, nil)
	var relayed []string
	var relayMu sync.Mutex
	relayDone := make(chan error, 10)
	served := make(chan struct{}, 10)
	b.Intercept(nil, nil, func(rc *trellis.RelayedCall) func(error) {
		by, _ := rc.Metadata.Get("by-inner")
		rc.Metadata.Set("relayed-by", "B")
		relayMu.Lock()
		relayed = append(relayed, fmt.Sprintf("%s->%s hops=%d by-inner=%s", rc.From, rc.To, rc.Hops, by))
		relayMu.Unlock()
		return func(err error) { relayDone <- err }
	})
	c.Intercept(nil, func(ctx context.Context, ic *trellis.IncomingCall, next func(context.Context) error) error {
		rb, _ := ic.Metadata.Get("relayed-by")
		info, ok := trellis.CallInfoFrom(ctx)
		if !ok || info.Caller != a.ID() {
			t.Errorf("server interceptor's context: CallInfo %+v, %v; want caller %s", info, ok, a.ID())
		}
		rec.add("server> %s hops=%d relayed-by=%s", ic.Method.Name, ic.Hops, rb)
		err := next(ctx)
		rec.add("server< %s %s", ic.Method.Name, trellis.ErrorKind(err))
		served <- struct{}{}
		return err
	}, nil)

	k := testsvc.NewKitchenProxy(a, c.ID())
	tests := []struct {
		name string
		call func(ctx context.Context) error
		kind string
		// served: the call reaches C's handler (and B's relay).
		served bool
	}{
		{"ok", func(ctx context.Context) error { _, _, err := k.Echo(ctx, "x", 1); return err }, trellis.KindOK, true},
		{"application error", func(ctx context.Context) error { return k.Fail(ctx, "plain") }, trellis.KindApplication, true},
		{"remote panic", func(ctx context.Context) error { return k.Panic(ctx, "boom") }, trellis.KindRemotePanic, true},
		{"deadline", func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			return k.Sleep(ctx, time.Minute)
		}, trellis.KindDeadline, true},
		{"no route", func(ctx context.Context) error {
			return testsvc.NewKitchenProxy(a, trellis.NodeID(12345)).Nothing(ctx)
		}, trellis.KindNoRoute, false},
		{"unreachable", func(ctx context.Context) error {
			return testsvc.NewKitchenProxy(a, c.ID(), trellis.Direct()).Nothing(ctx)
		}, trellis.KindUnreachable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			err := tt.call(ctx)
			if got := trellis.ErrorKind(err); got != tt.kind {
				t.Fatalf("ErrorKind(%v) = %q, want %q", err, got, tt.kind)
			}
			if tt.served {
				select {
				case <-served:
				case <-ctx.Done():
					t.Fatal("the server interceptor did not end")
				}
			}
			got := rec.take()
			m := map[string]string{"ok": "Echo", "application error": "Fail", "remote panic": "Panic", "deadline": "Sleep", "no route": "Nothing", "unreachable": "Nothing"}[tt.name]
			var want []string
			routed := tt.served
			want = append(want, "outer> "+m, "inner> "+m)
			if tt.served {
				want = append(want, "server> "+m+" hops=2 relayed-by=B", "server< "+m+" "+tt.kind)
			}
			want = append(want, fmt.Sprintf("inner< %s %s routed=%v", m, tt.kind, routed), fmt.Sprintf("outer< %s %s routed=%v", m, tt.kind, routed))
			if tt.kind == trellis.KindDeadline {
				// The caller and the server give up at the same time:
				// either may tell first.
				slices.Sort(got)
				slices.Sort(want)
			}
			if !slices.Equal(got, want) {
				t.Errorf("events:\n got %q\nwant %q", got, want)
			}
		})
	}
	// The relay sees each reply pass (the one of the call whose deadline
	// passed perhaps after its caller gave up).
	for i := range 4 {
		select {
		case err := <-relayDone:
			if err != nil {
				t.Errorf("relay %d ended with %v, want nil (the reply was forwarded)", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("relay interceptor told of %d relayings' end, want 4", i)
		}
	}
	relayMu.Lock()
	defer relayMu.Unlock()
	if len(relayed) != 4 {
		t.Errorf("relay interceptor saw %d calls, want 4: %q", len(relayed), relayed)
	}
	for _, r := range relayed {
		if want := fmt.Sprintf("%s->%s hops=1 by-inner=yes", a.ID(), c.ID()); r != want {
			t.Errorf("relayed %q, want %q", r, want)
		}
	}
}

// TestInterceptorsBesideTransformers checks that metadata added by a client
// interceptor and by a message transformer both reach the server, and that
// a server interceptor may refuse a call without running it.
func TestInterceptorsBesideTransformers(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	p.client.Intercept(func(ctx context.Context, c *trellis.OutgoingCall, next func(context.Context) error) error {
		c.Metadata.Set("icept", "1")
		return next(ctx)
	}, nil, nil)
	trellis.ProxyOf(p.kitchen).SetTransformer(trellis.TransformerFuncs{Out: func(m *trellis.Message) error {
		m.Metadata.Set("tf", "2")
		return nil
	}})
	var seen trellis.Metadata
	refuse := errors.New("refused by interceptor")
	p.server.Intercept(nil, func(ctx context.Context, ic *trellis.IncomingCall, next func(context.Context) error) error {
		seen = slices.Clone(ic.Metadata)
		if ic.Method.Name == "Nothing" {
			return refuse
		}
		return next(ctx)
	}, nil)
	if _, _, err := p.kitchen.Echo(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	if v1, _ := seen.Get("icept"); v1 != "1" {
		t.Errorf("server saw metadata %v, want icept=1", seen)
	}
	if v2, _ := seen.Get("tf"); v2 != "2" {
		t.Errorf("server saw metadata %v, want tf=2", seen)
	}
	err := p.kitchen.Nothing(ctx)
	var re *trellis.RemoteError
	if !errors.As(err, &re) || re.Message != refuse.Error() {
		t.Errorf("refused call: %v, want a remote error %q", err, refuse)
	}
}

// TestServerInterceptorDuration checks that a server interceptor finds the
// handler's duration in IncomingCall.Duration once next returns, for calls
// served on the connection's reader and aside alike (Sleep runs past the
// inline budget, so its method is served aside afterwards).
func TestServerInterceptorDuration(t *testing.T) {
	ns := chain(t, "A", "B")
	a, b := ns[0], ns[1]
	durations := make(chan time.Duration, 10)
	b.Intercept(nil, func(ctx context.Context, ic *trellis.IncomingCall, next func(context.Context) error) error {
		if ic.Duration != 0 {
			t.Errorf("Duration before next = %v, want 0", ic.Duration)
		}
		err := next(ctx)
		durations <- ic.Duration
		return err
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k := testsvc.NewKitchenProxy(a, b.ID())
	const sleep = 20 * time.Millisecond
	for i := range 3 {
		if err := k.Sleep(ctx, sleep); err != nil {
			t.Fatal(err)
		}
		if d := <-durations; d < sleep {
			t.Errorf("call %d: Duration = %v, want at least the handler's %v", i, d, sleep)
		}
	}
	if _, _, err := k.Echo(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	if d := <-durations; d <= 0 {
		t.Errorf("Echo: Duration = %v, want > 0", d)
	}
}

// TestClientInterceptorDuration checks OutgoingCall.Duration: the node
// times each call, from its start to the reply's arrival (or its failure),
// within what the interceptor sees around next, and at least what the
// handler took; direct, routed and failed calls alike.
func TestClientInterceptorDuration(t *testing.T) {
	ns := chain(t, "A", "B", "C")
	a, b, c := ns[0], ns[1], ns[2]
	type timing struct{ duration, wall time.Duration }
	timings := make(chan timing, 10)
	a.Intercept(func(ctx context.Context, oc *trellis.OutgoingCall, next func(context.Context) error) error {
		if oc.Duration != 0 {
			t.Errorf("Duration before next = %v, want 0", oc.Duration)
		}
		start := time.Now()
		err := next(ctx)
		timings <- timing{oc.Duration, time.Since(start)}
		return err
	}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const sleep = 20 * time.Millisecond
	tests := []struct {
		name     string
		call     func() error
		fails    bool
		min, max time.Duration // bounds beside the interceptor's own timing
	}{
		{"direct", func() error { return testsvc.NewKitchenProxy(a, b.ID()).Sleep(ctx, sleep) }, false, sleep, 0},
		{"routed", func() error { return testsvc.NewKitchenProxy(a, c.ID()).Sleep(ctx, sleep) }, false, sleep, 0},
		{"echo", func() error { _, _, err := testsvc.NewKitchenProxy(a, b.ID()).Echo(ctx, "x", 1); return err }, false, 1, 0},
		{"no route", func() error {
			return testsvc.NewKitchenProxy(a, 999).Sleep(ctx, sleep)
		}, true, 0, sleep},
		{"deadline", func() error {
			short, cancel := context.WithTimeout(ctx, sleep)
			defer cancel()
			return testsvc.NewKitchenProxy(a, b.ID()).Sleep(short, time.Second)
		}, true, sleep, 0},
	}
	for _, tt := range tests {
		err := tt.call()
		if (err != nil) != tt.fails {
			t.Fatalf("%s: err = %v", tt.name, err)
		}
		tm := <-timings
		if tm.duration < tt.min || tm.duration > tm.wall || tt.max > 0 && tm.duration > tt.max {
			t.Errorf("%s: Duration = %v, want between %v and the %v around next (and at most %v if set)", tt.name, tm.duration, tt.min, tm.wall, tt.max)
		}
	}
}

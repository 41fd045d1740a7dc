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

// observed is what an observer was told of one call.
type observed struct {
	method        string
	kind          string
	routed        bool
	hops          int
	caller        trellis.NodeID
	request, resp int
	duration      time.Duration
	metadata      string // the "by" entry
}

// callLog is a CallObserver that keeps what it is told.
type callLog struct {
	mu          sync.Mutex
	made, serve []observed
	told        int // calls told of, never reset
	served      chan struct{}
}

// count returns how many calls l was told of so far.
func (l *callLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.told
}

func newCallLog() *callLog { return &callLog{served: make(chan struct{}, 100)} }

func (l *callLog) CallMade(ctx context.Context, c *trellis.OutgoingCall, err error) {
	by, _ := c.Metadata.Get("by")
	l.mu.Lock()
	l.made = append(l.made, observed{method: c.Method.Name, kind: trellis.ErrorKind(err), routed: c.Routed,
		request: c.RequestBytes, resp: c.ReplyBytes, duration: c.Duration, metadata: by})
	l.told++
	l.mu.Unlock()
}

func (l *callLog) CallServed(ctx context.Context, c *trellis.IncomingCall, err error) {
	if info, ok := trellis.CallInfoFrom(ctx); !ok || info.Caller != c.Caller {
		panic("CallServed's context is not the call's")
	}
	by, _ := c.Metadata.Get("by")
	l.mu.Lock()
	l.serve = append(l.serve, observed{method: c.Method.Name, kind: trellis.ErrorKind(err), hops: c.Hops, caller: c.Caller,
		request: c.RequestBytes, resp: c.ReplyBytes, duration: c.Duration, metadata: by})
	l.told++
	l.mu.Unlock()
	l.served <- struct{}{}
}

// take returns and forgets what l was told.
func (l *callLog) take() (made, served []observed) {
	l.mu.Lock()
	defer l.mu.Unlock()
	made, served = l.made, l.serve
	l.made, l.serve = nil, nil
	return made, served
}

// TestObserversSeeEveryCallOnce makes calls with every kind of outcome over
// a routed line A-B-C, with observers and no interceptors on A and C (the
// observers' own path), then with interceptors too (the observers inside
// the chains), and checks that each observer is told of each call exactly
// once, after it ended, with its figures and outcome.
func TestObserversSeeEveryCallOnce(t *testing.T) {
	ns := chain(t, "A", "B", "C")
	a, c := ns[0], ns[1+1]
	made, served := newCallLog(), newCallLog()
	a.Observe(made)
	c.Observe(served)
	k := testsvc.NewKitchenProxy(a, c.ID())
	tests := []struct {
		name, method, kind string
		call               func(ctx context.Context) error
		served             bool // the call reaches C's handler
	}{
		{"ok", "Echo", trellis.KindOK, func(ctx context.Context) error { _, _, err := k.Echo(ctx, "x", 1); return err }, true},
		{"application error", "Fail", trellis.KindApplication, func(ctx context.Context) error { return k.Fail(ctx, "plain") }, true},
		{"remote panic", "Panic", trellis.KindRemotePanic, func(ctx context.Context) error { return k.Panic(ctx, "boom") }, true},
		{"deadline", "Sleep", trellis.KindDeadline, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			return k.Sleep(ctx, time.Minute)
		}, true},
		{"no route", "Nothing", trellis.KindNoRoute, func(ctx context.Context) error {
			return testsvc.NewKitchenProxy(a, trellis.NodeID(12345)).Nothing(ctx)
		}, false},
		{"unreachable", "Nothing", trellis.KindUnreachable, func(ctx context.Context) error {
			return testsvc.NewKitchenProxy(a, c.ID(), trellis.Direct()).Nothing(ctx)
		}, false},
	}
	run := func(t *testing.T, by string) {
		for _, tt := range tests {
			ctx := testCtx(t)
			err := tt.call(ctx)
			if got := trellis.ErrorKind(err); got != tt.kind {
				t.Fatalf("%s: ErrorKind(%v) = %q, want %q", tt.name, err, got, tt.kind)
			}
			if tt.served {
				select {
				case <-served.served:
				case <-ctx.Done():
					t.Fatalf("%s: C's observer was not told of the call", tt.name)
				}
			}
			gotMade, _ := made.take()
			if len(gotMade) != 1 {
				t.Fatalf("%s: A's observer told of %d calls, want 1: %+v", tt.name, len(gotMade), gotMade)
			}
			m := gotMade[0]
			if m.method != tt.method || m.kind != tt.kind || m.routed != tt.served || m.metadata != by {
				t.Errorf("%s: A's observer got %+v, want method %s, kind %s, routed %v, by %q", tt.name, m, tt.method, tt.kind, tt.served, by)
			}
			if tt.served && (m.request == 0 || m.duration <= 0) || tt.kind == trellis.KindOK && m.resp == 0 {
				t.Errorf("%s: A's observer got sizes %d/%d and duration %v, want them measured", tt.name, m.request, m.resp, m.duration)
			}
			if _, s := served.take(); tt.served {
				if len(s) != 1 {
					t.Fatalf("%s: C's observer told of %d calls, want 1: %+v", tt.name, len(s), s)
				}
				want := observed{method: tt.method, kind: tt.kind, hops: 2, caller: a.ID(), metadata: by}
				got := s[0]
				got.request, got.resp, got.duration = 0, 0, 0
				if tt.kind == trellis.KindDeadline {
					want.kind = got.kind // the server's outcome of a call its caller gave up on: canceled or the handler's
				}
				if got != want {
					t.Errorf("%s: C's observer got %+v, want %+v", tt.name, s[0], want)
				}
				if s[0].duration <= 0 {
					t.Errorf("%s: C's observer got duration %v, want > 0", tt.name, s[0].duration)
				}
			} else if len(s) != 0 {
				t.Errorf("%s: C's observer told of %+v, want nothing", tt.name, s)
			}
		}
	}
	t.Run("observers alone", func(t *testing.T) { run(t, "") })

	// With interceptors too, the observers are told inside them: after the
	// client interceptor added its metadata, before it returns.
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	a.Intercept(func(ctx context.Context, oc *trellis.OutgoingCall, next func(context.Context) error) error {
		oc.Metadata.Set("by", "interceptor")
		before := made.count()
		err := next(ctx)
		if n := made.count() - before; n != 1 {
			t.Errorf("within next, A's observer told of %d calls, want 1", n)
		}
		note("client<")
		return err
	}, nil, nil)
	c.Intercept(nil, func(ctx context.Context, ic *trellis.IncomingCall, next func(context.Context) error) error {
		before := served.count()
		err := next(ctx)
		if n := served.count() - before; n != 1 {
			t.Errorf("within next, C's observer told of %d calls, want 1", n)
		}
		note("server<")
		return err
	}, nil)
	t.Run("inside interceptors", func(t *testing.T) { run(t, "interceptor") })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(order, "client<") || !slices.Contains(order, "server<") {
		t.Errorf("interceptors ran %q, want both", order)
	}
}

// panicky is an observer that panics.
type panicky struct{}

func (panicky) CallMade(context.Context, *trellis.OutgoingCall, error)   {}
func (panicky) CallServed(context.Context, *trellis.IncomingCall, error) { panic("observer") }

// TestServerHookPanics checks that a panic of a server observer or
// interceptor fails the call it saw, as the implementation's would, and
// leaves the node serving.
func TestServerHookPanics(t *testing.T) {
	tests := []struct {
		name    string
		install func(n *trellis.Node)
	}{
		{"observer", func(n *trellis.Node) { n.Observe(panicky{}) }},
		{"interceptor before next", func(n *trellis.Node) {
			n.Intercept(nil, func(ctx context.Context, ic *trellis.IncomingCall, next func(context.Context) error) error {
				panic("interceptor")
			}, nil)
		}},
		{"interceptor after next", func(n *trellis.Node) {
			n.Intercept(nil, func(ctx context.Context, ic *trellis.IncomingCall, next func(context.Context) error) error {
				next(ctx)
				panic("interceptor")
			}, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := chain(t, "A", "B")
			a, b := ns[0], ns[1]
			tt.install(b)
			k := testsvc.NewKitchenProxy(a, b.ID())
			ctx := testCtx(t)
			for i := range 2 {
				_, _, err := k.Echo(ctx, "x", 1)
				if !errors.Is(err, trellis.ErrRemotePanic) {
					t.Fatalf("call %d: err = %v, want ErrRemotePanic", i, err)
				}
			}
		})
	}
}

type (
	startedKey struct{}
	cancelKey  struct{}
)

// starter is a CallStarter that derives the calls' contexts, adds metadata
// and asks to be told of the end of some calls only.
type starter struct {
	tell func(method string) bool
	// serveTimeout, if set, is the deadline StartServing gives the calls of
	// method Sleep.
	serveTimeout time.Duration
	log          chan string
}

func (s *starter) StartCall(ctx context.Context, c *trellis.OutgoingCall) (context.Context, bool) {
	c.Metadata.Set("by", "starter")
	return context.WithValue(ctx, startedKey{}, "client"), s.tell(c.Method.Name)
}

func (s *starter) StartServing(ctx context.Context, c *trellis.IncomingCall) (context.Context, bool) {
	ctx = context.WithValue(ctx, startedKey{}, "server")
	if c.Method.Name == "Sleep" && s.serveTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.serveTimeout)
		ctx = context.WithValue(ctx, cancelKey{}, cancel) // called by CallServed
	}
	return ctx, s.tell(c.Method.Name)
}

func (s *starter) CallMade(ctx context.Context, c *trellis.OutgoingCall, err error) {
	s.log <- fmt.Sprintf("made %s %v %s", c.Method.Name, ctx.Value(startedKey{}), trellis.ErrorKind(err))
}

func (s *starter) CallServed(ctx context.Context, c *trellis.IncomingCall, err error) {
	if cancel, ok := ctx.Value(cancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
	s.log <- fmt.Sprintf("served %s %v deadline=%v", c.Method.Name, ctx.Value(startedKey{}), errors.Is(err, context.DeadlineExceeded))
}

// TestCallStarter checks that a CallStarter's contexts reach the call (the
// implementation, on the server) and its own CallMade and CallServed, that
// its metadata reaches the server, and that it is told of the end of the
// calls it asked for only, while other observers are told of every call.
func TestCallStarter(t *testing.T) {
	ns := chain(t, "A", "B")
	a, b := ns[0], ns[1]
	made, served := newCallLog(), newCallLog()
	onlyEcho := func(m string) bool { return m == "Echo" }
	aStarter := &starter{tell: onlyEcho, log: make(chan string, 10)}
	bStarter := &starter{tell: func(m string) bool { return m == "Sleep" }, serveTimeout: 20 * time.Millisecond, log: make(chan string, 10)}
	a.Observe(made) // before the starter: told of every call all the same
	a.Observe(aStarter)
	b.Observe(bStarter)
	b.Observe(served)
	k := testsvc.NewKitchenProxy(a, b.ID())
	ctx := testCtx(t)

	if _, _, err := k.Echo(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	if err := k.Fail(ctx, "plain"); trellis.ErrorKind(err) != trellis.KindApplication {
		t.Fatalf("Fail: %v", err)
	}
	// B's starter gives Sleep a 20 ms deadline: the implementation returns
	// when it passes, not after a minute.
	if err := k.Sleep(ctx, time.Minute); err == nil || ctx.Err() != nil {
		t.Fatalf("Sleep with the starter's deadline: err = %v (test context: %v), want the deadline's error", err, ctx.Err())
	}
	for range 3 {
		select {
		case <-served.served:
		case <-ctx.Done():
			t.Fatal("B's observer was not told of every call")
		}
	}

	want := []string{"made Echo client ok"}
	for _, w := range want {
		if got := <-aStarter.log; got != w {
			t.Errorf("A's starter: %q, want %q", got, w)
		}
	}
	if got := <-bStarter.log; got != "served Sleep server deadline=true" {
		t.Errorf("B's starter: %q, want %q", got, "served Sleep server deadline=true")
	}
	select {
	case extra := <-aStarter.log:
		t.Errorf("A's starter told of %q, a call it did not ask for", extra)
	case extra := <-bStarter.log:
		t.Errorf("B's starter told of %q, a call it did not ask for", extra)
	default:
	}
	gotMade, _ := made.take()
	_, gotServed := served.take()
	if len(gotMade) != 3 || len(gotServed) != 3 {
		t.Fatalf("other observers told of %d calls made and %d served, want 3 and 3", len(gotMade), len(gotServed))
	}
	for _, s := range gotServed {
		if s.metadata != "starter" {
			t.Errorf("B served %s with metadata by=%q, want the starter's", s.method, s.metadata)
		}
	}
}

// tagStarter is a CallStarter that puts its tag in the context of the
// calls, under its own key, and notes what it finds in the context it is
// told a call's end with.
type tagStarter struct {
	tag  string
	key  any
	keys []any // all the tagStarters' keys
	log  *[]string
	mu   *sync.Mutex
}

func (s *tagStarter) StartCall(ctx context.Context, c *trellis.OutgoingCall) (context.Context, bool) {
	return context.WithValue(ctx, s.key, s.tag), true
}

func (s *tagStarter) StartServing(ctx context.Context, c *trellis.IncomingCall) (context.Context, bool) {
	return context.WithValue(ctx, s.key, s.tag), true
}

func (s *tagStarter) note(side string, ctx context.Context) {
	var seen []string
	for _, k := range s.keys {
		if v, ok := ctx.Value(k).(string); ok {
			seen = append(seen, v)
		}
	}
	s.mu.Lock()
	*s.log = append(*s.log, fmt.Sprintf("%s %s sees %v", side, s.tag, seen))
	s.mu.Unlock()
}

func (s *tagStarter) CallMade(ctx context.Context, c *trellis.OutgoingCall, err error) {
	s.note("made", ctx)
}

func (s *tagStarter) CallServed(ctx context.Context, c *trellis.IncomingCall, err error) {
	s.note("served", ctx)
}

// TestStartersNest checks that with two starters each is told of a call's
// end with the context its own start returned (so that one does not take
// the other's span for its own), the last started first.
func TestStartersNest(t *testing.T) {
	ns := chain(t, "A", "B")
	a, b := ns[0], ns[1]
	type key1 struct{}
	type key2 struct{}
	var log []string
	var mu sync.Mutex
	keys := []any{key1{}, key2{}}
	for _, n := range []*trellis.Node{a, b} {
		n.Observe(&tagStarter{tag: "first", key: key1{}, keys: keys, log: &log, mu: &mu})
		n.Observe(&tagStarter{tag: "second", key: key2{}, keys: keys, log: &log, mu: &mu})
	}
	if _, _, err := testsvc.NewKitchenProxy(a, b.ID()).Echo(testCtx(t), "x", 1); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"served second sees [first second]", "served first sees [first]",
		"made second sees [first second]", "made first sees [first]",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(log, want) {
		t.Errorf("starters told:\n got %q\nwant %q", log, want)
	}
}

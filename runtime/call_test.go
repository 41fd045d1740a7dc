package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

func everything() testsvc.Everything {
	return testsvc.Everything{
		B: true, I: -1 << 40, I8: -128, I16: -32768, I32: -1 << 31, I64: -1 << 63,
		U: 1 << 63, U8: 255, U16: 65535, U32: 1<<32 - 1, U64: 1<<64 - 1,
		F32: 3.25, F64: -1e300,
		S:      "héllo\x00\xff wörld", // not valid UTF-8: a Go string may hold any bytes
		Bytes:  []byte{0, 1, 2, 255},
		Ints:   []int{3, 1, 2},
		Arr:    [3]uint16{7, 8, 9},
		Map:    map[string][]testsvc.Point{"a": {{X: 1, Y: 2}, {X: 3, Y: 4}}, "b": {}},
		IntMap: map[int64]string{-5: "minus five", 1 << 50: "big"},
		Ptr:    &testsvc.Point{X: 0.5, Y: -0.5},
		Level:  -3,
		When:   time.Date(2026, 11, 24, 15, 4, 5, 123456789, time.UTC),
		Wait:   1500 * time.Millisecond,
		Tree:   &testsvc.Tree{Label: "root", Kids: []*testsvc.Tree{{Label: "a"}, {Label: "b", Kids: []*testsvc.Tree{{Label: "c"}}}}},
		Nested: [][]string{{"x"}, nil, {}},
		Empty:  []string{},
	}
}

func TestRoundTripEveryKind(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	zone := time.FixedZone("UTC+2", 2*3600)
	tests := []struct {
		name string
		mod  func(*testsvc.Everything)
	}{
		{"full", func(*testsvc.Everything) {}},
		{"zero", func(e *testsvc.Everything) { *e = testsvc.Everything{} }},
		{"time in another zone", func(e *testsvc.Everything) { e.When = time.Date(2001, 2, 3, 4, 5, 6, 7, zone) }},
		{"large slice", func(e *testsvc.Everything) {
			e.Ints = make([]int, 100000)
			for i := range e.Ints {
				e.Ints[i] = i * i
			}
		}},
		{"large bytes", func(e *testsvc.Everything) { e.Bytes = []byte(strings.Repeat("z", 3<<20)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := everything()
			tt.mod(&in)
			out, err := p.kitchen.RoundTrip(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if !out.When.Equal(in.When) {
				t.Errorf("When: got %v, want %v", out.When, in.When)
			}
			_, inOff := in.When.Zone()
			_, outOff := out.When.Zone()
			if inOff != outOff {
				t.Errorf("When offset: got %d, want %d", outOff, inOff)
			}
			in.When, out.When = time.Time{}, time.Time{}
			if !reflect.DeepEqual(in, out) {
				t.Errorf("round trip changed the value:\n got %+v\nwant %+v", out, in)
			}
		})
	}
}

func TestMultipleResultsAndVariadic(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	s, n, err := p.kitchen.Echo(ctx, "abc", 42)
	if err != nil || s != "abc" || n != 42 {
		t.Fatalf("Echo = %q, %d, %v; want abc, 42, nil", s, n, err)
	}
	for _, xs := range [][]int{nil, {1}, {1, 2, 3, -10}} {
		want := 0
		for _, x := range xs {
			want += x
		}
		got, err := p.kitchen.Sum(ctx, xs...)
		if err != nil || got != want {
			t.Errorf("Sum(%v) = %d, %v; want %d", xs, got, err, want)
		}
	}
	if err := p.kitchen.Nothing(ctx); err != nil {
		t.Fatalf("Nothing: %v", err)
	}
}

func TestThousandConcurrentCallsOneConnection(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := fmt.Sprintf("call-%d", i)
			got, gi, err := p.kitchen.Echo(ctx, s, i)
			if err != nil {
				errs <- err
				return
			}
			if got != s || gi != i {
				errs <- fmt.Errorf("call %d: got %q, %d", i, got, gi)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if peers := p.client.Peers(); len(peers) != 1 {
		t.Errorf("client has %d connections, want 1", len(peers))
	}
}

func TestCancelReachesServerAndConnectionSurvives(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	callCtx, cancel := context.WithCancel(context.Background()) // no deadline
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.kitchen.Block(callCtx, "cancel") }()
	if err := p.control.Started(ctx, "cancel"); err != nil {
		t.Fatal(err)
	}
	cancel()
	err := <-done
	if !errors.Is(err, trellis.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v, want ErrCanceled and context.Canceled", err)
	}
	why, err := p.control.Blocked(ctx, "cancel")
	if err != nil {
		t.Fatal(err)
	}
	if want := "context canceled (deadline set: false)"; why != want {
		t.Errorf("server context ended with %q, want %q", why, want)
	}
	if _, _, err := p.kitchen.Echo(ctx, "after", 1); err != nil {
		t.Fatalf("call after cancel: %v", err)
	}
	if peers := p.client.Peers(); len(peers) != 1 {
		t.Errorf("client has %d connections after cancel, want 1", len(peers))
	}
}

// TestNilContextRefused: a call made with a nil context fails, not sent,
// where it panicked in the runtime.
func TestNilContextRefused(t *testing.T) {
	p := newPair(t)
	//lint:ignore SA1012 the nil context is what is tested
	_, _, err := p.kitchen.Echo(nil, "x", 1)
	if err == nil || !trellis.NotSent(err) {
		t.Fatalf("call with a nil context: %v, want an error, not sent", err)
	}
	if _, _, err := p.kitchen.Echo(testCtx(t), "after", 1); err != nil {
		t.Fatalf("the next call: %v", err)
	}
}

func TestDeadlineAppliedRemotely(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	callCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := p.kitchen.Block(callCtx, "deadline")
	if !errors.Is(err, trellis.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call returned %v, want ErrDeadlineExceeded", err)
	}
	why, err := p.control.Blocked(ctx, "deadline")
	if err != nil {
		t.Fatal(err)
	}
	if want := "context deadline exceeded (deadline set: true)"; why != want {
		t.Errorf("server context ended with %q, want %q", why, want)
	}
	// A deadline that passes on the server first comes back as such.
	if err := p.kitchen.Sleep(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

func TestTimeoutOption(t *testing.T) {
	p := newPair(t)
	k := testsvc.NewKitchenProxy(p.client, p.server.ID(), trellis.WithTimeout(100*time.Millisecond))
	err := k.Sleep(testCtx(t), time.Minute)
	if !errors.Is(err, trellis.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want ErrDeadlineExceeded", err)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	err := p.kitchen.Panic(ctx, "kaboom")
	if !errors.Is(err, trellis.ErrRemotePanic) || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("got %v, want ErrRemotePanic mentioning kaboom", err)
	}
	var ce *trellis.CallError
	if !errors.As(err, &ce) || ce.Node != p.server.ID() || !strings.HasSuffix(ce.Method, "testsvc.Kitchen.Panic") {
		t.Errorf("CallError = %+v; want node %s and method ...testsvc.Kitchen.Panic", ce, p.server.ID())
	}
	if _, _, err := p.kitchen.Echo(ctx, "still serving", 1); err != nil {
		t.Fatalf("call after panic: %v", err)
	}
}

func TestErrorsCrossTheWire(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	for _, n := range []*trellis.Node{p.server, p.client} {
		if err := trellis.RegisterError(n, "testsvc.NotFound", testsvc.ErrNotFound); err != nil {
			t.Fatal(err)
		}
		if err := trellis.RegisterErrorType[*testsvc.ConflictError](n, "testsvc.Conflict"); err != nil {
			t.Fatal(err)
		}
	}
	err := p.kitchen.Fail(ctx, "notfound")
	if !errors.Is(err, testsvc.ErrNotFound) {
		t.Errorf("errors.Is(%v, ErrNotFound) = false", err)
	}
	err = p.kitchen.Fail(ctx, "conflict")
	var ce *testsvc.ConflictError
	if !errors.As(err, &ce) || ce.Key != "k" || ce.Version != 7 {
		t.Errorf("errors.As(%v) gave %+v, want Key k Version 7", err, ce)
	}
	err = p.kitchen.Fail(ctx, "plain")
	var re *trellis.RemoteError
	if !errors.As(err, &re) || re.Message != `plain failure "plain"` || re.Err != nil {
		t.Errorf("plain error: %v (%+v)", err, re)
	}
	if errors.Is(err, testsvc.ErrNotFound) || errors.Is(err, trellis.ErrRemotePanic) {
		t.Errorf("plain error %v matches an unrelated sentinel", err)
	}
	if err := trellis.RegisterError(p.client, "testsvc.NotFound", errors.New("other")); err == nil {
		t.Error("registering a name twice succeeded")
	}
}

func TestUnknownMethodSignature(t *testing.T) {
	p := newPair(t)
	// A caller generated from a different signature: same name, other ID.
	orig := testsvc.KitchenService.Methods[0]
	m := &codegen.MethodDesc{Name: orig.Name, Signature: orig.Signature, ID: orig.ID ^ 1, Handler: orig.Handler}
	c := rawClient(p.client, p.server.ID(), testsvc.KitchenService)
	err := c.Call(testCtx(t), m, nil, nil)
	if !errors.Is(err, trellis.ErrUnknownMethod) {
		t.Fatalf("got %v, want ErrUnknownMethod", err)
	}
}

func TestUnreachableNode(t *testing.T) {
	n := newNode(t, "alone", "")
	k := testsvc.NewKitchenProxy(n, 12345)
	if err := k.Nothing(testCtx(t)); !errors.Is(err, trellis.ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
}

func TestClosingClientFailsInflightCalls(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		ctx := testCtx(t)
		server := newNode(t, "server", "127.0.0.1:0")
		client, err := trellis.NewNode(trellis.Config{Name: "client", Keyring: testKeyring})
		if err != nil {
			t.Fatal(err)
		}
		impl := testsvc.NewImpl()
		testsvc.RegisterKitchen(server, impl)
		testsvc.RegisterControl(server, impl)
		id, err := client.Connect(ctx, server.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		k := testsvc.NewKitchenProxy(client, id)
		const n = 20
		errs := make(chan error, n)
		for i := range n {
			go func() { errs <- k.Block(ctx, fmt.Sprint("close", i)) }()
		}
		c := testsvc.NewControlProxy(client, id)
		for i := range n {
			if err := c.Started(ctx, fmt.Sprint("close", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := client.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := <-errs; !errors.Is(err, trellis.ErrClosed) {
				t.Errorf("in-flight call returned %v, want ErrClosed", err)
			}
		}
		if err := k.Nothing(ctx); !errors.Is(err, trellis.ErrClosed) {
			t.Errorf("call on a closed node returned %v, want ErrClosed", err)
		}
		closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		server.Close(closeCtx)
	}()
	checkGoroutines(t, base)
}

func TestClosingServerFailsInflightCalls(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		ctx := testCtx(t)
		p := newPair(t)
		errc := make(chan error, 1)
		go func() { errc <- p.kitchen.Block(ctx, "server-close") }()
		if err := p.control.Started(ctx, "server-close"); err != nil {
			t.Fatal(err)
		}
		closeCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		p.server.Close(closeCtx) // the handler ignores nothing: it ends on cancel
		err := <-errc
		if !errors.Is(err, trellis.ErrShuttingDown) && !errors.Is(err, trellis.ErrUnreachable) {
			t.Fatalf("in-flight call returned %v, want ErrShuttingDown or ErrUnreachable", err)
		}
		p.client.Close(ctx)
	}()
	checkGoroutines(t, base)
}

// Values whose wire structs have generated codecs cross intact, nil and
// empty kept apart, through a real connection.
func TestRoundTripGeneratedCodec(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	v := 7
	pv := &v
	full := testsvc.Plain{
		B: true, I: -1, I8: -8, U64: 1 << 63, F32: 1.5, F64: -2.25, S: "s", Bytes: []byte{}, Ints: []int{1, -2},
		Map: map[string][]testsvc.Point{"a": {{X: 1}}, "b": nil}, IntMap: map[int64]string{-3: ""}, U8Map: map[uint8]bool{9: true},
		Ptr: &testsvc.Point{Y: 4}, PtrPtr: &pv, Level: 3, Wait: time.Minute, Nested: [][]string{{"x"}, nil, {}},
		Tree: &testsvc.Tree{Label: "r", Kids: []*testsvc.Tree{{Label: "k"}}}, Tags: testsvc.Tags{"t"}, Name: "n",
	}
	tests := []struct {
		name string
		p    testsvc.Plain
		ps   []*testsvc.Plain
		m    map[testsvc.Name]testsvc.Plain
	}{
		{name: "zero"},
		{name: "full", p: full, ps: []*testsvc.Plain{&full, nil}, m: map[testsvc.Name]testsvc.Plain{"x": full, "": {}}},
		{name: "empty containers", ps: []*testsvc.Plain{}, m: map[testsvc.Name]testsvc.Plain{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p2, ps, m, err := p.kitchen.RoundTripPlain(ctx, tt.p, tt.ps, tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p2, tt.p) || !reflect.DeepEqual(ps, tt.ps) || !reflect.DeepEqual(m, tt.m) {
				t.Errorf("round trip changed the values:\n got %+v %v %v\nwant %+v %v %v", p2, ps, m, tt.p, tt.ps, tt.m)
			}
		})
	}
}

// A call is served on the connection's reader; one that blocks does not
// hold the connection: reading moves on, and other calls, and the blocked
// call's own cancellation, get through.
func TestBlockedHandlerDoesNotHoldTheConnection(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	blockCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.kitchen.Block(blockCtx, "held") }()
	if err := p.control.Started(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if s, n, err := p.kitchen.Echo(ctx, "x", i); err != nil || s != "x" || n != i {
			t.Fatalf("call %d while a handler blocks: %q, %d, %v", i, s, n, err)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, trellis.ErrCanceled) {
		t.Fatalf("the blocked call ended with %v, want ErrCanceled", err)
	}
	if why, err := p.control.Blocked(ctx, "held"); err != nil || !strings.Contains(why, "canceled") {
		t.Fatalf("the handler saw %q, %v; want its context cancelled", why, err)
	}
}

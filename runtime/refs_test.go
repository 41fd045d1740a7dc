package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/runtimetest"
)

// refPair is a server serving a Registry and a client connected to it.
type refPair struct {
	server, client *trellis.Node
	registry       *testsvc.RegistryProxy
}

func newRefPair(t *testing.T) *refPair {
	t.Helper()
	server := newNode(t, "server", "127.0.0.1:0")
	client := newNode(t, "client", "127.0.0.1:0")
	if err := testsvc.RegisterRegistry(server, &testsvc.RegistryImpl{Node: server}); err != nil {
		t.Fatal(err)
	}
	if err := testsvc.RegisterRegistry(client, &testsvc.RegistryImpl{Node: client}); err != nil {
		t.Fatal(err)
	}
	id, err := client.Connect(testCtx(t), server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return &refPair{server: server, client: client, registry: testsvc.NewRegistryProxy(client, id)}
}

func TestCallbackByReference(t *testing.T) {
	p := newRefPair(t)
	ctx := testCtx(t)
	var got atomic.Value
	cb := testsvc.CallbackFunc(func(ctx context.Context, msg string) (int, error) {
		got.Store(msg)
		return len(msg), nil
	})
	n, err := p.registry.Subscribe(ctx, cb, "hello", false)
	if err != nil || n != 5 || got.Load() != "hello" {
		t.Fatalf("Subscribe = %d, %v (callback saw %v); want 5, nil, hello", n, err, got.Load())
	}
	runtimetest.AssertNoLeaks(t, 2*time.Second, p.client, p.server)
}

func TestRetainedCallbackThenDropped(t *testing.T) {
	p := newRefPair(t)
	ctx := testCtx(t)
	var calls atomic.Int64
	cb := testsvc.CallbackFunc(func(ctx context.Context, msg string) (int, error) { return int(calls.Add(1)), nil })
	if _, err := p.registry.Subscribe(ctx, cb, "a", true); err != nil {
		t.Fatal(err)
	}
	goruntime.GC() // the callee keeps its proxy: nothing may be released
	if s := p.client.RefStats(); s.Exports != 1 || s.Holds != 1 {
		t.Fatalf("client exports %+v while the server keeps the callback, want 1 export held once", s)
	}
	if n, err := p.registry.Fire(ctx, "b"); err != nil || n != 2 {
		t.Fatalf("Fire = %d, %v; want the callback's second call", n, err)
	}
	if err := p.registry.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	runtimetest.AssertNoLeaks(t, 2*time.Second, p.client, p.server)
}

func TestResultByReferenceAndRelease(t *testing.T) {
	p := newRefPair(t)
	ctx := testCtx(t)
	c, err := p.registry.NewCounter(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Add(ctx, 5); err != nil || v != 15 {
		t.Fatalf("Add = %d, %v; want 15", v, err)
	}
	local, err := p.registry.IsLocal(ctx, c)
	if err != nil || !local {
		t.Fatalf("a reference passed back to its owner arrived as a proxy (local %v, %v)", local, err)
	}
	if err := trellis.Release(c); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(ctx, 1); !errors.Is(err, trellis.ErrReleased) {
		t.Fatalf("call on a released proxy: %v, want ErrReleased", err)
	}
	runtimetest.AssertNoLeaks(t, 2*time.Second, p.client, p.server)
}

func TestReferenceWithWrongInterfaceRefused(t *testing.T) {
	p := newRefPair(t)
	ctx := testCtx(t)
	c, err := p.registry.NewCounter(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ref := codegen.Ref{Node: p.server.ID(), Object: 1, Service: testsvc.CounterService.ID}
	client := c.(codegen.Proxy).TrellisClient()
	if _, _, err := client.Import(ref, testsvc.CallbackService); !errors.Is(err, trellis.ErrBadRef) {
		t.Fatalf("importing a Counter as a Callback: %v, want ErrBadRef", err)
	}
	forged := codegen.Ref{Node: 424242, Object: 1, Service: testsvc.CounterService.ID}
	if _, _, err := client.Import(forged, testsvc.CounterService); !errors.Is(err, trellis.ErrBadRef) {
		t.Fatalf("a reference owned by a third node: %v, want ErrBadRef", err)
	}
	trellis.Release(c)
	runtimetest.AssertNoLeaks(t, 2*time.Second, p.client, p.server)
}

func TestThreeNodeChain(t *testing.T) {
	a := newNode(t, "A", "127.0.0.1:0")
	b := newNode(t, "B", "127.0.0.1:0")
	c := newNode(t, "C", "127.0.0.1:0")
	ctx := testCtx(t)
	for _, n := range []*trellis.Node{a, b, c} {
		if err := testsvc.RegisterRegistry(n, &testsvc.RegistryImpl{Node: n}); err != nil {
			t.Fatal(err)
		}
	}
	bID, err := a.Connect(ctx, b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Connect(ctx, c.Addr().String()); err != nil {
		t.Fatal(err)
	}
	var from atomic.Value
	cb := testsvc.CallbackFunc(func(ctx context.Context, msg string) (int, error) {
		info, _ := trellis.CallInfoFrom(ctx)
		from.Store(info.Caller)
		return 7, nil
	})
	n, err := testsvc.NewRegistryProxy(a, bID).Relay(ctx, c.ID(), cb, "through B")
	if err != nil || n != 7 {
		t.Fatalf("Relay = %d, %v; want 7", n, err)
	}
	if from.Load() != b.ID() {
		t.Errorf("A's callback was called by %v, want B (forwarding C's call)", from.Load())
	}
	runtimetest.AssertNoLeaks(t, 2*time.Second, a, b, c)
}

func TestManyReferencesWithGC(t *testing.T) {
	base := goruntime.NumGoroutine()
	func() {
		p := newRefPair(t)
		// 10000 calls under -race with a collector running flat out took
		// 27 s at load average 40 on 2 cores: this bound is for a hang, not
		// for speed (testCtx's 10 s failed every run at that load).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		const total, workers = 10000, 32
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		stopGC := make(chan struct{})
		go func() {
			for {
				select {
				case <-stopGC:
					return
				default:
					goruntime.GC()
				}
			}
		}()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > total {
						return
					}
					cb := testsvc.CallbackFunc(func(ctx context.Context, msg string) (int, error) { return int(i), nil })
					keep := i%2 == 0
					n, err := p.registry.Subscribe(ctx, cb, "x", keep)
					if err == nil && n != int(i) {
						err = fmt.Errorf("callback %d answered %d", i, n)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(stopGC)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// Releases are asynchronous: wait for those of the callbacks not kept.
		deadline := time.Now().Add(30 * time.Second)
		for p.client.RefStats().Exports != total/2 {
			if time.Now().After(deadline) {
				t.Fatalf("client exports %d callbacks while the server keeps %d", p.client.RefStats().Exports, total/2)
			}
			goruntime.GC()
			time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine: nothing to await
		}
		if err := p.registry.Drop(ctx); err != nil {
			t.Fatal(err)
		}
		runtimetest.AssertNoLeaks(t, 5*time.Second, p.client, p.server)
		p.client.Close(ctx)
		p.server.Close(ctx)
	}()
	checkGoroutines(t, base)
}

// holderEnv makes the test binary a process that holds a reference: see
// TestKilledHolderReleasesItsReferences.
const holderEnv = "TRELLIS_TEST_HOLDER"

func runHolder(addr string) int {
	n, err := trellis.NewNode(trellis.Config{Name: "holder", Keyring: testKeyring})
	if err != nil {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := n.Connect(ctx, addr)
	if err != nil {
		return 1
	}
	var kept []testsvc.Counter
	for i := range 100 {
		c, err := testsvc.NewRegistryProxy(n, id).NewCounter(ctx, i)
		if err != nil {
			return 1
		}
		kept = append(kept, c)
	}
	fmt.Println("holding", len(kept))
	select {} // until killed
}

func TestKilledHolderReleasesItsReferences(t *testing.T) {
	exporter := newNode(t, "exporter", "127.0.0.1:0")
	if err := testsvc.RegisterRegistry(exporter, &testsvc.RegistryImpl{Node: exporter}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+exporter.Addr().String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line := make([]byte, 64)
	if n, err := out.Read(line); err != nil || string(line[:n]) != "holding 100\n" {
		t.Fatalf("holder process said %q, %v", line[:n], err)
	}
	if s := exporter.RefStats(); s.Exports != 100 {
		t.Fatalf("exporter exports %d objects, want 100", s.Exports)
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	runtimetest.AssertNoLeaks(t, time.Second, exporter)
	t.Logf("exporter's table empty %v after kill -9", time.Since(killed))
}

func TestCallsNotSentTakeBackTheirReferences(t *testing.T) {
	p := newRefPair(t)
	ctx := testCtx(t)
	cb := testsvc.CallbackFunc(func(ctx context.Context, msg string) (int, error) { return 1, nil })
	errStop := errors.New("rejected")
	rejecting := testsvc.NewRegistryProxy(p.client, p.server.ID(), trellis.WithTransformer(trellis.TransformerFuncs{
		Out: func(*trellis.Message) error { return errStop },
	}))
	if _, err := rejecting.Subscribe(ctx, cb, "x", true); !errors.Is(err, errStop) || !trellis.NotSent(err) {
		t.Fatalf("rejected call: %v (not sent: %v)", err, trellis.NotSent(err))
	}
	if _, err := testsvc.NewRegistryProxy(p.client, 4242).Subscribe(ctx, cb, "x", true); !errors.Is(err, trellis.ErrUnreachable) {
		t.Fatalf("call to an unknown node: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.registry.Subscribe(cancelled, cb, "x", true); !errors.Is(err, trellis.ErrCanceled) {
		t.Fatalf("call with a cancelled context: %v", err)
	}
	if n, err := p.registry.Fire(ctx, "y"); err != nil || n != 0 {
		t.Fatalf("a call that was not sent reached the server (Fire = %d, %v)", n, err)
	}
	// Streams, too: the source is closed and nothing stays exported.
	files := testsvc.NewFilesProxy(p.client, p.server.ID(), trellis.WithTransformer(trellis.TransformerFuncs{
		Out: func(*trellis.Message) error { return errStop },
	}))
	var closed atomic.Int64
	if _, _, err := files.Load(ctx, testsvc.NewSource(10, 1, &closed)); !errors.Is(err, errStop) {
		t.Fatalf("rejected stream call: %v", err)
	}
	if s, _ := p.client.StreamStats(); s != 0 || closed.Load() != 1 {
		t.Errorf("after a rejected call: %d streams exported, source closed %d times", s, closed.Load())
	}
	runtimetest.AssertNoLeaks(t, 2*time.Second, p.client, p.server)
}

// BenchmarkCallWithReference passes a new local object by reference on each
// call (the callee drops it at once); BenchmarkCallPlain is the same call
// shape without the reference.
func BenchmarkCallWithReference(b *testing.B) {
	p := newRefPairB(b)
	ctx := context.Background()
	for b.Loop() {
		cb := testsvc.CallbackFunc(func(ctx context.Context, msg string) (int, error) { return 0, nil })
		if err := p.registry.Ignore(ctx, cb); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := runtimetest.WaitNoLeaks(5*time.Second, p.client, p.server); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkCallPlain(b *testing.B) {
	p := newRefPairB(b)
	ctx := context.Background()
	for b.Loop() {
		if err := p.registry.Drop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func newRefPairB(b *testing.B) *refPair {
	server := newNode(b, "server", "127.0.0.1:0")
	client := newNode(b, "client", "")
	testsvc.RegisterRegistry(server, &testsvc.RegistryImpl{Node: server})
	id, err := client.Connect(context.Background(), server.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	return &refPair{server: server, client: client, registry: testsvc.NewRegistryProxy(client, id)}
}

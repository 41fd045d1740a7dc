package runtime_test

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/runtimetest"
)

func registerHandle(t *testing.T, n *trellis.Node) {
	t.Helper()
	err := trellis.RegisterTransformer(n,
		func(h *testsvc.Handle) (testsvc.HandleSnapshot, error) {
			if h.Name() == "poison" {
				return testsvc.HandleSnapshot{}, errors.New("cannot snapshot poison")
			}
			return testsvc.HandleSnapshot{Name: h.Name()}, nil
		},
		func(s testsvc.HandleSnapshot) (*testsvc.Handle, error) {
			return testsvc.NewHandle(s.Name), nil
		})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMarshalTransformerAtEveryDepth(t *testing.T) {
	p := newPair(t)
	for _, n := range []*trellis.Node{p.client, p.server} {
		registerHandle(t, n)
		if err := testsvc.RegisterHandles(n, testsvc.HandlesImpl{}); err != nil && n == p.server {
			t.Fatal(err)
		}
	}
	h := testsvc.NewHandlesProxy(p.client, p.server.ID())
	in := testsvc.Holder{
		Label: "l",
		One:   testsvc.NewHandle("one"),
		Many:  []map[string]*testsvc.Handle{{"a": testsvc.NewHandle("a"), "nil": nil}, nil, {}},
		Arr:   [2]*testsvc.Handle{nil, testsvc.NewHandle("second")},
	}
	out, err := h.Rename(testCtx(t), in, "x-")
	if err != nil {
		t.Fatal(err)
	}
	if out.Label != "l" || out.One.Name() != "x-one" || out.Arr[0] != nil || out.Arr[1].Name() != "x-second" {
		t.Fatalf("got %+v", out)
	}
	if len(out.Many) != 3 || out.Many[0]["a"].Name() != "x-a" || out.Many[0]["nil"] != nil || out.Many[1] != nil || out.Many[2] == nil {
		t.Fatalf("Many = %+v", out.Many)
	}
	if _, err := h.Rename(testCtx(t), testsvc.Holder{One: testsvc.NewHandle("poison")}, ""); err == nil {
		t.Fatal("a failing transformer did not fail the call")
	}
	if err := trellis.RegisterTransformer(p.client, func(*testsvc.Handle) (int, error) { return 0, nil }, func(int) (*testsvc.Handle, error) { return nil, nil }); err == nil {
		t.Error("a second transformer for the same type was accepted")
	}
}

func TestNoTransformerNoChange(t *testing.T) {
	// Without transformers the plain path runs (allocations are checked by
	// the benchmarks); values without the transformed type are unaffected.
	p := newPair(t)
	registerHandle(t, p.client)
	registerHandle(t, p.server)
	s, n, err := p.kitchen.Echo(testCtx(t), "plain", 3)
	if err != nil || s != "plain" || n != 3 {
		t.Fatalf("Echo = %q, %d, %v", s, n, err)
	}
}

func TestMarshalTransformerToReferenceAndStream(t *testing.T) {
	p := newPair(t)
	for _, n := range []*trellis.Node{p.client, p.server} {
		err := trellis.RegisterTransformer(n,
			func(t *testsvc.Tally) (testsvc.Counter, error) { return t.Counter(), nil },
			func(c testsvc.Counter) (*testsvc.Tally, error) { return testsvc.NewTally(c), nil },
			trellis.AsReference(testsvc.CounterService))
		if err != nil {
			t.Fatal(err)
		}
		err = trellis.RegisterTransformer(n,
			func(b *testsvc.Blob) (io.Reader, error) { return b.Reader(), nil },
			func(r io.Reader) (*testsvc.Blob, error) { return testsvc.NewBlob(r), nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := testsvc.RegisterHandles(p.server, testsvc.HandlesImpl{}); err != nil {
		t.Fatal(err)
	}
	h := testsvc.NewHandlesProxy(p.client, p.server.ID())
	ctx := testCtx(t)
	// The server's Tally holds a proxy of the client's counter: its calls
	// come back here.
	counter := &testsvc.CounterImpl{}
	tally := testsvc.NewTally(counter)
	for _, want := range []int{5, 12} {
		got, err := h.Bump(ctx, tally, map[int]int{5: 5, 12: 7}[want])
		if err != nil || got != want {
			t.Fatalf("Bump = %d, %v; want %d", got, err, want)
		}
	}
	if v, _ := counter.Add(ctx, 0); v != 12 {
		t.Fatalf("the client's counter is at %d, want 12: the calls did not reach it", v)
	}
	// A Blob crosses as a stream.
	n, err := h.Size(ctx, testsvc.NewBlob(testsvc.NewSource(3<<20, 1, nil)))
	if err != nil || n != 3<<20 {
		t.Fatalf("Size = %d, %v; want %d", n, err, 3<<20)
	}
	runtimetest.AssertNoLeaks(t, 2*time.Second, p.client, p.server)
}

// References and streams that marshal transformers export for a call are
// taken back when the call is not sent, as those of generated proxies are.
func TestMarshalTransformerExportsTakenBackWhenNotSent(t *testing.T) {
	p := newPair(t)
	for _, n := range []*trellis.Node{p.client, p.server} {
		if err := trellis.RegisterTransformer(n,
			func(t *testsvc.Tally) (testsvc.Counter, error) { return t.Counter(), nil },
			func(c testsvc.Counter) (*testsvc.Tally, error) { return testsvc.NewTally(c), nil },
			trellis.AsReference(testsvc.CounterService)); err != nil {
			t.Fatal(err)
		}
		if err := trellis.RegisterTransformer(n,
			func(b *testsvc.Blob) (io.Reader, error) { return b.Reader(), nil },
			func(r io.Reader) (*testsvc.Blob, error) { return testsvc.NewBlob(r), nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := testsvc.RegisterHandles(p.server, testsvc.HandlesImpl{}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	errStop := errors.New("rejected")
	rejecting := testsvc.NewHandlesProxy(p.client, p.server.ID(), trellis.WithTransformer(trellis.TransformerFuncs{
		Out: func(*trellis.Message) error { return errStop },
	}))
	tests := []struct {
		name    string
		h       *testsvc.HandlesProxy
		wantErr error
		closes  int64 // a source exported, then taken back, is closed
	}{
		{"rejected by a message transformer", rejecting, errStop, 1},
		{"to an unknown node (nothing is exported)", testsvc.NewHandlesProxy(p.client, 4242), trellis.ErrUnreachable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.h.Bump(ctx, testsvc.NewTally(&testsvc.CounterImpl{}), 1); !errors.Is(err, tt.wantErr) || !trellis.NotSent(err) {
				t.Fatalf("Bump: %v (not sent: %v), want %v", err, trellis.NotSent(err), tt.wantErr)
			}
			var closed atomic.Int64
			if _, err := tt.h.Size(ctx, testsvc.NewBlob(testsvc.NewSource(10, 1, &closed))); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Size: %v, want %v", err, tt.wantErr)
			}
			if s, _ := p.client.StreamStats(); s != 0 || closed.Load() != tt.closes {
				t.Errorf("after the call: %d streams exported, source closed %d times; want 0 and %d", s, closed.Load(), tt.closes)
			}
			runtimetest.AssertNoLeaks(t, 2*time.Second, p.client, p.server)
		})
	}
}

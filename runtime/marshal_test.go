package runtime_test

import (
	"errors"
	"testing"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
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

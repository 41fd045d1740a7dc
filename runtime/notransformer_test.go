package runtime_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// countingHandles counts the calls of Rename that reach the implementation.
type countingHandles struct {
	testsvc.HandlesImpl
	renames atomic.Int32
}

func (c *countingHandles) Rename(ctx context.Context, h testsvc.Holder, prefix string) (testsvc.Holder, error) {
	c.renames.Add(1)
	return c.HandlesImpl.Rename(ctx, h, prefix)
}

// A call of a method whose arguments or results hold a type named with
// proxygen's -transformed (testsvc.Handle) fails with ErrNoTransformer,
// before it is sent or run, on a node that has no transformer for it,
// wherever the type is in the value (and whether or not the value holds
// one); the connection stays up.
func TestNoTransformerRefused(t *testing.T) {
	holders := []struct {
		name string
		h    testsvc.Holder
	}{
		{"in a struct field", testsvc.Holder{One: testsvc.NewHandle("one")}},
		{"in a map in a slice", testsvc.Holder{Many: []map[string]*testsvc.Handle{{"a": testsvc.NewHandle("a")}}}},
		{"in an array", testsvc.Holder{Arr: [2]*testsvc.Handle{nil, testsvc.NewHandle("b")}}},
		{"none held", testsvc.Holder{Label: "empty"}},
	}
	tests := []struct {
		name                 string
		onClient, onServer   bool
		missingOn, wantWhere string // the node named as lacking it, and where to register
	}{
		{"caller lacks it", false, true, "client", "this node"},
		{"server lacks it", true, false, "server", "node server"},
		{"neither has it", false, false, "client", "this node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t)
			if tt.onClient {
				registerHandle(t, p.client)
			}
			if tt.onServer {
				registerHandle(t, p.server)
			}
			impl := &countingHandles{}
			if err := testsvc.RegisterHandles(p.server, impl); err != nil {
				t.Fatal(err)
			}
			var arrived atomic.Int32
			p.server.SetInterceptor(trellis.TransformerFuncs{In: func(*trellis.Message) error {
				arrived.Add(1)
				return nil
			}})
			h := testsvc.NewHandlesProxy(p.client, p.server.ID())
			for _, hc := range holders {
				_, err := h.Rename(testCtx(t), hc.h, "x-")
				if !errors.Is(err, trellis.ErrNoTransformer) || !trellis.NotSent(err) {
					t.Fatalf("%s: Rename: %v (not sent: %v), want ErrNoTransformer, not sent", hc.name, err, trellis.NotSent(err))
				}
				msg := err.Error()
				for _, want := range []string{
					"node " + tt.missingOn + " has no marshal transformer for *testsvc.Handle",
					"testsvc.Handles.Rename",
					"register a marshal transformer for *testsvc.Handle on " + tt.wantWhere + " (runtime.RegisterTransformer)",
				} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s: the error %q does not say %q", hc.name, msg, want)
					}
				}
			}
			if n := impl.renames.Load(); n != 0 {
				t.Errorf("the implementation ran %d times", n)
			}
			if n := arrived.Load(); n != 0 {
				t.Errorf("the server's interceptor saw %d calls: they were not refused before it", n)
			}
			// A refusal is not a protocol error: the connection stays up and
			// serves the next call.
			if !p.client.Connected(p.server.ID()) {
				t.Fatal("the connection was closed")
			}
			if s, n, err := p.kitchen.Echo(testCtx(t), "after", 1); err != nil || s != "after" || n != 1 {
				t.Fatalf("Echo after the refusal = %q, %d, %v", s, n, err)
			}
			// Once both nodes have the transformer, the same call goes
			// through (what was found missing is not remembered).
			if !tt.onClient {
				registerHandle(t, p.client)
			}
			if !tt.onServer {
				registerHandle(t, p.server)
			}
			out, err := h.Rename(testCtx(t), holders[1].h, "x-")
			if err != nil || out.Many[0]["a"].Name() != "x-a" {
				t.Fatalf("Rename with both transformers = %+v, %v", out, err)
			}
			if n := impl.renames.Load(); n != 1 {
				t.Errorf("the implementation ran %d times, want 1", n)
			}
		})
	}
}

// A method that holds no -transformed type is served as before by nodes
// without transformers, even beside methods that hold one.
func TestNoTransformerOtherMethods(t *testing.T) {
	p := newPair(t)
	if err := testsvc.RegisterHandles(p.server, testsvc.HandlesImpl{}); err != nil {
		t.Fatal(err)
	}
	if s, n, err := p.kitchen.Echo(testCtx(t), "plain", 3); err != nil || s != "plain" || n != 3 {
		t.Fatalf("Echo = %q, %d, %v", s, n, err)
	}
	for _, m := range testsvc.KitchenService.Methods {
		if len(m.Transformed) != 0 {
			t.Errorf("Kitchen.%s lists transformed types %v", m.Name, m.Transformed)
		}
	}
	for _, m := range testsvc.HandlesService.Methods {
		if len(m.Transformed) != 1 {
			t.Errorf("Handles.%s lists transformed types %v, want one", m.Name, m.Transformed)
		}
	}
}

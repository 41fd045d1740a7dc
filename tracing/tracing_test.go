package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/tracing"
)

// routes is a fixed routing table.
type routes map[runtime.NodeID]runtime.NodeID

// testKeyring is the cluster keyring of the nodes these tests make.
var testKeyring, _ = keyring.New([]byte("tracing-test-cluster-key-0123456"))

func (r routes) NextHop(dst runtime.NodeID) (runtime.NodeID, bool) {
	next, ok := r[dst]
	return next, ok
}

// line starts n nodes connected in a line with routes along it, each
// serving Kitchen and traced into rec.
func line(t *testing.T, n int, rec *tracetest.SpanRecorder) []*runtime.Node {
	return lineWith(t, n, rec, func(int) sdktrace.Sampler { return sdktrace.AlwaysSample() })
}

// lineWith is line with node i sampling the traces it starts with sampler(i).
func lineWith(t *testing.T, n int, rec *tracetest.SpanRecorder, sampler func(i int) sdktrace.Sampler) []*runtime.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ns := make([]*runtime.Node, n)
	for i := range ns {
		node, err := runtime.NewNode(runtime.Config{Name: fmt.Sprintf("N%d", i), Addr: "127.0.0.1:0", Keyring: testKeyring})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			node.Close(ctx)
		})
		if err := testsvc.RegisterKitchen(node, testsvc.NewImpl()); err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sampler(i)))
		if err := tracing.Instrument(node, tracing.Config{TracerProvider: tp}); err != nil {
			t.Fatal(err)
		}
		ns[i] = node
	}
	for i := 0; i+1 < n; i++ {
		if _, err := ns[i].Connect(ctx, ns[i+1].Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	for i, node := range ns {
		r := routes{}
		for j, m := range ns {
			switch {
			case j < i:
				r[m.ID()] = ns[i-1].ID()
			case j > i:
				r[m.ID()] = ns[i+1].ID()
			}
		}
		node.SetRouter(r)
	}
	return ns
}

// TestTraceAcrossRelays calls over 1, 2 and 3 hops and checks the trace:
// the client span, one span per relay, and the server span, each the child
// of the one before, all in one trace; a failing call is recorded as an
// error on its client and server spans.
func TestTraceAcrossRelays(t *testing.T) {
	for _, tt := range []struct {
		hops int
		fail bool
	}{{1, false}, {2, false}, {3, false}, {2, true}} {
		t.Run(fmt.Sprintf("hops=%d fail=%v", tt.hops, tt.fail), func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			ns := line(t, tt.hops+1, rec)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			k := testsvc.NewKitchenProxy(ns[0], ns[tt.hops].ID())
			var err error
			if tt.fail {
				err = k.Panic(ctx, "boom")
				if !errors.Is(err, runtime.ErrRemotePanic) {
					t.Fatalf("Panic: %v, want ErrRemotePanic", err)
				}
			} else if _, _, err = k.Echo(ctx, "traced", 1); err != nil {
				t.Fatal(err)
			}
			// The server's and relays' spans end before the reply reaches
			// the caller, and the caller's before the call returns.
			spans := rec.Ended()
			if len(spans) != tt.hops+1 {
				t.Fatalf("%d spans ended, want %d (client, %d relays, server): %v", len(spans), tt.hops+1, tt.hops-1, names(spans))
			}
			byKind := map[trace.SpanKind][]sdktrace.ReadOnlySpan{}
			bySpan := map[trace.SpanID]sdktrace.ReadOnlySpan{}
			for _, s := range spans {
				byKind[s.SpanKind()] = append(byKind[s.SpanKind()], s)
				bySpan[s.SpanContext().SpanID()] = s
			}
			if len(byKind[trace.SpanKindClient]) != 1 || len(byKind[trace.SpanKindServer]) != 1 || len(byKind[trace.SpanKindInternal]) != tt.hops-1 {
				t.Fatalf("spans %v: want 1 client, %d relay, 1 server", names(spans), tt.hops-1)
			}
			client, server := byKind[trace.SpanKindClient][0], byKind[trace.SpanKindServer][0]
			if client.Parent().IsValid() {
				t.Errorf("client span has parent %s, want a root", client.Parent().SpanID())
			}
			// Walk up from the server span: relays, then the client.
			s := server
			for i := 0; i < tt.hops-1; i++ {
				parent, ok := bySpan[s.Parent().SpanID()]
				if !ok || parent.SpanKind() != trace.SpanKindInternal {
					t.Fatalf("parent %d of the server span is not a relay span: %v", i+1, s.Parent().SpanID())
				}
				s = parent
			}
			if s.Parent().SpanID() != client.SpanContext().SpanID() {
				t.Errorf("the first hop's span (%s) has parent %s, want the client span %s", s.Name(), s.Parent().SpanID(), client.SpanContext().SpanID())
			}
			for _, sp := range spans {
				if sp.SpanContext().TraceID() != client.SpanContext().TraceID() {
					t.Errorf("span %s in trace %s, want %s", sp.Name(), sp.SpanContext().TraceID(), client.SpanContext().TraceID())
				}
			}
			wantName := "github.com/trellisrpc/trellis/internal/testsvc.Kitchen/Echo"
			if tt.fail {
				wantName = "github.com/trellisrpc/trellis/internal/testsvc.Kitchen/Panic"
			}
			if client.Name() != wantName || server.Name() != wantName {
				t.Errorf("span names %q, %q, want %q", client.Name(), server.Name(), wantName)
			}
			for _, sp := range []sdktrace.ReadOnlySpan{client, server} {
				if got := sp.Status().Code == codes.Error; got != tt.fail {
					t.Errorf("%v span status %v, want error=%v", sp.SpanKind(), sp.Status(), tt.fail)
				}
			}
		})
	}
}

// TestSpanAttributes checks the attributes of client and server spans:
// the RPC conventions' rpc.system, rpc.service and rpc.method, the target
// and whether the call was routed (client), the caller and its hops
// (server), each the call's own, for calls from N0 to N1 and N2 and from N1
// to N2 (so that one client and one server see two peers), made twice each
// (the second time from the attribute sets kept per peer).
func TestSpanAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	ns := line(t, 3, rec)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for round := range 2 {
		for _, c := range []struct{ from, to int }{{0, 1}, {0, 2}, {1, 2}} {
			caller, target, hops := ns[c.from], ns[c.to], c.to-c.from
			if _, _, err := testsvc.NewKitchenProxy(caller, target.ID()).Echo(ctx, "x", 1); err != nil {
				t.Fatal(err)
			}
			var client, server sdktrace.ReadOnlySpan
			for _, sp := range rec.Ended() {
				switch sp.SpanKind() {
				case trace.SpanKindClient:
					client = sp
				case trace.SpanKindServer:
					server = sp
				}
			}
			rec.Reset()
			if client == nil || server == nil {
				t.Fatalf("round %d, N%d to N%d: client span %v, server span %v", round, c.from, c.to, client, server)
			}
			common := map[string]string{"rpc.system": "trellis", "rpc.service": "github.com/trellisrpc/trellis/internal/testsvc.Kitchen", "rpc.method": "Echo"}
			for _, side := range []struct {
				span sdktrace.ReadOnlySpan
				want map[string]string
			}{
				{client, map[string]string{"trellis.target": target.ID().String()}},
				{server, map[string]string{"trellis.caller": caller.ID().String(), "trellis.hops": fmt.Sprint(hops)}},
			} {
				got := map[string]string{}
				for _, kv := range side.span.Attributes() {
					got[string(kv.Key)] = kv.Value.String()
				}
				maps.Copy(side.want, common)
				if side.span == client && hops > 1 {
					side.want["trellis.routed"] = "true"
				}
				if !maps.Equal(got, side.want) {
					t.Errorf("round %d, N%d to N%d, %v span: attributes %v, want %v", round, c.from, c.to, side.span.SpanKind(), got, side.want)
				}
			}
		}
	}
}

// TestUnsampledCallsStayUnrecorded checks that the caller's sampling
// decision holds along the route: a call its caller does not sample gets no
// span on the relay nor on the server, although they would sample every
// trace they started themselves.
func TestUnsampledCallsStayUnrecorded(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	ns := lineWith(t, 3, rec, func(i int) sdktrace.Sampler {
		if i == 0 {
			return sdktrace.NeverSample()
		}
		return sdktrace.AlwaysSample()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := testsvc.NewKitchenProxy(ns[0], ns[2].ID()).Echo(ctx, "quiet", 1); err != nil {
		t.Fatal(err)
	}
	if spans := rec.Ended(); len(spans) != 0 {
		t.Errorf("an unsampled call left spans: %v", names(spans))
	}
}

// TestRootRatio checks that with Config.RootRatio about that share of the
// calls made outside a trace are traced, each with its server span as the
// child of its client span, and that no server starts a trace of its own.
func TestRootRatio(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ns [2]*runtime.Node
	for i := range ns {
		n, err := runtime.NewNode(runtime.Config{Name: fmt.Sprintf("N%d", i), Addr: "127.0.0.1:0", Keyring: testKeyring})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close(ctx)
		testsvc.RegisterKitchen(n, testsvc.NewImpl())
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		if err := tracing.Instrument(n, tracing.Config{TracerProvider: tp, RootRatio: 0.25}); err != nil {
			t.Fatal(err)
		}
		ns[i] = n
	}
	if _, err := ns[0].Connect(ctx, ns[1].Addr().String()); err != nil {
		t.Fatal(err)
	}
	k := testsvc.NewKitchenProxy(ns[0], ns[1].ID())
	const calls = 400
	for range calls {
		if _, _, err := k.Echo(ctx, "x", 1); err != nil {
			t.Fatal(err)
		}
	}
	clients := map[trace.SpanID]bool{}
	var servers []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindClient:
			clients[s.SpanContext().SpanID()] = true
		case trace.SpanKindServer:
			servers = append(servers, s)
		}
	}
	// 100 expected; the bounds are 7 standard deviations away.
	if len(clients) < 40 || len(clients) > 160 {
		t.Errorf("%d of %d calls traced with RootRatio 0.25", len(clients), calls)
	}
	if len(servers) != len(clients) {
		t.Errorf("%d server spans for %d client spans", len(servers), len(clients))
	}
	for _, s := range servers {
		if !clients[s.Parent().SpanID()] {
			t.Errorf("server span %s has no client parent: a server started a trace", s.SpanContext().SpanID())
		}
	}
	if err := tracing.Instrument(ns[0], tracing.Config{RootRatio: 2}); err == nil {
		t.Error("RootRatio 2 accepted")
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.SpanKind().String()+":"+s.Name())
	}
	return out
}

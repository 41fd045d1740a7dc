package runtime_test

import (
	"context"
	"testing"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// nopObserver is a CallObserver that does nothing.
type nopObserver struct{}

func (nopObserver) CallMade(context.Context, *trellis.OutgoingCall, error)   {}
func (nopObserver) CallServed(context.Context, *trellis.IncomingCall, error) {}

// passingStarter is a CallStarter that passes over every call.
type passingStarter struct{ nopObserver }

func (passingStarter) StartCall(ctx context.Context, _ *trellis.OutgoingCall) (context.Context, bool) {
	return ctx, false
}

func (passingStarter) StartServing(ctx context.Context, _ *trellis.IncomingCall) (context.Context, bool) {
	return ctx, false
}

// BenchmarkHooks measures what each way of watching calls costs a small
// call (client and server in this process, 32 callers per processor):
// none, interceptors that only call next (on the client, on the server),
// observers that do nothing, and starters that pass over every call, on
// both nodes.
func BenchmarkHooks(b *testing.B) {
	client := func(ctx context.Context, _ *trellis.OutgoingCall, next func(context.Context) error) error {
		return next(ctx)
	}
	server := func(ctx context.Context, _ *trellis.IncomingCall, next func(context.Context) error) error {
		return next(ctx)
	}
	for _, bc := range []struct {
		name    string
		install func(a, s *trellis.Node)
	}{
		{"none", func(a, s *trellis.Node) {}},
		{"client-interceptor", func(a, s *trellis.Node) { a.Intercept(client, nil, nil) }},
		{"server-interceptor", func(a, s *trellis.Node) { s.Intercept(nil, server, nil) }},
		{"observers", func(a, s *trellis.Node) { a.Observe(nopObserver{}); s.Observe(nopObserver{}) }},
		{"starters", func(a, s *trellis.Node) { a.Observe(passingStarter{}); s.Observe(passingStarter{}) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ns := chain(b, "A", "B")
			a, s := ns[0], ns[1]
			bc.install(a, s)
			k := testsvc.NewKitchenProxy(a, s.ID())
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := k.Echo(ctx, "x", 1); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

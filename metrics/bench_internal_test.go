package metrics

import (
	"context"
	"testing"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// BenchmarkObserver measures what the collector adds to a call on each
// side, the call itself left out, from concurrent callers as in bench's
// concurrent phase.
func BenchmarkObserver(b *testing.B) {
	n, err := runtime.NewNode(runtime.Config{Name: "bench", Insecure: true})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(context.Background())
	c, err := New(Config{Node: n})
	if err != nil {
		b.Fatal(err)
	}
	svc := &codegen.ServiceDesc{Name: "svc"}
	m := &codegen.MethodDesc{Name: "M"}
	nop := func(context.Context) error { return nil }
	obs := callObserver{c}
	ctx := context.Background()
	b.Run("none", func(b *testing.B) { // the loop alone, to subtract
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				oc := runtime.OutgoingCall{Service: svc, Method: m, RequestBytes: 100, ReplyBytes: 60}
				nop(ctx)
				_ = oc
			}
		})
	})
	b.Run("client", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				oc := runtime.OutgoingCall{Service: svc, Method: m, RequestBytes: 100, ReplyBytes: 60}
				obs.CallMade(ctx, &oc, nil)
			}
		})
	})
	b.Run("server", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ic := runtime.IncomingCall{Service: svc, Method: m, Hops: 1, RequestBytes: 100, ReplyBytes: 60}
				obs.CallServed(ctx, &ic, nil)
			}
		})
	})
}

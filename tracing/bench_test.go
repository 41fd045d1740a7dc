package tracing_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/tracing"
)

// BenchmarkEcho measures a small call between two nodes, untraced and
// traced with 1 % of the calls sampled.
func BenchmarkEcho(b *testing.B) {
	for _, traced := range []bool{false, true} {
		name := "off"
		if traced {
			name = "sampled-1%"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			var nodes [2]*runtime.Node
			for i := range nodes {
				n, err := runtime.NewNode(runtime.Config{Name: name, Addr: "127.0.0.1:0", Keyring: testKeyring})
				if err != nil {
					b.Fatal(err)
				}
				defer n.Close(ctx)
				testsvc.RegisterKitchen(n, testsvc.NewImpl())
				if traced {
					tp := sdktrace.NewTracerProvider(
						sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))),
						sdktrace.WithBatcher(tracetest.NewNoopExporter()))
					defer tp.Shutdown(ctx)
					tracing.Instrument(n, tracing.Config{TracerProvider: tp})
				}
				nodes[i] = n
			}
			id, err := nodes[0].Connect(ctx, nodes[1].Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			k := testsvc.NewKitchenProxy(nodes[0], id)
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

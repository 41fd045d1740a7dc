package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/trellisrpc/trellis/runtime"
)

func BenchmarkInterceptors(b *testing.B) {
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer tp.Shutdown(context.Background())
	tr := &tracer{t: tp.Tracer(ScopeName), prop: propagation.TraceContext{}}
	svc := &runtime.ServiceDesc{Name: "svc"}
	m := &runtime.MethodDesc{Name: "M"}
	nop := func(context.Context) error { return nil }
	b.Run("client", func(b *testing.B) {
		b.ReportAllocs()
		var md runtime.Metadata
		for b.Loop() {
			oc := runtime.OutgoingCall{Service: svc, Method: m, Metadata: md[:0]}
			tr.client(context.Background(), &oc, nop)
			md = oc.Metadata
		}
	})
	b.Run("server", func(b *testing.B) {
		b.ReportAllocs()
		md := runtime.Metadata{{Key: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}
		for b.Loop() {
			ic := runtime.IncomingCall{Service: svc, Method: m, Metadata: md}
			tr.server(context.Background(), &ic, nop)
		}
	})
}

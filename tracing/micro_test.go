package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// made runs a call made through tr as a node does: StartCall, the call,
// then CallMade if tr asked to be told.
func (tr *tracer) made(ctx context.Context, call *runtime.OutgoingCall, proceed func(context.Context) error) error {
	ctx, tell := tr.StartCall(ctx, call)
	err := proceed(ctx)
	if tell {
		tr.CallMade(ctx, call, err)
	}
	return err
}

// served runs a call served through tr as a node does.
func (tr *tracer) served(ctx context.Context, call *runtime.IncomingCall, handle func(context.Context) error) error {
	ctx, tell := tr.StartServing(ctx, call)
	err := handle(ctx)
	if tell {
		tr.CallServed(ctx, call, err)
	}
	return err
}

// BenchmarkStarter measures the tracer's work on a call made and served,
// the call itself left out.
func BenchmarkStarter(b *testing.B) {
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer tp.Shutdown(context.Background())
	tr := &tracer{t: tp.Tracer(ScopeName), prop: propagation.TraceContext{}, fields: propagation.TraceContext{}.Fields()}
	svc := &codegen.ServiceDesc{Name: "svc"}
	m := &codegen.MethodDesc{Name: "M"}
	nop := func(context.Context) error { return nil }
	b.Run("client", func(b *testing.B) {
		b.ReportAllocs()
		var md runtime.Metadata
		for b.Loop() {
			oc := runtime.OutgoingCall{Service: svc, Method: m, Metadata: md[:0]}
			tr.made(context.Background(), &oc, nop)
			md = oc.Metadata
		}
	})
	b.Run("server", func(b *testing.B) {
		b.ReportAllocs()
		md := runtime.Metadata{{Key: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}
		for b.Loop() {
			ic := runtime.IncomingCall{Service: svc, Method: m, Metadata: md}
			tr.served(context.Background(), &ic, nop)
		}
	})
}

// BenchmarkRootRatio measures the tracer as bench's trellis-traced
// system installs them: 1 % of the calls start a trace (RootRatio), the
// server records a span only for those; ns/op is the average over all calls.
// "never" is the same with no call traced, "always" with every call traced
// (the cost of one sampled call: its client and server spans).
func BenchmarkRootRatio(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ratio float64
	}{{"never", 1e-300}, {"1%", 0.01}, {"always", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			defer tp.Shutdown(context.Background())
			tr := &tracer{t: tp.Tracer(ScopeName), prop: propagation.TraceContext{}, rootRatio: bc.ratio, fields: propagation.TraceContext{}.Fields()}
			svc := &codegen.ServiceDesc{Name: "svc"}
			m := &codegen.MethodDesc{Name: "M"}
			ctx := context.Background()
			nop := func(context.Context) error { return nil }
			oc := &runtime.OutgoingCall{Service: svc, Method: m}
			ic := &runtime.IncomingCall{Service: svc, Method: m}
			serve := func(context.Context) error {
				*ic = runtime.IncomingCall{Service: svc, Method: m, Metadata: oc.Metadata}
				return tr.served(ctx, ic, nop)
			}
			b.ReportAllocs()
			for b.Loop() {
				*oc = runtime.OutgoingCall{Service: svc, Method: m, Metadata: oc.Metadata[:0]}
				tr.made(ctx, oc, serve)
			}
		})
	}
}

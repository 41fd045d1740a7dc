package tracing_test

import (
	"context"
	"fmt"
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/tracing"
)

// Trace 1 % of the calls a node starts, and every call whose caller traces
// it. RootRatio draws the 1 % before any span is made, so the other calls
// cost almost nothing; a sampler such as
// sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)) would decide the
// same after making a span for every call.
func ExampleInstrument() {
	tp := sdktrace.NewTracerProvider()         // export spans with sdktrace.WithSpanProcessor(tracing.NewBatcher(exporter, tracing.BatcherConfig{}))
	ring, err := keyring.New(keyring.NewKey()) // in a real cluster: the key every member holds
	if err != nil {
		log.Fatal(err)
	}
	node, err := runtime.NewNode(runtime.Config{Name: "node1", Keyring: ring})
	if err != nil {
		log.Fatal(err)
	}
	if err := tracing.Instrument(node, tracing.Config{TracerProvider: tp, RootRatio: 0.01}); err != nil {
		log.Fatal(err)
	}
}

// Export the spans of a node in batches. The Batcher exports a batch when
// BatchSize spans have ended or Interval has passed, and the rest when the
// TracerProvider shuts down.
func ExampleNewBatcher() {
	exporter := tracetest.NewInMemoryExporter() // in production: an OTLP exporter, say
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracing.NewBatcher(exporter, tracing.BatcherConfig{})))
	defer tp.Shutdown(context.Background())
	_, span := tp.Tracer("example").Start(context.Background(), "work")
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(exporter.GetSpans()), "span exported")
	// Output: 1 span exported
}

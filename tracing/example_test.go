package tracing_test

import (
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/tracing"
)

// Trace 1 % of the calls a node starts, and every call whose caller traces it.
func ExampleInstrument() {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
	node, err := runtime.NewNode(runtime.Config{Name: "node1"})
	if err != nil {
		log.Fatal(err)
	}
	if err := tracing.Instrument(node, tracing.Config{TracerProvider: tp}); err != nil {
		log.Fatal(err)
	}
}

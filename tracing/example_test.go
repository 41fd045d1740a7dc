package tracing_test

import (
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

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
	tp := sdktrace.NewTracerProvider()         // export spans with sdktrace.WithBatcher(exporter)
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

package tracing_test

import (
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/tracing"
)

// Trace 1 % of the calls a node starts, and every call whose caller traces it.
func ExampleInstrument() {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
	ring, err := keyring.New(keyring.NewKey()) // in a real cluster: the key every member holds
	if err != nil {
		log.Fatal(err)
	}
	node, err := runtime.NewNode(runtime.Config{Name: "node1", Keyring: ring})
	if err != nil {
		log.Fatal(err)
	}
	if err := tracing.Instrument(node, tracing.Config{TracerProvider: tp}); err != nil {
		log.Fatal(err)
	}
}

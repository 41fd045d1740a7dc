package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/trellisrpc/trellis/bench/echo"
	"github.com/trellisrpc/trellis/metrics"
	trellis "github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/tracing"
)

// The observability variants of the trellis system: the same server and
// client, with package metrics installed on both nodes, and with metrics
// and package tracing (1 % of calls traced, tracing.Config.RootRatio;
// spans batched to an exporter that drops them, by a tracing.Batcher or,
// in trellis-traced-bsp, by the SDK's batch span processor).
const (
	sysMetrics   = "trellis-metrics"
	sysTraced    = "trellis-traced"
	sysTracedBSP = "trellis-traced-bsp"
)

// How the traced variants batch their spans.
const (
	noTracing = iota
	batcher   // tracing.NewBatcher
	sdkBatch  // sdktrace.WithBatcher: the SDK's batch span processor
)

func init() {
	systems = append(systems,
		&system{sysMetrics, "Trellis with package metrics on both nodes", serveObserved(true, noTracing), dialObserved(true, noTracing)},
		&system{sysTraced, "Trellis with metrics and tracing (1 % sampled, tracing.Batcher) on both nodes", serveObserved(true, batcher), dialObserved(true, batcher)},
		&system{sysTracedBSP, "the same with the SDK's batch span processor", serveObserved(true, sdkBatch), dialObserved(true, sdkBatch)},
	)
}

// observe installs metrics and tracing on n as asked.
func observe(n *trellis.Node, withMetrics bool, spans int) error {
	if withMetrics {
		col, err := metrics.New(metrics.Config{Node: n})
		if err != nil {
			return err
		}
		if err := prometheus.NewRegistry().Register(col); err != nil {
			return err
		}
	}
	if spans != noTracing {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracing.NewBatcher(tracetest.NewNoopExporter(), tracing.BatcherConfig{})))
		if spans == sdkBatch {
			tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		}
		if err := tracing.Instrument(n, tracing.Config{TracerProvider: tp, RootRatio: 0.01}); err != nil {
			return err
		}
	}
	return nil
}

func serveObserved(withMetrics bool, spans int) func(addr string) (string, func(), error) {
	return func(addr string) (string, func(), error) {
		n, err := newTrellisServer(addr)
		if err != nil {
			return "", nil, err
		}
		if err := observe(n, withMetrics, spans); err != nil {
			n.Close(context.Background())
			return "", nil, err
		}
		return n.Addr().String(), func() { n.Close(context.Background()) }, nil
	}
}

func dialObserved(withMetrics bool, spans int) func(ctx context.Context, addr string) (caller, error) {
	return func(ctx context.Context, addr string) (caller, error) {
		n, err := trellis.NewNode(trellis.Config{Name: "bench-client", Keyring: benchKeyring})
		if err != nil {
			return nil, err
		}
		if err := observe(n, withMetrics, spans); err != nil {
			n.Close(ctx)
			return nil, err
		}
		id, err := n.Connect(ctx, addr)
		if err != nil {
			n.Close(ctx)
			return nil, err
		}
		return &trellisClient{n: n, p: echo.NewEchoerProxy(n, id)}, nil
	}
}

// printObservability prints the cost of metrics and tracing: throughput
// and CPU per call of the observed variants against plain Trellis, small
// payload, measured in the same run. Both ratios are "higher is better":
// calls/s on ÷ off, and CPU per call off ÷ on.
func printObservability(w io.Writer, rs []Result) {
	off := find(rs, "trellis", "small")
	if off == nil {
		return
	}
	type line struct {
		sys  string
		goal float64
	}
	var have []line
	for _, l := range []line{{sysMetrics, 0.95}, {sysTraced, 0.90}, {sysTracedBSP, 0.90}} {
		if find(rs, l.sys, "small") != nil {
			have = append(have, l)
		}
	}
	if len(have) == 0 {
		return
	}
	fmt.Fprintf(w, "\nobservability, small payload, against trellis in the same run (higher is better):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tcalls/s on ÷ off\tCPU/call off ÷ on\ttarget\t")
	for _, l := range have {
		on := find(rs, l.sys, "small")
		cpuOn, cpuOff := float64(on.ClientCPU+on.ServerCPU), float64(off.ClientCPU+off.ServerCPU)
		thr, cpu := on.CallsPerSec/off.CallsPerSec, cpuOff/cpuOn
		verdict := "met"
		if thr < l.goal || cpu < l.goal {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%.3f×\t%.3f×\t≥ %.2f× %s\t\n", l.sys, thr, cpu, l.goal, verdict)
	}
	tw.Flush()
}

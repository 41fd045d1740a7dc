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
	sysControl   = "trellis-control"
	sysObserved  = "trellis-observed"
)

// How the traced variants batch their spans.
const (
	noTracing = iota
	batcher   // tracing.NewBatcher
	sdkBatch  // sdktrace.WithBatcher: the SDK's batch span processor

	// nopObserving installs, instead of tracing, a call observer that
	// does nothing (trellis-observed).
	nopObserving
)

func init() {
	systems = append(systems,
		&system{sysMetrics, "Trellis with package metrics on both nodes", serveObserved(true, noTracing), dialObserved(true, noTracing)},
		&system{sysTraced, "Trellis with metrics and tracing (1 % sampled, tracing.Batcher) on both nodes", serveObserved(true, batcher), dialObserved(true, batcher)},
		&system{sysControl, "Trellis again, nothing installed: the ratios' noise in this run", serveObserved(false, noTracing), dialObserved(false, noTracing)},
		&system{sysObserved, "Trellis with a call observer that does nothing on both nodes: the observers' machinery alone", serveObserved(false, nopObserving), dialObserved(false, nopObserving)},
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
	if spans == nopObserving {
		n.Observe(nopObserver{})
		return nil
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

// nopObserver is a runtime.CallObserver that does nothing.
type nopObserver struct{}

func (nopObserver) CallMade(context.Context, *trellis.OutgoingCall, error)   {}
func (nopObserver) CallServed(context.Context, *trellis.IncomingCall, error) {}

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
//
// Each ratio is the median, over the rounds, of the ratio between the two
// systems' figures in one round: the systems of a round are measured one
// after the other, seconds apart, while this machine's speed drifts by
// tens of percent over minutes (the rounds of one system range that
// widely), so ratios of figures merged over all the rounds would mostly
// measure the drift. trellis-control, plain Trellis again, shows what is
// left of it: its ratios should be 1.
func printObservability(w io.Writer, rs []Result) {
	off := find(rs, "trellis", "small")
	if off == nil {
		return
	}
	type line struct {
		sys  string
		goal float64 // 0: no target, note says what the line shows
		note string
	}
	var have []line
	for _, l := range []line{
		{sys: sysMetrics, goal: 0.95},
		{sys: sysTraced, goal: 0.90},
		{sys: sysTracedBSP, goal: 0.90},
		{sys: sysObserved, note: "(machinery)"},
		{sys: sysControl, note: "(noise)"},
	} {
		if find(rs, l.sys, "small") != nil {
			have = append(have, l)
		}
	}
	if len(have) == 0 {
		return
	}
	fmt.Fprintf(w, "\nobservability, small payload, against trellis in the same run (median of the rounds' ratios; higher is better):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tcalls/s on ÷ off\tCPU/call off ÷ on\trounds\ttarget\t")
	for _, l := range have {
		thr, cpu, n := pairedRatios(off, find(rs, l.sys, "small"))
		if n == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t0\t\t\n", l.sys)
			continue
		}
		verdict := l.note
		if l.goal > 0 {
			verdict = fmt.Sprintf("≥ %.2f× met", l.goal)
			if thr < l.goal || cpu < l.goal {
				verdict = fmt.Sprintf("≥ %.2f× MISSED", l.goal)
			}
		}
		fmt.Fprintf(tw, "%s\t%.3f×\t%.3f×\t%d\t%s\t\n", l.sys, thr, cpu, n, verdict)
	}
	tw.Flush()
}

// pairedRatios returns the medians, over the rounds both off and on were
// measured in, of on's calls/s ÷ off's and off's CPU per call ÷ on's, and
// the number of such rounds.
func pairedRatios(off, on *Result) (thr, cpu float64, n int) {
	byRound := make(map[int]RoundFigures, len(off.Rounds))
	for _, f := range off.Rounds {
		byRound[f.Round] = f
	}
	var thrs, cpus []float64
	for _, f := range on.Rounds {
		o, ok := byRound[f.Round]
		if !ok || o.CallsPerSec == 0 || f.CPUPerCall == 0 {
			continue
		}
		thrs = append(thrs, f.CallsPerSec/o.CallsPerSec)
		cpus = append(cpus, o.CPUPerCall/f.CPUPerCall)
	}
	return median(thrs), median(cpus), len(thrs)
}

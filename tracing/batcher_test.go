package tracing_test

import (
	"context"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/trellisrpc/trellis/tracing"
)

// recordingExporter keeps the names of the spans exported, reports each
// batch's size on batches, and, if gate is set, waits on it in each export.
type recordingExporter struct {
	mu      sync.Mutex
	names   []string
	shut    bool
	batches chan int
	gate    chan struct{}
	entered chan struct{} // capacity 1: an export waits on gate
}

func newRecordingExporter() *recordingExporter {
	return &recordingExporter{batches: make(chan int, 100), entered: make(chan struct{}, 1)}
}

func (e *recordingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.gate != nil {
		select {
		case e.entered <- struct{}{}:
		default:
		}
		select {
		case <-e.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.mu.Lock()
	for _, s := range spans {
		e.names = append(e.names, s.Name())
	}
	e.mu.Unlock()
	e.batches <- len(spans)
	return nil
}

func (e *recordingExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.shut = true
	e.mu.Unlock()
	return nil
}

func (e *recordingExporter) exported() (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.names), e.shut
}

// endSpans starts and ends n spans of tp.
func endSpans(tp *sdktrace.TracerProvider, n int) {
	tr := tp.Tracer("test")
	for range n {
		_, s := tr.Start(context.Background(), "op")
		s.End()
	}
}

func awaitBatch(t *testing.T, e *recordingExporter) int {
	t.Helper()
	select {
	case n := <-e.batches:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no batch exported within 5 s")
		return 0
	}
}

func TestBatcherExportsOnFlushAndShutdown(t *testing.T) {
	ctx := context.Background()
	exp := newRecordingExporter()
	b := tracing.NewBatcher(exp, tracing.BatcherConfig{Interval: time.Hour})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	endSpans(tp, 3)
	if n, _ := exp.exported(); n != 0 {
		t.Fatalf("%d spans exported before a flush, the batch being not full and the interval not up", n)
	}
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := exp.exported(); n != 3 {
		t.Fatalf("%d spans exported by ForceFlush, want 3", n)
	}
	endSpans(tp, 2)
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n, shut := exp.exported(); n != 5 || !shut {
		t.Fatalf("after Shutdown: %d spans exported (want 5), exporter shut down: %v", n, shut)
	}
	endSpans(tp, 1) // ignored
	if err := b.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if n, _ := exp.exported(); n != 5 || b.Dropped() != 0 {
		t.Errorf("after a span ended past Shutdown: %d exported, %d dropped; want 5, 0", n, b.Dropped())
	}
}

// TestBatcherExportsABatch checks that a batch goes out when it is full,
// and when the interval is up.
func TestBatcherExportsABatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   tracing.BatcherConfig
		spans int
	}{
		{"full", tracing.BatcherConfig{Interval: time.Hour, BatchSize: 4}, 4},
		{"full at the default size", tracing.BatcherConfig{Interval: time.Hour}, 128},
		{"interval", tracing.BatcherConfig{Interval: 10 * time.Millisecond}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := newRecordingExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracing.NewBatcher(exp, tc.cfg)))
			defer tp.Shutdown(context.Background())
			endSpans(tp, tc.spans)
			if n := awaitBatch(t, exp); n != tc.spans {
				t.Errorf("batch of %d spans, want %d", n, tc.spans)
			}
		})
	}
}

// TestBatcherDropsWhenFull holds the exporter in its first export, fills
// the queue behind it, and checks that the next span is dropped and
// counted, and that the queued ones are exported in the end.
func TestBatcherDropsWhenFull(t *testing.T) {
	exp := newRecordingExporter()
	exp.gate = make(chan struct{})
	b := tracing.NewBatcher(exp, tracing.BatcherConfig{Interval: time.Hour, BatchSize: 3, MaxQueue: 3})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	endSpans(tp, 3) // a full batch: the goroutine takes it and waits on the gate
	select {
	case <-exp.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("a full batch was not exported within 5 s")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		endSpans(tp, 1)
		if b.Dropped() > 0 {
			break // the queue filled behind the export held at the gate
		}
		if time.Now().After(deadline) {
			t.Fatal("no span dropped with the queue full")
		}
	}
	close(exp.gate)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, _ := exp.exported()
	if want := 3 + 3; n != want {
		t.Errorf("%d spans exported, want %d (the batch held at the gate and a full queue)", n, want)
	}
}

func TestBatcherIgnoresUnsampledSpans(t *testing.T) {
	exp := newRecordingExporter()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(recordOnly{}),
		sdktrace.WithSpanProcessor(tracing.NewBatcher(exp, tracing.BatcherConfig{})))
	endSpans(tp, 2)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := exp.exported(); n != 0 {
		t.Errorf("%d unsampled spans exported", n)
	}
}

// recordOnly records spans without sampling them.
type recordOnly struct{}

func (recordOnly) ShouldSample(sdktrace.SamplingParameters) sdktrace.SamplingResult {
	return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly}
}

func (recordOnly) Description() string { return "RecordOnly" }

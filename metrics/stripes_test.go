package metrics

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

func TestBucket(t *testing.T) {
	bounds := latencyBounds([]float64{50e-6, 100e-6, 1})
	tests := []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{50 * time.Microsecond, 0}, // a bound is inclusive, as Prometheus's "le"
		{50*time.Microsecond + 1, 1},
		{100 * time.Microsecond, 1},
		{time.Second, 2},
		{time.Second + 1, 3}, // +Inf
		{-time.Second, 0},
	}
	for _, tt := range tests {
		if got := bucket(bounds, tt.d); got != tt.want {
			t.Errorf("bucket(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestNewRefusesUnsortedBuckets(t *testing.T) {
	n, err := runtime.NewNode(runtime.Config{Name: "n", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	if _, err := New(Config{Node: n, Buckets: []float64{1, 0.5}}); err == nil {
		t.Error("New accepted buckets out of order")
	}
}

// gather returns the metrics of c by name and first label values.
func gather(t *testing.T, c *Collector) map[string]*dto.Metric {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Metric{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				if l.GetName() == "outcome" {
					key += "/" + l.GetValue()
				}
			}
			out[key] = m
		}
	}
	return out
}

// TestStripesSumConcurrentCalls counts calls made from many goroutines at
// once (spread over the stripes) and checks the sums Prometheus sees.
func TestStripesSumConcurrentCalls(t *testing.T) {
	n, err := runtime.NewNode(runtime.Config{Name: "n", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	c, err := New(Config{Node: n, Buckets: []float64{1e-3, 1}})
	if err != nil {
		t.Fatal(err)
	}
	svc, m := &codegen.ServiceDesc{Name: "svc"}, &codegen.MethodDesc{Name: "M"}
	const goroutines, calls = 8, 500
	failure := &runtime.CallError{Err: runtime.ErrUnreachable}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				var err error
				if i%100 == 0 {
					err = failure
				}
				oc := runtime.OutgoingCall{Service: svc, Method: m, Routed: g%2 == 0, RequestBytes: 10, ReplyBytes: 3}
				callObserver{c}.CallMade(context.Background(), &oc, err)
				ic := runtime.IncomingCall{Service: svc, Method: m, Hops: 1 + g, RequestBytes: 7, ReplyBytes: 2, Duration: time.Duration(g) * time.Millisecond}
				callObserver{c}.CallServed(context.Background(), &ic, err)
			}
		})
	}
	wg.Wait()
	const total, failed = goroutines * calls, goroutines * calls / 100
	got := gather(t, c)
	counter := func(name string) float64 { return got[name].GetCounter().GetValue() }
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"client ok", counter("trellis_client_calls_total/ok"), total - failed},
		{"client unreachable", counter("trellis_client_calls_total/unreachable"), failed},
		{"server ok", counter("trellis_server_calls_total/ok"), total - failed},
		{"client latencies", float64(got["trellis_client_call_duration_seconds"].GetHistogram().GetSampleCount()), total},
		{"client sent", counter("trellis_client_sent_bytes_total"), 10 * total},
		{"client received", counter("trellis_client_received_bytes_total"), 3 * total},
		{"server received", counter("trellis_server_received_bytes_total"), 7 * total},
		{"server sent", counter("trellis_server_sent_bytes_total"), 2 * total},
		{"routed", counter("trellis_client_routed_calls_total"), total / 2},
		{"hops", float64(got["trellis_server_call_hops"].GetHistogram().GetSampleCount()), total},
		{"hops sum", got["trellis_server_call_hops"].GetHistogram().GetSampleSum(), calls * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8)},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	// The server's latencies: goroutine g's calls took g ms; bucket le=1ms
	// holds those of goroutines 0 and 1.
	h := got["trellis_server_call_duration_seconds"].GetHistogram()
	if b := h.GetBucket(); len(b) != 2 || b[0].GetUpperBound() != 1e-3 || b[0].GetCumulativeCount() != 2*calls || b[1].GetCumulativeCount() != total {
		t.Errorf("server latency buckets = %v, want le=0.001: %d, le=1: %d", b, 2*calls, total)
	}
	if want := float64(calls*(0+1+2+3+4+5+6+7)) * 1e-3; h.GetSampleSum() < want*0.999 || h.GetSampleSum() > want*1.001 {
		t.Errorf("server latency sum = %v, want %v", h.GetSampleSum(), want)
	}
	// Every call crossed 1 to 8 connections: le=8 holds them all.
	if b := got["trellis_server_call_hops"].GetHistogram().GetBucket(); b[len(b)-1].GetCumulativeCount() != total {
		t.Errorf("hops le=8: %d, want %d", b[len(b)-1].GetCumulativeCount(), total)
	}
}

// TestHopsSum checks the hops histogram's sum, derived when scraping from
// the buckets and what calls beyond them add.
func TestHopsSum(t *testing.T) {
	tests := []struct {
		hops    []int
		wantSum uint64
		wantLE1 uint64 // calls in the first bucket
	}{
		{[]int{1, 1, 2}, 4, 2},
		{[]int{8, 9, 30}, 47, 0},
		{[]int{0, -3, 1}, 1, 3}, // counted as 1 hop, adding what they crossed (none)
		{nil, 0, 0},
	}
	for _, tt := range tests {
		s := newSide(2, 1)
		for i, h := range tt.hops {
			s.stripes[i%2].countHops(h)
		}
		sn := s.snapshot()
		var count uint64
		for _, k := range sn.hops {
			count += k
		}
		if sn.hopsSum != tt.wantSum || count != uint64(len(tt.hops)) || sn.hops[0] != tt.wantLE1 {
			t.Errorf("hops %v: sum %d, count %d, first bucket %d; want %d, %d, %d", tt.hops, sn.hopsSum, count, sn.hops[0], tt.wantSum, len(tt.hops), tt.wantLE1)
		}
	}
}

// TestOKCallsMonotonic checks the count of calls ended without error,
// derived when scraping: a failure counted before its call is counted as
// ended must not make it go down from one scrape to the next.
func TestOKCallsMonotonic(t *testing.T) {
	s := newSide(1, 1)
	end := func() { s.stripes[0].ended[0].Add(1) }
	for range 10 {
		end()
	}
	if ok, _ := s.outcomes(s.snapshot()); ok != 10 {
		t.Fatalf("ok = %d after 10 calls, want 10", ok)
	}
	// Two calls fail; a scrape sees their failures, not yet their ends.
	s.fail(runtime.KindUnreachable)
	s.fail(runtime.KindUnreachable)
	ok, failed := s.outcomes(s.snapshot())
	if ok != 10 || failed[runtime.KindUnreachable] != 2 {
		t.Errorf("mid-failure: ok = %d, failures %v; want 10 and 2", ok, failed)
	}
	end()
	end()
	end() // one more, without error
	if ok, _ := s.outcomes(s.snapshot()); ok != 11 {
		t.Errorf("ok = %d after 13 calls with 2 failed, want 11", ok)
	}
}

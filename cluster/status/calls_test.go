package status

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// TestCallStatsSum checks the per-method figures of calls counted from many
// goroutines at once, in the processors' stripes: calls, errors, mean and
// p99 latency, per side.
func TestCallStatsSum(t *testing.T) {
	cs := newCallStats()
	svc, m := &codegen.ServiceDesc{Name: "svc"}, &codegen.MethodDesc{Name: "M"}
	const goroutines, calls = 8, 500
	failure := errors.New("failed")
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range calls {
				var err error
				if i%100 == 0 {
					err = failure
				}
				// 99 calls in 100 take 10 µs, the others 1 ms.
				d := 10 * time.Microsecond
				if i%100 == 50 {
					d = time.Millisecond
				}
				cs.CallMade(context.Background(), &runtime.OutgoingCall{Service: svc, Method: m, Duration: d}, err)
				cs.CallServed(context.Background(), &runtime.IncomingCall{Service: svc, Method: m, Duration: 2 * d}, nil)
			}
		})
	}
	wg.Wait()
	got := cs.snapshot()
	if len(got) != 2 {
		t.Fatalf("snapshot has %d methods, want 2 (client and server): %+v", len(got), got)
	}
	const total = goroutines * calls
	meanClient := (0.99*10e-6 + 0.01*1e-3)
	for _, tt := range []struct {
		side      string
		errors    uint64
		mean, p99 float64
	}{
		{"client", total / 100, meanClient, 16e-6}, // 10 µs is in the bucket below 16 µs
		{"server", 0, 2 * meanClient, 32e-6},
	} {
		var ms MethodStats
		for _, s := range got {
			if s.Side == tt.side {
				ms = s
			}
		}
		if ms.Calls != total || ms.Errors != tt.errors || ms.P99Seconds != tt.p99 || ms.MeanSeconds < tt.mean*0.999 || ms.MeanSeconds > tt.mean*1.001 {
			t.Errorf("%s: %+v; want %d calls, %d errors, mean %v, p99 %v", tt.side, ms, total, tt.errors, tt.mean, tt.p99)
		}
	}
}

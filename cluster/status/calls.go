package status

import (
	"cmp"
	"context"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// callStats counts calls per method and side, with lock-free counters once
// a method has been seen.
type callStats struct {
	methods sync.Map // methodKey -> *methodCounters
}

type methodKey struct {
	m      *codegen.MethodDesc
	server bool
}

// latencyBuckets is the number of power-of-two microsecond buckets
// (1 µs to about 35 minutes).
const latencyBuckets = 32

type methodCounters struct {
	service, method string
	server          bool
	calls, errors   atomic.Uint64
	totalNanos      atomic.Uint64
	buckets         [latencyBuckets]atomic.Uint64 // bucket i: below 2^i µs
}

func newCallStats() *callStats { return &callStats{} }

func (cs *callStats) counters(svc *codegen.ServiceDesc, m *codegen.MethodDesc, server bool) *methodCounters {
	k := methodKey{m, server}
	if mc, ok := cs.methods.Load(k); ok {
		return mc.(*methodCounters)
	}
	name := "?"
	if svc != nil {
		name = svc.Name
	}
	mc, _ := cs.methods.LoadOrStore(k, &methodCounters{service: name, method: m.Name, server: server})
	return mc.(*methodCounters)
}

func (mc *methodCounters) record(d time.Duration, err error) {
	mc.calls.Add(1)
	if err != nil {
		mc.errors.Add(1)
	}
	mc.totalNanos.Add(uint64(d))
	us := uint64(d / time.Microsecond)
	i := min(bits.Len64(us), latencyBuckets-1)
	mc.buckets[i].Add(1)
}

func (cs *callStats) client(ctx context.Context, call *runtime.OutgoingCall, next func(context.Context) error) error {
	mc := cs.counters(call.Service, call.Method, false)
	start := time.Now()
	err := next(ctx)
	mc.record(time.Since(start), err)
	return err
}

func (cs *callStats) server(ctx context.Context, call *runtime.IncomingCall, next func(context.Context) error) error {
	mc := cs.counters(call.Service, call.Method, true)
	start := time.Now()
	err := next(ctx)
	mc.record(time.Since(start), err)
	return err
}

func (cs *callStats) snapshot() []MethodStats {
	var mcs []*methodCounters
	cs.methods.Range(func(_, v any) bool {
		mcs = append(mcs, v.(*methodCounters))
		return true
	})
	out := make([]MethodStats, 0, len(mcs))
	for _, mc := range mcs {
		ms := MethodStats{Service: mc.service, Method: mc.method, Side: "client", Calls: mc.calls.Load(), Errors: mc.errors.Load()}
		if mc.server {
			ms.Side = "server"
		}
		if ms.Calls > 0 {
			ms.MeanSeconds = float64(mc.totalNanos.Load()) / float64(ms.Calls) / 1e9
			var counts [latencyBuckets]uint64
			var total uint64
			for i := range counts {
				counts[i] = mc.buckets[i].Load()
				total += counts[i]
			}
			rank, seen := (total*99+99)/100, uint64(0)
			for i, c := range counts {
				seen += c
				if seen >= rank {
					ms.P99Seconds = float64(uint64(1)<<i) / 1e6 // the bucket's upper bound
					break
				}
			}
		}
		out = append(out, ms)
	}
	slices.SortFunc(out, func(a, b MethodStats) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Method, b.Method), cmp.Compare(a.Side, b.Side))
	})
	return out
}

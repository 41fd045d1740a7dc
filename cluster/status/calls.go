package status

import (
	"cmp"
	"context"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/internal/percpu"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// callStats counts calls per method and side. It is a runtime.CallObserver:
// the node tells it of each call once the call has ended, with its
// duration, so that it reads no clock, and it keeps its counters in
// per-processor stripes (internal/percpu), which calls made at once on
// several processors do not fight over.
type callStats struct {
	picker  *percpu.Picker
	methods sync.Map // methodKey -> *methodCounters
}

type methodKey struct {
	m      *codegen.MethodDesc
	server bool
}

// latencyBuckets is the number of power-of-two microsecond buckets
// (1 µs to about 35 minutes).
const latencyBuckets = 32

// methodCounters are one method's counters on one side.
type methodCounters struct {
	service, method string
	server          bool
	stripes         []callStripe
}

// callStripe is one processor's share of a method's counters on one side.
type callStripe struct {
	calls, errors atomic.Uint64
	totalNanos    atomic.Uint64
	buckets       [latencyBuckets]atomic.Uint64 // bucket i: below 2^i µs
	// The end of a stripe is kept off the cache lines of the next one.
	_ [16]uint64
}

func newCallStats() *callStats { return &callStats{picker: percpu.NewPicker()} }

func (cs *callStats) counters(svc *codegen.ServiceDesc, m *codegen.MethodDesc, server bool) *methodCounters {
	k := methodKey{m, server}
	if mc, ok := cs.methods.Load(k); ok {
		return mc.(*methodCounters)
	}
	name := "?"
	if svc != nil {
		name = svc.Name
	}
	mc, _ := cs.methods.LoadOrStore(k, &methodCounters{service: name, method: m.Name, server: server, stripes: make([]callStripe, cs.picker.N())})
	return mc.(*methodCounters)
}

// record counts a call that took d, in the stripe of the calling
// goroutine's processor.
func (cs *callStats) record(mc *methodCounters, d time.Duration, err error) {
	st := &mc.stripes[cs.picker.Pick()]
	st.calls.Add(1)
	if err != nil {
		st.errors.Add(1)
	}
	st.totalNanos.Add(uint64(max(d, 0)))
	us := uint64(max(d, 0) / time.Microsecond)
	i := min(bits.Len64(us), latencyBuckets-1)
	st.buckets[i].Add(1)
}

// CallMade counts a call made (runtime.CallObserver).
func (cs *callStats) CallMade(_ context.Context, call *runtime.OutgoingCall, err error) {
	cs.record(cs.counters(call.Service, call.Method, false), call.Duration, err)
}

// CallServed counts a call served (runtime.CallObserver).
func (cs *callStats) CallServed(_ context.Context, call *runtime.IncomingCall, err error) {
	cs.record(cs.counters(call.Service, call.Method, true), call.Duration, err)
}

func (cs *callStats) snapshot() []MethodStats {
	var mcs []*methodCounters
	cs.methods.Range(func(_, v any) bool {
		mcs = append(mcs, v.(*methodCounters))
		return true
	})
	out := make([]MethodStats, 0, len(mcs))
	for _, mc := range mcs {
		ms := MethodStats{Service: mc.service, Method: mc.method, Side: "client"}
		if mc.server {
			ms.Side = "server"
		}
		var counts [latencyBuckets]uint64
		var total, nanos uint64
		for k := range mc.stripes {
			st := &mc.stripes[k]
			ms.Calls += st.calls.Load()
			ms.Errors += st.errors.Load()
			nanos += st.totalNanos.Load()
			for i := range counts {
				c := st.buckets[i].Load()
				counts[i] += c
				total += c
			}
		}
		if ms.Calls > 0 {
			ms.MeanSeconds = float64(nanos) / float64(ms.Calls) / 1e9
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

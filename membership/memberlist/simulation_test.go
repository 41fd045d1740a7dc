//go:build unix

package memberlist_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/memberlist"
	"github.com/trellisrpc/trellis/membership/memberlist/memberlisttest"
	"github.com/trellisrpc/trellis/nodeid"
)

// The simulation runs N memberlist nodes (LAN preset) and their in-memory
// network inside a testing/synctest bubble: every timer, ticker and sleep of
// memberlist, of the Node and of the network (packet delay) runs on the
// bubble's clock, which advances only when every goroutine of the bubble is
// blocked. A probe therefore never times out because the machine was busy:
// the figures do not depend on the machine's load, only the wall time of a
// run does.

// simSpec describes one simulated run.
type simSpec struct {
	n         int
	delay     time.Duration // one-way delay of packets (a stream's dial: a round trip)
	joinEvery time.Duration // one node starts every joinEvery, through a random earlier one
	converge  time.Duration // bound on the time until every node lists N members
	settle    time.Duration // quiet time before the window (broadcast queues drain)
	window    time.Duration // the traffic window; 0 means memberlist's push/pull period at N
	kills     int           // nodes crashed one after another, every other node observing
	detect    time.Duration // bound on each crash's detection by every observer
	pushPull  time.Duration // memberlist's PushPullInterval; 0 means the LAN preset's (memberlist.LANPushPullInterval)
	verbose   bool          // log each phase's end
}

// simResult is what one run measured; rates are per node per simulated second.
type simResult struct {
	n                  int
	pushPull           time.Duration // memberlist's PushPullInterval
	converged          time.Duration // from the last start until every node lists N
	window             time.Duration
	pktSent, pktRecv   float64 // UDP packets
	bytesSent, bytesRx float64 // UDP bytes
	streamSent         float64 // TCP (stream) bytes sent: joins, push/pull
	streamRx           float64
	streams            float64 // streams opened
	bytesPerMember     float64 // TCP bytes per stream ÷ 2N: a member's share of a push/pull (both ways)
	cpu                float64 // process CPU seconds per node per simulated second
	falseAlarms        int     // Suspected or Failed events during the window
	detect             []time.Duration
	observers          int
	wall               time.Duration
}

// pushPullPeriod is memberlist's push/pull period at n members: the interval
// (60 s in the LAN preset) multiplied beyond 32 members by
// ⌈log2 N − log2 32⌉ + 1.
func pushPullPeriod(interval time.Duration, n int) time.Duration {
	p := interval
	if n > 32 {
		p *= time.Duration(math.Ceil(math.Log2(float64(n))-5) + 1)
	}
	return p
}

// simulate runs spec in a synctest bubble and returns what it measured.
func simulate(t *testing.T, spec simSpec) simResult {
	var res simResult
	start := time.Now()
	synctest.Test(t, func(t *testing.T) { res = simulateInBubble(t, spec) })
	res.wall = time.Since(start)
	return res
}

func simulateInBubble(t *testing.T, spec simSpec) simResult {
	n := spec.n
	res := simResult{n: n, window: spec.window}
	var tune func(*ml.Config)
	res.pushPull = memberlist.LANPushPullInterval
	if spec.pushPull != 0 {
		res.pushPull = spec.pushPull
		tune = func(c *ml.Config) { c.PushPullInterval = spec.pushPull }
	}
	if res.window == 0 {
		res.window = pushPullPeriod(res.pushPull, n)
	}
	nw := memberlisttest.NewNetwork()
	nw.SetDelay(spec.delay)
	nodes := make([]*memberlist.Node, n)
	trs := make([]*memberlisttest.Transport, n)
	closed := make([]bool, n)
	defer func() {
		var wg sync.WaitGroup
		for i, nd := range nodes {
			if nd != nil && !closed[i] {
				wg.Go(func() { nd.Close() })
			}
		}
		wg.Wait()
		// memberlist does not wait on Shutdown for the goroutines of probes
		// in flight (each ends when its probe timer fires), and the bubble's
		// clock stops when this function returns: let them end first.
		time.Sleep(10 * time.Second)
		synctest.Wait()
	}()
	rng := rand.New(rand.NewPCG(uint64(n), 15))
	ids := make(map[nodeid.ID]bool, n)
	meta := simClusterMeta(rng)
	for i := range n {
		trs[i] = nw.NewTransport()
		var seeds []string
		if i > 0 {
			seeds = []string{trs[rng.IntN(i)].Addr()}
		}
		// What a real member advertises: a random ID, a name, an RPC
		// address, the cluster's record as user metadata, and (Start) its
		// start time to the nanosecond as join time and incarnation. IDs
		// and times that compress better than real ones would flatter the
		// state exchanges, whose size is mostly this.
		id := nodeid.ID(rng.Uint64())
		for id == nodeid.None || ids[id] {
			id = nodeid.ID(rng.Uint64())
		}
		ids[id] = true
		nd, err := memberlist.New(memberlist.Config{ID: id, Name: fmt.Sprintf("node-%d", i),
			Addr: fmt.Sprintf("10.1.%d.%d:7001", i/256, i%256), Meta: meta, Keys: [][]byte{testKey}, Transport: trs[i],
			Seeds: seeds, RejoinInterval: time.Hour, Tune: tune})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if err := nd.Start(context.Background()); err != nil {
			t.Fatalf("node %d: start: %v", i, err)
		}
		nodes[i] = nd
		time.Sleep(spec.joinEvery + time.Duration(rng.Int64N(int64(time.Millisecond))))
	}

	progress := func(what string) {
		if spec.verbose {
			t.Logf("N=%d: %s (process CPU so far %v)", n, what, cpuTime().Round(time.Second))
		}
	}
	progress("every node started")

	// Convergence: every memberlist lists every node alive, then every
	// Node's own table does.
	began := time.Now()
	for {
		all := true
		for _, nd := range nodes {
			if nd.Memberlist().NumMembers() != n {
				all = false
				break
			}
		}
		if all {
			break
		}
		if time.Since(began) > spec.converge {
			missing := 0
			for i, nd := range nodes {
				missing += n - nd.Memberlist().NumMembers()
				if nd.Memberlist().NumMembers() != n {
					var st []string
					for _, m := range nd.Memberlist().Members() {
						st = append(st, fmt.Sprintf("%s:%d", m.Addr, m.State))
					}
					t.Logf("node %d lists %d: %v", i, nd.Memberlist().NumMembers(), st)
				}
			}
			t.Fatalf("N=%d: not converged after %v of simulated time (%d listings missing)", n, spec.converge, missing)
		}
		time.Sleep(time.Second)
	}
	for {
		all := true
		for _, nd := range nodes {
			if len(nd.Members()) != n {
				all = false
				break
			}
		}
		if all {
			break
		}
		if time.Since(began) > spec.converge {
			t.Fatalf("N=%d: memberlist converged but the Nodes' tables did not after %v", n, spec.converge)
		}
		time.Sleep(time.Second)
	}
	res.converged = time.Since(began)
	progress(fmt.Sprintf("converged after %v", res.converged))
	time.Sleep(spec.settle)

	// The steady window: traffic, CPU, and no suspicion at all.
	subs := make([]*membership.Subscription, n)
	for i, nd := range nodes {
		subs[i] = nd.Subscribe(64)
	}
	sum := func() (s memberlisttest.Stats) {
		for _, tr := range trs {
			st := tr.Stats()
			s.PacketsSent += st.PacketsSent
			s.PacketsReceived += st.PacketsReceived
			s.BytesSent += st.BytesSent
			s.BytesReceived += st.BytesReceived
			s.StreamsOpened += st.StreamsOpened
			s.StreamBytesSent += st.StreamBytesSent
			s.StreamBytesReceived += st.StreamBytesReceived
		}
		return s
	}
	before, cpu0 := sum(), cpuTime()
	time.Sleep(res.window)
	after, cpu := sum(), cpuTime()-cpu0
	secs := res.window.Seconds()
	per := func(a, b uint64) float64 { return float64(a-b) / float64(n) / secs }
	res.pktSent, res.pktRecv = per(after.PacketsSent, before.PacketsSent), per(after.PacketsReceived, before.PacketsReceived)
	res.bytesSent, res.bytesRx = per(after.BytesSent, before.BytesSent), per(after.BytesReceived, before.BytesReceived)
	res.streamSent, res.streamRx = per(after.StreamBytesSent, before.StreamBytesSent), per(after.StreamBytesReceived, before.StreamBytesReceived)
	res.streams = per(after.StreamsOpened, before.StreamsOpened)
	if res.streams > 0 {
		res.bytesPerMember = res.streamSent / res.streams / float64(2*n)
	}
	res.cpu = cpu.Seconds() / secs / float64(n)
	progress("window measured")
	for _, sub := range subs {
		for {
			e, ok := sub.TryNext()
			if !ok {
				break
			}
			if e.Kind == membership.Suspected || e.Kind == membership.Failed {
				res.falseAlarms++
			}
		}
	}

	// Detection: crash nodes one at a time; every other live node's delay
	// from the crash to its Failed event.
	for k := range spec.kills {
		v := 1 + k*(n-1)/max(spec.kills, 1)
		victim := nodes[v].ID()
		for _, sub := range subs {
			for {
				if _, ok := sub.TryNext(); !ok {
					break
				}
			}
		}
		at := time.Now()
		nodes[v].Close()
		closed[v] = true
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, sub := range subs {
			if closed[i] {
				continue
			}
			res.observers++
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), spec.detect)
				defer cancel()
				for {
					e, err := sub.Next(ctx)
					if err != nil {
						return
					}
					if e.Kind == membership.Failed && e.Member.ID == victim {
						mu.Lock()
						res.detect = append(res.detect, e.Time.Sub(at))
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		time.Sleep(time.Duration(k*37%1000) * time.Millisecond) // another probe phase for the next crash
	}
	slices.Sort(res.detect)
	return res
}

// simClusterMeta returns user metadata like the record package cluster
// advertises (cluster/meta.go; built here by hand, as importing cluster would
// be a cycle): its version, four epochs as uvarints (a cluster that has
// committed a few topologies), and one service (a length-prefixed name and
// its 8-byte method-set hash). Every member serves the same service.
func simClusterMeta(rng *rand.Rand) []byte {
	b := []byte{3}
	for _, epoch := range []uint64{7, 7, 0, 0} {
		b = binary.AppendUvarint(b, epoch)
	}
	b = append(b, 1) // one service
	name := "kv.Store"
	b = append(b, byte(len(name)))
	b = append(b, name...)
	return binary.LittleEndian.AppendUint64(b, rng.Uint64())
}

// quantile returns the q-quantile of sorted durations (0 if none).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(int(q*float64(len(d))), len(d)-1)]
}

func (r simResult) String() string {
	return fmt.Sprintf("memberlist LAN N=%4d (simulated, push/pull every %v): converged %v after the last start; window %v: per node UDP sent %.2f pkt/s %.0f B/s, received %.2f pkt/s %.0f B/s; TCP sent %.0f B/s received %.0f B/s (%.4f streams/s, %.1f B per member per state sent); total sent %.0f B/s; CPU %.5f core-s per simulated s; suspicions in the window %d; detection p50 %v p99 %v max %v (%d of %d observers); wall %v",
		r.n, r.pushPull, r.converged, r.window, r.pktSent, r.bytesSent, r.pktRecv, r.bytesRx, r.streamSent, r.streamRx, r.streams, r.bytesPerMember,
		r.bytesSent+r.streamSent, r.cpu, r.falseAlarms,
		quantile(r.detect, 0.5).Round(time.Millisecond), quantile(r.detect, 0.99).Round(time.Millisecond),
		quantile(r.detect, 1).Round(time.Millisecond), len(r.detect), r.observers, r.wall.Round(time.Millisecond))
}

// TestSimulatedCluster runs 16 memberlist nodes in a synctest bubble (200 µs
// one-way delay) and checks what the figures rely on: the cluster converges,
// a steady cluster raises no suspicion and each node sends about one probe and
// one ack a second (memberlist's constant per-node load), and a crash is
// declared by every other node within memberlist's suspicion bounds.
func TestSimulatedCluster(t *testing.T) {
	spec := simSpec{n: 16, delay: 200 * time.Microsecond, joinEvery: 10 * time.Millisecond,
		converge: 2 * time.Minute, settle: 5 * time.Second, window: 20 * time.Second, kills: 1, detect: time.Minute}
	r := simulate(t, spec)
	t.Log(r)
	if r.falseAlarms != 0 {
		t.Errorf("%d suspicions in a steady cluster on a simulated clock", r.falseAlarms)
	}
	if r.pktSent < 1.5 || r.pktSent > 3 {
		t.Errorf("UDP packets sent per node per second = %.2f, want about 2 (a probe and an ack)", r.pktSent)
	}
	if r.bytesSent > 1000 {
		t.Errorf("UDP bytes sent per node per second = %.0f, want under 1,000", r.bytesSent)
	}
	if len(r.detect) != r.observers {
		t.Fatalf("%d of %d observers declared the crashed node failed", len(r.detect), r.observers)
	}
	// Suspicion at 16 members lasts between 4 × log10(16) probe intervals
	// (4.8 s) and 6 times that; the probe that starts it comes within about
	// N probe intervals.
	lo, hi := 4800*time.Millisecond, 50*time.Second
	if p0, p99 := quantile(r.detect, 0), quantile(r.detect, 0.99); p0 < lo || p99 > hi {
		t.Errorf("detection from %v to %v (p99), want within [%v, %v]", p0, p99, lo, hi)
	}
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

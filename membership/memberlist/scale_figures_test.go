//go:build unix

package memberlist_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/memberlist"
	"github.com/trellisrpc/trellis/membership/memberlist/memberlisttest"
	"github.com/trellisrpc/trellis/nodeid"
)

// TestFiguresScale runs N = 16, 64, 256 and 1,000 memberlist nodes (LAN
// preset, real time) on the in-memory network in one process and prints per
// node the UDP packets and bytes sent and received per second in a steady
// cluster, the CPU per node (the process's CPU time per second divided by
// N), the bytes of a full state exchange (push/pull, whose period memberlist
// stretches with N) and the detection time of a crash at every observer. It
// runs only with TRELLIS_FIGURES=1 (see FIGURES.md):
//
//	TRELLIS_FIGURES=1 go test -run TestFiguresScale -v -timeout 60m ./membership/memberlist
//
// TRELLIS_FIGURES_N=256 runs one size only.
func TestFiguresScale(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") != "1" {
		t.Skip("set TRELLIS_FIGURES=1 to measure")
	}
	sizes := []int{16, 64, 256, 1000}
	if v := os.Getenv("TRELLIS_FIGURES_N"); v != "" {
		var n int
		fmt.Sscan(v, &n)
		sizes = []int{n}
	}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) { scaleMemberlist(t, n) })
	}
}

func scaleMemberlist(t *testing.T, n int) {
	nw := memberlisttest.NewNetwork()
	nodes := make([]*memberlist.Node, n)
	trs := make([]*memberlisttest.Transport, n)
	subs := make([]*membership.Subscription, n)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	lan := func(c *ml.Config) {} // the LAN preset as memberlist defines it
	var lastJoin memberlisttest.Stats
	for i := range n {
		trs[i] = nw.NewTransport()
		var seeds []string
		if i > 0 {
			seeds = []string{trs[rng.IntN(i)].Addr()}
		}
		nd, err := memberlist.New(memberlist.Config{ID: nodeid.ID(0x10000 + i), Name: fmt.Sprintf("n%d", i),
			Addr: fmt.Sprintf("10.1.%d.%d:7001", i/256, i%256), Keys: [][]byte{testKey}, Transport: trs[i],
			Seeds: seeds, Tune: lan, RejoinInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = nd.Subscribe(4 * n)
		if err := nd.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		nodes[i] = nd
		if i == n-1 {
			lastJoin = trs[i].Stats()
		}
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); nd.Close() }()
		}
		wg.Wait()
	})
	deadline := time.Now().Add(5 * time.Minute)
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
		if time.Now().After(deadline) {
			t.Fatalf("N=%d: not converged after 5 minutes", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	window := 20 * time.Second
	sum := func() (s memberlisttest.Stats) {
		for _, tr := range trs {
			st := tr.Stats()
			s.PacketsSent += st.PacketsSent
			s.PacketsReceived += st.PacketsReceived
			s.BytesSent += st.BytesSent
			s.BytesReceived += st.BytesReceived
			s.StreamBytesSent += st.StreamBytesSent
		}
		return s
	}
	before, cpu0, start := sum(), cpuTime(), time.Now()
	time.Sleep(window)
	after, cpu, secs := sum(), cpuTime()-cpu0, time.Since(start).Seconds()
	per := func(a, b uint64) float64 { return float64(a-b) / float64(n) / secs }

	// A full state exchange carries every member: its size grows with N,
	// and memberlist runs one per node every pushPull period, scaled up
	// beyond 32 members (30 s × (⌈log2 N − 5⌉ + 1)).
	exchange := lastJoin.StreamBytesSent + lastJoin.StreamBytesReceived
	period := 30 * time.Second
	if n > 32 {
		mult := 1
		for k := n; k > 32; k = (k + 1) / 2 {
			mult++
		}
		period *= time.Duration(mult)
	}
	// Each node starts one exchange per period and answers one on average.
	pushPull := 2 * float64(exchange) / period.Seconds()

	// Detection: crash one node (two below 1,000), observe every other.
	kills := 2
	if n >= 1000 {
		kills = 1
	}
	var took []time.Duration
	for k := range kills {
		v := 1 + k*(n-1)/kills
		victim := nodes[v].ID()
		for i := range subs {
			for {
				if _, ok := subs[i].TryNext(); !ok {
					break
				}
			}
		}
		at := time.Now()
		nodes[v].Close()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, sub := range subs {
			if i == v || nodes[i] == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				for {
					e, err := sub.Next(ctx)
					if err != nil {
						return
					}
					if e.Kind == membership.Failed && e.Member.ID == victim {
						mu.Lock()
						took = append(took, e.Time.Sub(at))
						mu.Unlock()
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	slices.Sort(took)
	if len(took) == 0 {
		t.Fatalf("N=%d: nobody declared the crashed node failed", n)
	}
	t.Logf("memberlist LAN N=%4d: per node sent %5.1f pkt/s %6.0f B/s, received %5.1f pkt/s %6.0f B/s (UDP), push/pull %6.0f B/s (%d B every %v), stream bytes in the window %6.0f B/s, CPU %.4f core; detection p50 %v p99 %v max %v (%d of %d observers)",
		n, per(after.PacketsSent, before.PacketsSent), per(after.BytesSent, before.BytesSent),
		per(after.PacketsReceived, before.PacketsReceived), per(after.BytesReceived, before.BytesReceived),
		pushPull, exchange, period, per(after.StreamBytesSent, before.StreamBytesSent), cpu.Seconds()/secs/float64(n),
		took[len(took)/2].Round(time.Millisecond), took[len(took)*99/100].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond),
		len(took), kills*(n-1))
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

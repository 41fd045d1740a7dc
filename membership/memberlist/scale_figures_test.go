//go:build unix

package memberlist_test

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestFiguresScale simulates memberlist clusters (LAN preset) of N = 64, 256
// and 1,000 nodes in a synctest bubble (see simulate) and prints per node the
// UDP packets and bytes and the TCP bytes sent and received per simulated
// second in a steady cluster, over one push/pull period (so that every node
// takes part in its share of full state exchanges); the CPU per node (the
// process's CPU time over the window ÷ N ÷ the simulated seconds: CPU per
// simulated second on this machine); and the detection time of crashes at
// every other node; then each per-node figure as a ratio to the first size.
// It runs only with TRELLIS_FIGURES=1, one size after another (see
// FIGURES.md):
//
//	TRELLIS_FIGURES=1 go test -run TestFiguresScale -v -timeout 120m ./membership/memberlist
//
// TRELLIS_FIGURES_SIZES=64,256 chooses the sizes, TRELLIS_FIGURES_DELAY=200us
// the one-way delay, TRELLIS_FIGURES_WINDOW=60s a fixed window,
// TRELLIS_FIGURES_PUSHPULL=30s memberlist's PushPullInterval (default: the LAN
// preset's, memberlist.LANPushPullInterval, 60s).
func TestFiguresScale(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") != "1" {
		t.Skip("set TRELLIS_FIGURES=1 to measure")
	}
	sizes := figureSizes(t, []int{64, 256, 1000}, 2)
	delay := figureDuration(t, "TRELLIS_FIGURES_DELAY", 200*time.Microsecond)
	pushPull := figureDuration(t, "TRELLIS_FIGURES_PUSHPULL", 0)
	window := figureDuration(t, "TRELLIS_FIGURES_WINDOW", 0)
	var base *simResult
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			kills := 3
			if n >= 1000 {
				kills = 2
			}
			r := simulate(t, simSpec{n: n, delay: delay, joinEvery: 20 * time.Millisecond,
				converge: 10 * time.Minute, settle: 30 * time.Second, window: window, kills: kills, detect: 5 * time.Minute, pushPull: pushPull, verbose: true})
			t.Log(r)
			if base == nil {
				base = &r
			}
			ratio := func(a, b float64) float64 {
				if b == 0 {
					return 0
				}
				return a / b
			}
			t.Logf("N=%d ÷ N=%d: UDP pkt sent %.2f×, UDP bytes sent %.2f×, total bytes sent (UDP+TCP) %.2f×, total received %.2f×, CPU %.2f×",
				n, base.n, ratio(r.pktSent, base.pktSent), ratio(r.bytesSent, base.bytesSent),
				ratio(r.bytesSent+r.streamSent, base.bytesSent+base.streamSent), ratio(r.bytesRx+r.streamRx, base.bytesRx+base.streamRx),
				ratio(r.cpu, base.cpu))
		})
	}
}

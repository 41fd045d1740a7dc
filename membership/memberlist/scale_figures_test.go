//go:build unix

package memberlist_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
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
// TRELLIS_FIGURES_PUSHPULL=1m memberlist's PushPullInterval (LAN: 30s).
func TestFiguresScale(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") != "1" {
		t.Skip("set TRELLIS_FIGURES=1 to measure")
	}
	sizes := []int{64, 256, 1000}
	if v := os.Getenv("TRELLIS_FIGURES_SIZES"); v != "" {
		sizes = sizes[:0]
		for _, f := range strings.Split(v, ",") {
			k, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || k < 2 {
				t.Fatalf("TRELLIS_FIGURES_SIZES: bad size %q", f)
			}
			sizes = append(sizes, k)
		}
	}
	delay := 200 * time.Microsecond
	if v := os.Getenv("TRELLIS_FIGURES_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TRELLIS_FIGURES_DELAY: %v", err)
		}
		delay = d
	}
	var pushPull time.Duration
	if v := os.Getenv("TRELLIS_FIGURES_PUSHPULL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TRELLIS_FIGURES_PUSHPULL: %v", err)
		}
		pushPull = d
	}
	var window time.Duration
	if v := os.Getenv("TRELLIS_FIGURES_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TRELLIS_FIGURES_WINDOW: %v", err)
		}
		window = d
	}
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

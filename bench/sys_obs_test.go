package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestPairedRatios(t *testing.T) {
	rounds := func(fs ...RoundFigures) *Result { return &Result{Rounds: fs} }
	for _, tc := range []struct {
		name     string
		off, on  *Result
		thr, cpu float64
		n        int
	}{
		{
			name: "round by round",
			off:  rounds(RoundFigures{0, 100, 10}, RoundFigures{1, 200, 5}, RoundFigures{2, 50, 20}),
			on:   rounds(RoundFigures{0, 90, 11}, RoundFigures{1, 190, 5}, RoundFigures{2, 40, 25}),
			// calls/s: 0.9, 0.95, 0.8; CPU: 10/11, 1, 0.8.
			thr: 0.9, cpu: 10.0 / 11, n: 3,
		},
		{
			// The machine ran three times faster in round 1: each round's
			// ratio is the same whatever its speed.
			name: "drift",
			off:  rounds(RoundFigures{0, 100, 10}, RoundFigures{1, 300, 10.0 / 3}, RoundFigures{2, 100, 10}),
			on:   rounds(RoundFigures{0, 95, 10.5}, RoundFigures{1, 285, 10.5 / 3}, RoundFigures{2, 95, 10.5}),
			thr:  0.95, cpu: 10 / 10.5, n: 3,
		},
		{
			name: "rounds not measured in both are left out",
			off:  rounds(RoundFigures{0, 100, 10}, RoundFigures{2, 100, 10}),
			on:   rounds(RoundFigures{1, 50, 20}, RoundFigures{2, 80, 12.5}),
			thr:  0.8, cpu: 0.8, n: 1,
		},
		{
			name: "none in common",
			off:  rounds(RoundFigures{0, 100, 10}),
			on:   rounds(RoundFigures{1, 100, 10}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			thr, cpu, n := pairedRatios(tc.off, tc.on)
			if n != tc.n || math.Abs(thr-tc.thr) > 1e-9 || math.Abs(cpu-tc.cpu) > 1e-9 {
				t.Errorf("pairedRatios = %.4f, %.4f over %d rounds, want %.4f, %.4f over %d", thr, cpu, n, tc.thr, tc.cpu, tc.n)
			}
		})
	}
}

func TestPrintObservability(t *testing.T) {
	res := func(sys string, thr, cpu float64) Result {
		return Result{System: sys, Payload: "small", Rounds: []RoundFigures{{0, thr, cpu}}}
	}
	rs := []Result{res("trellis", 100, 10), res(sysMetrics, 96, 10.4), res(sysTraced, 85, 11), res(sysControl, 101, 9.9)}
	var b bytes.Buffer
	printObservability(&b, rs)
	out := b.String()
	for _, want := range []string{
		"trellis-metrics            0.960×             0.962×       1     ≥ 0.95× met",
		"trellis-traced            0.850×             0.909×       1  ≥ 0.90× MISSED",
		"trellis-control            1.010×             1.010×       1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

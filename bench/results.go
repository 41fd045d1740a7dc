package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// The results of the echo phases: each system's rounds merged into a
// Result, and the tables printed from them.

// Result is what the table shows for one system and payload: the rounds
// of each phase merged.
type Result struct {
	System, Payload string

	// One caller: the median over the rounds of each round's percentile.
	SeqCalls int
	P50, P99 time.Duration

	// Concurrent callers: the median rate over the rounds, and the per-call
	// costs over all the rounds' windows together.
	ConcCalls   int64
	CallsPerSec float64
	RoundRates  []float64
	// Rounds holds each round's figures of the concurrent phase, for
	// ratios between two systems measured in the same round.
	Rounds                     []RoundFigures
	ClientAllocs, ServerAllocs float64
	ClientCPU, ServerCPU       time.Duration
	ClientReads, ClientWrites  float64
	ServerReads, ServerWrites  float64

	Err string `json:",omitempty"`
}

// figures returns the figures of m, a measure of the concurrent phase.
func (m Measure) figures() RoundFigures {
	return RoundFigures{
		Round:       m.Round,
		CallsPerSec: float64(m.Calls) / m.Window.Seconds(),
		CPUPerCall:  float64(m.ClientCPU+m.ServerCPU) / float64(max(m.Calls, 1)),
	}
}

// RoundFigures are one round's figures of the concurrent phase.
type RoundFigures struct {
	Round       int
	CallsPerSec float64
	CPUPerCall  float64 // client and server, nanoseconds
}

func median[T int64 | float64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// merge combines the rounds of one system and payload.
func merge(ms []Measure) Result {
	var r Result
	var p50, p99 []time.Duration
	var cm, sm, cr, cw, sr, sw uint64
	var cc, sc time.Duration
	for _, m := range ms {
		switch m.Phase {
		case "seq":
			r.SeqCalls += m.SeqCalls
			p50 = append(p50, m.P50)
			p99 = append(p99, m.P99)
		case "conc":
			r.ConcCalls += m.Calls
			f := m.figures()
			r.RoundRates = append(r.RoundRates, f.CallsPerSec)
			r.Rounds = append(r.Rounds, f)
			cm, sm = cm+m.ClientMallocs, sm+m.ServerMallocs
			cc, sc = cc+m.ClientCPU, sc+m.ServerCPU
			cr, cw, sr, sw = cr+m.ClientReads, cw+m.ClientWrites, sr+m.ServerReads, sw+m.ServerWrites
		}
	}
	r.P50, r.P99 = median(p50), median(p99)
	if n := r.ConcCalls; n > 0 {
		r.CallsPerSec = median(r.RoundRates)
		f := float64(n)
		r.ClientAllocs, r.ServerAllocs = float64(cm)/f, float64(sm)/f
		r.ClientCPU, r.ServerCPU = cc/time.Duration(n), sc/time.Duration(n)
		r.ClientReads, r.ClientWrites = float64(cr)/f, float64(cw)/f
		r.ServerReads, r.ServerWrites = float64(sr)/f, float64(sw)/f
	}
	return r
}

func us(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond))
}

func printTable(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tpayload\tp50 µs\tp99 µs\tcalls/s\t(rounds\tallocs/call\t\tCPU µs/call\t\t\tsyscalls/call (r+w)\t\t")
	fmt.Fprintln(tw, "\t\t1 caller\t1 caller\tN callers\tmin–max)\tclient\tserver\tclient\tserver\ttotal\tclient\tserver\t")
	for _, r := range rs {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t%s\tFAILED: %s\t\t\t\t\t\t\t\t\t\t\t\n", r.System, r.Payload, r.Err)
			continue
		}
		thr, rng, ca, sa, cs, ss := "-", "", "-", "-", "-", "-"
		if r.ConcCalls > 0 {
			thr = fmt.Sprintf("%.0f", r.CallsPerSec)
			rng = fmt.Sprintf("%.0fk–%.0fk", slices.Min(r.RoundRates)/1e3, slices.Max(r.RoundRates)/1e3)
			if slices.Max(r.RoundRates) < 1e4 {
				rng = fmt.Sprintf("%.1fk–%.1fk", slices.Min(r.RoundRates)/1e3, slices.Max(r.RoundRates)/1e3)
			}
			ca = fmt.Sprintf("%.1f", r.ClientAllocs)
			sa = fmt.Sprintf("%.1f", r.ServerAllocs)
			cs = fmt.Sprintf("%.3f+%.3f", r.ClientReads, r.ClientWrites)
			ss = fmt.Sprintf("%.3f+%.3f", r.ServerReads, r.ServerWrites)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.System, r.Payload, us(r.P50), us(r.P99),
			thr, rng, ca, sa, us(r.ClientCPU), us(r.ServerCPU), us(r.ClientCPU+r.ServerCPU), cs, ss)
	}
	tw.Flush()
}

func find(rs []Result, system, payload string) *Result {
	for i := range rs {
		if rs[i].System == system && rs[i].Payload == payload && rs[i].Err == "" {
			return &rs[i]
		}
	}
	return nil
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func printRatios(w io.Writer, rs []Result) {
	for _, pn := range []string{"small", "large"} {
		g, raw := find(rs, "grpc", pn), find(rs, "raw", pn)
		if g == nil && raw == nil {
			continue
		}
		fmt.Fprintf(w, "\nratios, %s payload (raw = the inline raw floor):\n", pn)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "system\tcalls/s ÷ gRPC\tcalls/s ÷ raw\tp50 ÷ raw\tCPU/call ÷ raw\tCPU/call ÷ gRPC\t")
		for _, r := range rs {
			if r.Payload != pn || r.Err != "" {
				continue
			}
			var gt, rt, rp, rc, gc float64
			if g != nil {
				gt, gc = g.CallsPerSec, float64(g.ClientCPU+g.ServerCPU)
			}
			if raw != nil {
				rt, rp, rc = raw.CallsPerSec, float64(raw.P50), float64(raw.ClientCPU+raw.ServerCPU)
			}
			cpu := float64(r.ClientCPU + r.ServerCPU)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.System, ratio(r.CallsPerSec, gt), ratio(r.CallsPerSec, rt),
				ratio(float64(r.P50), rp), ratio(cpu, rc), ratio(cpu, gc))
		}
		tw.Flush()
	}
}

// printTargets checks Trellis against the targets of the benchmark issue
// (and of the stream issue, for the figures).
func printTargets(w io.Writer, rs []Result, f *Figures) {
	t, g, raw := find(rs, "trellis", "small"), find(rs, "grpc", "small"), find(rs, "raw", "small")
	tl, rawl := find(rs, "trellis", "large"), find(rs, "raw", "large")
	type target struct {
		what    string
		got     float64
		goal    float64
		atLeast bool
		unit    string
		have    bool
	}
	var ts []target
	add := func(what string, ok bool, got func() float64, goal float64, atLeast bool, unit string) {
		tg := target{what: what, goal: goal, atLeast: atLeast, unit: unit, have: ok}
		if ok {
			tg.got = got()
		}
		ts = append(ts, tg)
	}
	conc := func(r *Result) bool { return r != nil && r.ConcCalls > 0 }
	seq := func(r *Result) bool { return r != nil && r.SeqCalls > 0 }
	add("small-call throughput ÷ gRPC-Go", conc(t) && conc(g), func() float64 { return t.CallsPerSec / g.CallsPerSec }, 4, true, "×")
	add("small-call throughput ÷ raw floor", conc(t) && conc(raw), func() float64 { return t.CallsPerSec / raw.CallsPerSec }, 0.8, true, "×")
	add("one-caller p50 ÷ raw (small)", seq(t) && seq(raw), func() float64 { return float64(t.P50) / float64(raw.P50) }, 1.3, false, "×")
	add("client allocations per call (small)", conc(t), func() float64 { return math.Round(t.ClientAllocs*10) / 10 }, 8, false, "")
	add("client+server CPU per call ÷ raw (small)", conc(t) && conc(raw), func() float64 {
		return float64(t.ClientCPU+t.ServerCPU) / float64(raw.ClientCPU+raw.ServerCPU)
	}, 1.5, false, "×")
	add("large-payload throughput ÷ raw", conc(tl) && conc(rawl), func() float64 { return tl.CallsPerSec / rawl.CallsPerSec }, 0.85, true, "×")
	// Authentication (the cluster key, "trellis") against none
	// ("trellis-open", Insecure), same run: at most 5 % slower.
	if open := find(rs, "trellis-open", "small"); conc(open) {
		add("small-call throughput, auth on ÷ off", conc(t), func() float64 { return t.CallsPerSec / open.CallsPerSec }, 0.95, true, "×")
		add("CPU per small call, auth on ÷ off", conc(t), func() float64 {
			return float64(t.ClientCPU+t.ServerCPU) / float64(open.ClientCPU+open.ServerCPU)
		}, 1.05, false, "×")
	}
	if len(rs) == 0 {
		ts = nil
	}
	if f != nil && (len(f.TrellisMBs) > 0 || len(f.TCPMBs) > 0) {
		add("remote io.Reader MB/s ÷ plain TCP copy", len(f.TrellisMBs) > 0 && len(f.TCPMBs) > 0, func() float64 {
			return median(f.TrellisMBs) / median(f.TCPMBs)
		}, 0.8, true, "×")
	}
	if f != nil && (len(f.BusyP99) > 0 || len(f.IdleP99) > 0) {
		add("small-call p99 during a stream ÷ without", len(f.BusyP99) > 0 && len(f.IdleP99) > 0, func() float64 {
			return dratio(median(f.BusyP99), median(f.IdleP99))
		}, 2, false, "×")
	}
	if len(ts) == 0 {
		return
	}
	fmt.Fprintln(w, "\nTrellis against the targets:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, tg := range ts {
		if !tg.have {
			fmt.Fprintf(tw, "  %s\t-\t(not measured)\t\n", tg.what)
			continue
		}
		// Judge at the precision shown.
		got := math.Round(tg.got*100) / 100
		op, ok := "≤", got <= tg.goal
		if tg.atLeast {
			op, ok = "≥", got >= tg.goal
		}
		verdict := "met"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "  %s\t%.2f%s\ttarget %s %g%s\t%s\t\n", tg.what, tg.got, tg.unit, op, tg.goal, tg.unit, verdict)
	}
	tw.Flush()
}

// printSpread shows, per row, the range of throughput and p50 over the runs.
func printSpread(w io.Writer, all [][]Result, figs []*Figures) {
	if len(all[0]) > 0 {
		printEchoSpread(w, all)
	}
	printFigureSpread(w, figs)
}

func printEchoSpread(w io.Writer, all [][]Result) {
	fmt.Fprintf(w, "spread over %d runs (min – max, and (max-min)/min):\n", len(all))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tpayload\tcalls/s\tspread\tp50 µs\tspread\tCPU µs/call\tspread\t")
	for _, r0 := range all[0] {
		var thr, p50, cpu []float64
		for _, rs := range all {
			if r := find(rs, r0.System, r0.Payload); r != nil {
				thr = append(thr, r.CallsPerSec)
				p50 = append(p50, float64(r.P50)/1e3)
				cpu = append(cpu, float64(r.ClientCPU+r.ServerCPU)/1e3)
			}
		}
		rng := func(v []float64, f string) (string, string) {
			if len(v) == 0 || v[0] == 0 {
				return "-", "-"
			}
			lo, hi := v[0], v[0]
			for _, x := range v {
				lo, hi = min(lo, x), max(hi, x)
			}
			return fmt.Sprintf(f+" – "+f, lo, hi), fmt.Sprintf("%.0f%%", 100*(hi-lo)/lo)
		}
		a, b := rng(thr, "%.0f")
		c, d := rng(p50, "%.1f")
		e, f := rng(cpu, "%.1f")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r0.System, r0.Payload, a, b, c, d, e, f)
	}
	tw.Flush()
}

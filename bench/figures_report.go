package main

// The orchestrator's side of the figures: running them and printing them.

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"text/tabwriter"
	"time"
)

// Figures is the stream and routing figures of one run: each side's rounds
// and their medians.
type Figures struct {
	StreamBytes, BusyBytes int64
	Callers                int

	TrellisMBs, TCPMBs   []float64 // per round
	TrellisCPU, TCPCPU   float64   // client+server CPU seconds per GiB, over all rounds
	TrellisCPUC, TCPCPUC float64   // of which the client's

	DirectP50, DirectP99, RoutedP50, RoutedP99 []time.Duration

	IdleP50, IdleP99, BusyP50, BusyP99 []time.Duration
	IdleCalls, BusyCalls               int
	BusyMBs                            []float64 // the stream under the calls
	BusyEnded                          int       // busy streams read to their end within the window

	Err string `json:",omitempty"`
}

type figurePhases struct{ stream, route, p99 bool }

func (f figurePhases) any() bool { return f.stream || f.route || f.p99 }

func mbs(bytes int64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }

// measureFigures runs the figures' rounds with fresh client processes.
func measureFigures(o orchOpts, run int) (*Figures, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f := &Figures{StreamBytes: o.fig.streamBytes, BusyBytes: o.fig.busyBytes, Callers: o.callers}
	start := func(kind string) (*clientProc, error) {
		args := append([]string{"-client", kind}, o.passArgs...)
		if o.profile != "" {
			pre := o.profileBase(kind, run)
			args = append(args, "-cpuprofile", pre+"-client.cpu.pprof", "-memprofile", pre+"-client.mem.pprof",
				"-server-cpuprofile", pre+"-server.cpu.pprof", "-server-memprofile", pre+"-server.mem.pprof")
		}
		return startClientProc(exe, args, kind)
	}
	var sp, rp *clientProc
	defer func() {
		for _, cp := range []*clientProc{sp, rp} {
			if cp != nil {
				cp.close()
			}
		}
	}()
	if o.figs.stream || o.figs.p99 {
		if sp, err = start("stream"); err != nil {
			return nil, err
		}
	}
	if o.figs.route {
		if rp, err = start("route"); err != nil {
			return nil, err
		}
	}
	type pair struct {
		cp   *clientProc
		a, b string
	}
	var pairs []pair
	if o.figs.stream {
		pairs = append(pairs, pair{sp, "stream trellis", "stream tcp"})
	}
	if o.figs.route {
		pairs = append(pairs, pair{rp, "hop both", ""})
	}
	if o.figs.p99 {
		pairs = append(pairs, pair{sp, "p99 idle", "p99 stream"})
	}
	var failed error
	var trCPU, tcpCPU, trCPUC, tcpCPUC time.Duration
	var trBytes, tcpBytes int64
	for round := range o.rounds {
		for _, p := range pairs {
			order := []string{p.a, p.b}
			if round%2 == 1 {
				order = []string{p.b, p.a}
			}
			for _, line := range order {
				if line == "" {
					continue
				}
				var m XMeasure
				if err := p.cp.ask(line, &m); err != nil {
					if failed == nil {
						failed = fmt.Errorf("%s: %v", line, err)
					}
					continue
				}
				switch line {
				case "stream trellis":
					f.TrellisMBs = append(f.TrellisMBs, mbs(m.Bytes, m.Elapsed))
					trCPU, trCPUC, trBytes = trCPU+m.ClientCPU+m.ServerCPU, trCPUC+m.ClientCPU, trBytes+m.Bytes
				case "stream tcp":
					f.TCPMBs = append(f.TCPMBs, mbs(m.Bytes, m.Elapsed))
					tcpCPU, tcpCPUC, tcpBytes = tcpCPU+m.ClientCPU+m.ServerCPU, tcpCPUC+m.ClientCPU, tcpBytes+m.Bytes
				case "hop both":
					f.DirectP50, f.DirectP99 = append(f.DirectP50, m.P50), append(f.DirectP99, m.P99)
					f.RoutedP50, f.RoutedP99 = append(f.RoutedP50, m.RoutedP50), append(f.RoutedP99, m.RoutedP99)
				case "p99 idle":
					f.IdleP50, f.IdleP99, f.IdleCalls = append(f.IdleP50, m.P50), append(f.IdleP99, m.P99), f.IdleCalls+m.Calls
				case "p99 stream":
					f.BusyP50, f.BusyP99, f.BusyCalls = append(f.BusyP50, m.P50), append(f.BusyP99, m.P99), f.BusyCalls+m.Calls
					f.BusyMBs = append(f.BusyMBs, mbs(m.StreamBytes, m.StreamElapsed))
					if m.StreamEnded {
						f.BusyEnded++
					}
				}
				fmt.Fprintf(os.Stderr, "run %d round %d: %-14s %s\n", run+1, round+1, line, m.brief())
			}
		}
	}
	perGiB := func(cpu time.Duration, bytes int64) float64 {
		if bytes == 0 {
			return 0
		}
		return cpu.Seconds() / (float64(bytes) / (1 << 30))
	}
	f.TrellisCPU, f.TrellisCPUC = perGiB(trCPU, trBytes), perGiB(trCPUC, trBytes)
	f.TCPCPU, f.TCPCPUC = perGiB(tcpCPU, tcpBytes), perGiB(tcpCPUC, tcpBytes)
	for _, cp := range []*clientProc{sp, rp} {
		if cp != nil {
			if err := cp.close(); err != nil && failed == nil && cp.err == nil {
				failed = fmt.Errorf("%s client: %v", cp.system, err)
			}
		}
	}
	sp, rp = nil, nil
	if failed != nil {
		f.Err = failed.Error()
	}
	return f, failed
}

func (m *XMeasure) brief() string {
	switch m.Phase {
	case "stream":
		return fmt.Sprintf("%6.0f MB/s", mbs(m.Bytes, m.Elapsed))
	case "hop":
		return fmt.Sprintf("direct p50 %s µs, p99 %s µs; routed p50 %s µs, p99 %s µs", us(m.P50), us(m.P99), us(m.RoutedP50), us(m.RoutedP99))
	case "p99":
		s := fmt.Sprintf("p99 %s µs over %d calls", us(m.P99), m.Calls)
		if m.StreamBytes > 0 {
			s += fmt.Sprintf(", stream %.0f MB/s", mbs(m.StreamBytes, m.StreamElapsed))
		}
		return s
	}
	return ""
}

func medianF(v []float64) float64 { return median(v) }

func ranged[T float64 | time.Duration](v []T, f func(T) string) string {
	if len(v) < 2 {
		return ""
	}
	return "(" + f(slices.Min(v)) + "–" + f(slices.Max(v)) + ")"
}

func fmtMBs(v float64) string      { return fmt.Sprintf("%.0f", v) }
func fmtUS(d time.Duration) string { return us(d) }
func dratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// printFigures prints the figures of one run.
func printFigures(w io.Writer, f *Figures) {
	if f == nil {
		return
	}
	fmt.Fprintf(w, "\nstreams and routing (Trellis; medians over the rounds, (min–max of the rounds)):\n")
	if f.Err != "" {
		fmt.Fprintf(w, "  FAILED: %s\n", f.Err)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "  figure\tTrellis\t(rounds)\tbaseline\t(rounds)\tratio\t")
	if len(f.TrellisMBs) > 0 || len(f.TCPMBs) > 0 {
		t, c := medianF(f.TrellisMBs), medianF(f.TCPMBs)
		fmt.Fprintf(tw, "  remote io.Reader, %d MiB, MB/s [vs plain TCP copy]\t%s\t%s\t%s\t%s\t%s\t\n", f.StreamBytes>>20,
			fmtMBs(t), ranged(f.TrellisMBs, fmtMBs), fmtMBs(c), ranged(f.TCPMBs, fmtMBs), ratio(t, c))
		fmt.Fprintf(tw, "    CPU s per GiB, client+server (client)\t%.2f (%.2f)\t\t%.2f (%.2f)\t\t%s\t\n",
			f.TrellisCPU, f.TrellisCPUC, f.TCPCPU, f.TCPCPUC, ratio(f.TrellisCPU, f.TCPCPU))
	}
	if len(f.RoutedP50) > 0 || len(f.DirectP50) > 0 {
		r50, d50, r99, d99 := median(f.RoutedP50), median(f.DirectP50), median(f.RoutedP99), median(f.DirectP99)
		fmt.Fprintf(tw, "  1 caller, small, p50 µs [routed A→C via B vs direct A→B]\t%s\t%s\t%s\t%s\t%s\t\n",
			us(r50), ranged(f.RoutedP50, fmtUS), us(d50), ranged(f.DirectP50, fmtUS), ratio(float64(r50), float64(d50)))
		fmt.Fprintf(tw, "  1 caller, small, p99 µs [routed A→C via B vs direct A→B]\t%s\t%s\t%s\t%s\t%s\t\n",
			us(r99), ranged(f.RoutedP99, fmtUS), us(d99), ranged(f.DirectP99, fmtUS), ratio(float64(r99), float64(d99)))
	}
	if len(f.BusyP99) > 0 || len(f.IdleP99) > 0 {
		b99, i99, b50, i50 := median(f.BusyP99), median(f.IdleP99), median(f.BusyP50), median(f.IdleP50)
		fmt.Fprintf(tw, "  %d callers, small, p99 µs [during a %d MiB stream vs no stream]\t%s\t%s\t%s\t%s\t%s\t\n", f.Callers, f.BusyBytes>>20,
			us(b99), ranged(f.BusyP99, fmtUS), us(i99), ranged(f.IdleP99, fmtUS), ratio(float64(b99), float64(i99)))
		fmt.Fprintf(tw, "  %d callers, small, p50 µs [during a %d MiB stream vs no stream]\t%s\t%s\t%s\t%s\t%s\t\n", f.Callers, f.BusyBytes>>20,
			us(b50), ranged(f.BusyP50, fmtUS), us(i50), ranged(f.IdleP50, fmtUS), ratio(float64(b50), float64(i50)))
		tw.Flush()
		fmt.Fprintf(w, "  (the stream under the calls: %s MB/s %s, read to its end within the window in %d of %d rounds; %d and %d calls measured)\n",
			fmtMBs(medianF(f.BusyMBs)), ranged(f.BusyMBs, fmtMBs), f.BusyEnded, len(f.BusyP99), f.BusyCalls, f.IdleCalls)
	}
	tw.Flush()
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// printFigureSpread shows the range of each figure's medians over the runs.
func printFigureSpread(w io.Writer, figs []*Figures) {
	var fs []*Figures
	for _, f := range figs {
		if f != nil {
			fs = append(fs, f)
		}
	}
	if len(fs) < 2 {
		return
	}
	fmt.Fprintf(w, "\nspread of the figures over %d runs (min – max of the runs' medians, and (max-min)/min):\n", len(fs))
	tw := newTable(w)
	row := func(name string, get func(*Figures) float64, format string) {
		var v []float64
		for _, f := range fs {
			if x := get(f); x != 0 && !math.IsNaN(x) {
				v = append(v, x)
			}
		}
		if len(v) == 0 {
			return
		}
		lo, hi := slices.Min(v), slices.Max(v)
		fmt.Fprintf(tw, "  %s\t"+format+" – "+format+"\t%.0f%%\t\n", name, lo, hi, 100*(hi-lo)/lo)
	}
	d := func(v []time.Duration) float64 { return float64(median(v)) / 1e3 }
	row("remote io.Reader MB/s", func(f *Figures) float64 { return median(f.TrellisMBs) }, "%.0f")
	row("plain TCP copy MB/s", func(f *Figures) float64 { return median(f.TCPMBs) }, "%.0f")
	row("  ratio", func(f *Figures) float64 { return median(f.TrellisMBs) / median(f.TCPMBs) }, "%.2f×")
	row("direct A→B p50 µs", func(f *Figures) float64 { return d(f.DirectP50) }, "%.1f")
	row("routed A→C via B p50 µs", func(f *Figures) float64 { return d(f.RoutedP50) }, "%.1f")
	row("  ratio", func(f *Figures) float64 { return dratio(median(f.RoutedP50), median(f.DirectP50)) }, "%.2f×")
	row("direct A→B p99 µs", func(f *Figures) float64 { return d(f.DirectP99) }, "%.1f")
	row("routed A→C via B p99 µs", func(f *Figures) float64 { return d(f.RoutedP99) }, "%.1f")
	row("  ratio", func(f *Figures) float64 { return dratio(median(f.RoutedP99), median(f.DirectP99)) }, "%.2f×")
	row("small-call p99 µs, no stream", func(f *Figures) float64 { return d(f.IdleP99) }, "%.0f")
	row("small-call p99 µs, during a stream", func(f *Figures) float64 { return d(f.BusyP99) }, "%.0f")
	row("  ratio", func(f *Figures) float64 { return dratio(median(f.BusyP99), median(f.IdleP99)) }, "%.2f×")
	tw.Flush()
}

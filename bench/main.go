// Command bench measures Trellis side by side with gRPC-Go, net/rpc and a
// hand-written TCP echo, in one run on one machine, and prints one table and
// the ratios against gRPC-Go and against the raw floor, then Trellis's
// stream and routing figures: a remote io.Reader against a plain TCP copy,
// a call routed over 2 hops against a direct one, and small-call p99 with
// and without a large stream on the connection.
//
// bench/ is a Go module of its own, so `go run ./bench` from the repository
// root cannot build it; run it from bench/, or with -C:
//
//	cd bench && go run .                      # everything, about 85 s
//	go run -C bench .                         # the same, from the repository root
//	bench/run.sh                              # the same, from anywhere
//	go run . -systems trellis,raw -payloads small -rounds 1 -phases seq,conc
//	go run . -phases stream,route,p99         # only the stream and routing figures
//	go run . -profile /tmp/prof -systems trellis   # pprof CPU and alloc profiles
//
// Every system serves the same call, Echo(ctx, Req) (Resp, error), from a
// server process of its own; for each system a client process of its own
// starts the server, dials it over 127.0.0.1 and runs the phases this
// process asks for, in rounds that interleave the systems; this process
// merges the rounds and prints the table. See README.md.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	var (
		serve   = flag.String("serve", "", "internal: serve `system` in this process")
		client  = flag.String("client", "", "internal: run the client of `system` in this process")
		addr    = flag.String("addr", "127.0.0.1:0", "with -serve: the address to listen on")
		sysList = flag.String("systems", "trellis,trellis-open,grpc,netrpc,raw,raw-go", "comma-separated `systems` to measure")
		pl      = flag.String("payloads", "small,large", "comma-separated `payloads`: small (16 B name, 3 tags, 64 B payload), large (64 KiB payload)")
		phases  = flag.String("phases", "seq,conc,stream,route,p99", "comma-separated `phases`: seq (one caller, p50/p99), conc (concurrent callers: calls/s, allocs and CPU per call); Trellis figures after the table: stream (remote io.Reader vs plain TCP copy, MB/s), route (one caller, routed A→C via B vs direct A→B), p99 (small-call p99 of the concurrent callers during a stream vs without)")
		rounds  = flag.Int("rounds", 3, "measure each phase in `n` rounds, interleaved across the systems; report the median (rates, latencies) or the total (per-call costs)")
		warmup  = flag.Duration("warmup", 300*time.Millisecond, "warm-up before each phase of each round")
		seqDur  = flag.Duration("seq", 500*time.Millisecond, "length of the sequential phase, per round")
		window  = flag.Duration("window", time.Second, "measured window of the concurrent phase, per round")
		callers = flag.Int("callers", 64, "concurrent callers sharing one client")
		runs    = flag.Int("runs", 1, "repeat the whole measurement `n` times with fresh processes and report the spread")
		profile = flag.String("profile", "", "write pprof CPU and allocation profiles of every client and server process into `dir`")
		jsonOut = flag.Bool("json", false, "print the results as JSON lines instead of a table")

		streamMiB = flag.Int64("stream-mib", 256, "stream phase: `MiB` per stream")
		busyMiB   = flag.Int64("busy-stream-mib", 1024, "p99 phase: `MiB` of the stream that runs under the calls")
		p99Window = flag.Duration("p99-window", 2*time.Second, "p99 phase: measured window without a stream; with one, the window runs from its first bytes to its end, or is cut (with the stream) at this length")
		peerID    = flag.String("peer-id", "", "internal: with -serve trellis -connect: the caller's node ID")
		connect   = flag.String("connect", "", "internal: with -serve trellis: connect onward to `addr` (the relay of the route phase)")

		cpuprofile    = flag.String("cpuprofile", "", "with -serve or -client: write a CPU profile to `file`")
		memprofile    = flag.String("memprofile", "", "with -serve or -client: write an allocation profile to `file`")
		srvCPUProfile = flag.String("server-cpuprofile", "", "with -client: the server's -cpuprofile")
		srvMemProfile = flag.String("server-memprofile", "", "with -client: the server's -memprofile")
	)
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		usage()
		os.Exit(2)
	}
	fig := figureOpts{streamBytes: *streamMiB << 20, busyBytes: *busyMiB << 20, p99Window: *p99Window}
	var err error
	switch {
	case *serve != "":
		err = runServer(serverOpts{name: *serve, addr: *addr, cpuprofile: *cpuprofile, memprofile: *memprofile,
			connect: *connect, peerID: *peerID})
	case *client != "":
		co := clientOpts{
			system: *client, warmup: *warmup, seqDur: *seqDur, window: *window, callers: *callers,
			cpuprofile: *cpuprofile, memprofile: *memprofile,
			srvCPU: *srvCPUProfile, srvMem: *srvMemProfile, fig: fig,
		}
		switch *client {
		case "stream":
			err = runStreamClient(co)
		case "route":
			err = runRouteClient(co)
		default:
			err = runClient(co)
		}
	default:
		seq, conc, figs := hasPhase(*phases)
		err = orchestrate(orchOpts{
			systems: split(*sysList), payloads: split(*pl), seq: seq, conc: conc, figs: figs, fig: fig,
			rounds: max(*rounds, 1), runs: max(*runs, 1), callers: *callers, profile: *profile, json: *jsonOut,
			passArgs: []string{
				"-warmup", warmup.String(), "-seq", seqDur.String(), "-window", window.String(),
				"-callers", fmt.Sprint(*callers), "-stream-mib", fmt.Sprint(*streamMiB),
				"-busy-stream-mib", fmt.Sprint(*busyMiB), "-p99-window", p99Window.String(),
			},
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: cd bench && go run . [flags]
       go run -C bench . [flags]     (from the repository root)
       bench/run.sh [flags]          (from anywhere)

bench/ is a Go module of its own (the main module never depends on gRPC), so
"go run ./bench" from the repository root cannot build it: use one of the above.
With no flags it measures everything (about 85 s): the echo table of Trellis,
gRPC-Go, net/rpc and the raw TCP echoes, then Trellis's stream and routing
figures, and the targets of the benchmark issue. See bench/README.md.

flags:
`)
	flag.PrintDefaults()
}

func hasPhase(s string) (seq, conc bool, figs figurePhases) {
	for _, p := range split(s) {
		switch p {
		case "seq":
			seq = true
		case "conc":
			conc = true
		case "stream":
			figs.stream = true
		case "route":
			figs.route = true
		case "p99":
			figs.p99 = true
		default:
			fmt.Fprintf(os.Stderr, "bench: unknown phase %q\n", p)
			os.Exit(2)
		}
	}
	return seq, conc, figs
}

type orchOpts struct {
	systems, payloads []string
	seq, conc         bool
	figs              figurePhases
	fig               figureOpts
	rounds, runs      int
	callers           int
	profile           string
	json              bool
	passArgs          []string
}

// profileBase is the path prefix of the profiles of client kind in run.
func (o orchOpts) profileBase(kind string, run int) string {
	pre := filepath.Join(o.profile, kind)
	if o.runs > 1 {
		pre += fmt.Sprintf("-run%d", run+1)
	}
	return pre
}

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

// RoundFigures are one round's figures of the concurrent phase.
type RoundFigures struct {
	Round       int
	CallsPerSec float64
	CPUPerCall  float64 // client and server, nanoseconds
}

func orchestrate(o orchOpts) error {
	for _, s := range o.systems {
		if findSystem(s) == nil {
			var names []string
			for _, sys := range systems {
				names = append(names, sys.name)
			}
			return fmt.Errorf("unknown system %q (have %s)", s, strings.Join(names, ", "))
		}
	}
	for _, p := range o.payloads {
		if payloads[p] == nil {
			return fmt.Errorf("unknown payload %q (have small, large)", p)
		}
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	if !o.seq && !o.conc && !o.figs.any() {
		return errors.New("no phase selected")
	}
	start := time.Now()
	var all [][]Result
	var figs []*Figures
	var failed error
	for run := range o.runs {
		var rs []Result
		if o.seq || o.conc {
			var err error
			if rs, err = measureRun(o, run); err != nil && failed == nil {
				failed = err
			}
		}
		all = append(all, rs)
		var f *Figures
		if o.figs.any() {
			var err error
			if f, err = measureFigures(o, run); err != nil && failed == nil {
				failed = err
			}
		}
		figs = append(figs, f)
	}
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		for i, rs := range all {
			for _, r := range rs {
				enc.Encode(r)
			}
			if figs[i] != nil {
				enc.Encode(figs[i])
			}
		}
	} else {
		for i, rs := range all {
			if o.runs > 1 {
				fmt.Printf("== run %d of %d ==\n", i+1, o.runs)
			}
			if len(rs) > 0 {
				printTable(os.Stdout, rs)
				printRatios(os.Stdout, rs)
				printObservability(os.Stdout, rs)
			}
			printFigures(os.Stdout, figs[i])
			printTargets(os.Stdout, rs, figs[i])
			fmt.Println()
		}
		if o.runs > 1 {
			printSpread(os.Stdout, all, figs)
		}
		fmt.Printf("(%s; %d rounds of %s per phase; %d CPUs, %s)\n", time.Since(start).Round(time.Second),
			o.rounds, roundDesc(o), numCPU(), goVersion())
	}
	if o.profile != "" {
		fmt.Fprintf(os.Stderr, "profiles in %s: go tool pprof -top %s\n", o.profile, filepath.Join(o.profile, "SYSTEM-client.cpu.pprof"))
	}
	return failed
}

func roundDesc(o orchOpts) string {
	get := func(flag string) string {
		for i := 0; i+1 < len(o.passArgs); i++ {
			if o.passArgs[i] == flag {
				return o.passArgs[i+1]
			}
		}
		return "?"
	}
	return fmt.Sprintf("%s warm-up + %s (1 caller) or %s (%s callers; p99 phase %s)", get("-warmup"), get("-seq"), get("-window"), get("-callers"), get("-p99-window"))
}

// clientProc is a client process, driven phase by phase.
type clientProc struct {
	system string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *json.Decoder
	err    error
}

func startClientProc(exe string, args []string, system string) (*clientProc, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &clientProc{system: system, cmd: cmd, in: in, out: json.NewDecoder(bufio.NewReader(out))}, nil
}

// run asks the client process for one phase.
func (cp *clientProc) run(phase, payload string) (Measure, error) {
	var m Measure
	err := cp.ask(phase+" "+payload, &m)
	if err == nil && m.Err != "" {
		cp.err = errors.New(m.Err)
	}
	return m, cp.err
}

// ask sends line to the client process and decodes its answer into v (a
// *Measure or an *XMeasure).
func (cp *clientProc) ask(line string, v any) error {
	if cp.err != nil {
		return cp.err
	}
	if _, err := fmt.Fprintf(cp.in, "%s\n", line); err != nil {
		cp.err = err
		return err
	}
	if err := cp.out.Decode(v); err != nil {
		cp.err = fmt.Errorf("client process: %v", err)
		return cp.err
	}
	if x, ok := v.(*XMeasure); ok && x.Err != "" {
		cp.err = errors.New(x.Err)
	}
	return cp.err
}

func (cp *clientProc) close() error {
	cp.in.Close()
	return cp.cmd.Wait()
}

// measureRun starts a client process (and through it a server process) per
// system, runs the rounds, interleaving the systems (in a rotating order)
// so that a disturbance from outside falls on all of them alike, and merges
// the rounds.
func measureRun(o orchOpts, run int) ([]Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var procs []*clientProc
	defer func() {
		for _, cp := range procs {
			cp.close()
		}
	}()
	for _, s := range o.systems {
		args := append([]string{"-client", s}, o.passArgs...)
		if o.profile != "" {
			pre := o.profileBase(s, run)
			args = append(args,
				"-cpuprofile", pre+"-client.cpu.pprof", "-memprofile", pre+"-client.mem.pprof",
				"-server-cpuprofile", pre+"-server.cpu.pprof", "-server-memprofile", pre+"-server.mem.pprof")
		}
		cp, err := startClientProc(exe, args, s)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", s, err)
		}
		procs = append(procs, cp)
	}
	type key struct{ system, payload string }
	got := make(map[key][]Measure)
	var failed error
	var phases []string
	if o.seq {
		phases = append(phases, "seq")
	}
	if o.conc {
		phases = append(phases, "conc")
	}
	for round := range o.rounds {
		for _, pn := range o.payloads {
			for _, ph := range phases {
				for i := range procs {
					cp := procs[(i+round)%len(procs)]
					m, err := cp.run(ph, pn)
					if err != nil {
						if failed == nil {
							failed = fmt.Errorf("%s %s %s: %v", cp.system, pn, ph, err)
						}
						continue
					}
					m.Round = round
					got[key{cp.system, pn}] = append(got[key{cp.system, pn}], m)
					if ph == "conc" {
						fmt.Fprintf(os.Stderr, "run %d round %d: %-7s %-5s %8.0f calls/s %5.2f µs CPU/call\n", run+1, round+1, cp.system, pn,
							float64(m.Calls)/m.Window.Seconds(), float64(m.ClientCPU+m.ServerCPU)/float64(max(m.Calls, 1))/1e3)
					}
				}
			}
		}
	}
	for _, cp := range procs {
		if err := cp.close(); err != nil && failed == nil && cp.err == nil {
			failed = fmt.Errorf("%s: %v", cp.system, err)
		}
	}
	procs = nil
	var rs []Result
	for _, s := range o.systems {
		for _, pn := range o.payloads {
			r := merge(got[key{s, pn}])
			r.System, r.Payload = s, pn
			rs = append(rs, r)
		}
	}
	for i := range rs {
		if len(got[key{rs[i].System, rs[i].Payload}]) == 0 {
			rs[i].Err = "no measurement"
			if failed != nil {
				rs[i].Err = failed.Error()
			}
		}
	}
	return rs, failed
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
			r.RoundRates = append(r.RoundRates, float64(m.Calls)/m.Window.Seconds())
			r.Rounds = append(r.Rounds, RoundFigures{
				Round:       m.Round,
				CallsPerSec: float64(m.Calls) / m.Window.Seconds(),
				CPUPerCall:  float64(m.ClientCPU+m.ServerCPU) / float64(max(m.Calls, 1)),
			})
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

func numCPU() int { return runtime.NumCPU() }

// goVersion names the toolchain and the CPU, for the record.
func goVersion() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return runtime.Version() + ", " + model
}

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
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
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
							m.figures().CallsPerSec, m.figures().CPUPerCall/1e3)
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

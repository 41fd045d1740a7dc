package main

// Client mode (-client SYSTEM): the bench binary starts the system's server
// as a child process, dials it, runs the phases for each payload and prints
// one JSON Measure per phase on stdout, as the orchestrator asks.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/bench/echo"
)

// A payload is one message shape.
type payload struct {
	name    string
	msgName string
	tags    []string
	data    []byte
}

func makePayload(name string, size int) *payload {
	p := &payload{
		name:    name,
		msgName: "bench-name-0016!", // 16 bytes
		tags:    []string{"alpha", "bravo", "charlie"},
		data:    make([]byte, size),
	}
	for i := range p.data {
		p.data[i] = byte(i*7 + i>>8)
	}
	return p
}

var payloads = map[string]*payload{
	"small": makePayload("small", 64),
	"large": makePayload("large", 64<<10),
}

func (p *payload) req(id int64) echo.Req {
	return echo.Req{ID: id, Name: p.msgName, Tags: p.tags, Payload: p.data}
}

// verify checks that resp echoes req field by field.
func verify(req *echo.Req, resp *echo.Resp) error {
	ok := resp.ID == req.ID && resp.Name == req.Name && slices.Equal(resp.Tags, req.Tags) &&
		bytes.Equal(resp.Payload, req.Payload)
	if !ok {
		return fmt.Errorf("response does not echo request %d (got ID %d, name %q, %d tags, %d payload bytes)",
			req.ID, resp.ID, resp.Name, len(resp.Tags), len(resp.Payload))
	}
	return nil
}

// A Measure is what one client process measured in one phase of one
// round: raw counts, merged over the rounds by the orchestrator.
type Measure struct {
	System, Payload, Phase string

	// seq: one caller, calls in sequence.
	SeqCalls int           `json:",omitempty"`
	P50, P99 time.Duration `json:",omitempty"`

	// conc: concurrent callers sharing one client, over Window.
	Calls  int64         `json:",omitempty"`
	Window time.Duration `json:",omitempty"`
	// Deltas over the window, client and server process.
	ClientMallocs, ServerMallocs uint64        `json:",omitempty"`
	ClientCPU, ServerCPU         time.Duration `json:",omitempty"`
	// Read and write system calls (/proc/PID/io syscr, syscw).
	ClientReads, ClientWrites uint64 `json:",omitempty"`
	ServerReads, ServerWrites uint64 `json:",omitempty"`

	Err string `json:",omitempty"`

	// Round is the orchestrator's round the measure was taken in (not
	// sent by the client process).
	Round int `json:"-"`
}

type clientOpts struct {
	system                 string
	warmup, seqDur, window time.Duration
	callers                int
	cpuprofile, memprofile string
	srvCPU, srvMem         string
	fig                    figureOpts // the stream and p99 figures
}

// runClient serves the orchestrator: it starts the server, dials it, then
// runs one phase per line read on stdin ("seq small", "conc large") and
// answers each with a JSON Measure line, until stdin closes.
func runClient(o clientOpts) error {
	s := findSystem(o.system)
	if s == nil {
		return fmt.Errorf("unknown system %q", o.system)
	}
	stopProfiles, err := startProfiles(o.cpuprofile, o.memprofile)
	if err != nil {
		return err
	}
	srv, err := startServerProc(s.name, o.srvCPU, o.srvMem)
	if err != nil {
		return err
	}
	defer srv.close()
	ctx := context.Background()
	cl, err := s.dial(ctx, srv.addr)
	if err != nil {
		return fmt.Errorf("%s: dial: %v", s.name, err)
	}
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	var failed error
	for in.Scan() && failed == nil {
		phase, pn, _ := strings.Cut(in.Text(), " ")
		m := Measure{System: s.name, Payload: pn, Phase: phase}
		p := payloads[pn]
		switch {
		case p == nil:
			failed = fmt.Errorf("unknown payload %q", pn)
		case phase == "seq":
			failed = seqPhase(ctx, cl, p, o, &m)
		case phase == "conc":
			failed = concPhase(ctx, cl, srv, p, o, &m)
		default:
			failed = fmt.Errorf("unknown phase %q", phase)
		}
		if failed != nil {
			m.Err = failed.Error()
		}
		out.Encode(&m)
	}
	cl.Close()
	if err := srv.close(); err != nil && failed == nil {
		failed = fmt.Errorf("%s server: %v", s.name, err)
	}
	if err := stopProfiles(); err != nil && failed == nil {
		failed = err
	}
	return failed
}

// seqPhase: one caller, calls in sequence; latency percentiles.
func seqPhase(ctx context.Context, cl caller, p *payload, o clientOpts, r *Measure) error {
	req := p.req(0)
	call := func(id int64) error {
		req.ID = id
		resp, err := cl.Echo(ctx, &req)
		if err != nil {
			return err
		}
		return verify(&req, &resp)
	}
	id := int64(1)
	for t := time.Now(); time.Since(t) < o.warmup; id++ {
		if err := call(id); err != nil {
			return err
		}
	}
	lat := make([]time.Duration, 0, 1<<18)
	end := time.Now().Add(o.seqDur)
	for ; ; id++ {
		t0 := time.Now()
		if !t0.Before(end) {
			break
		}
		err := call(id)
		lat = append(lat, time.Since(t0))
		if err != nil {
			return err
		}
	}
	slices.Sort(lat)
	r.SeqCalls = len(lat)
	r.P50 = lat[len(lat)/2]
	r.P99 = lat[len(lat)*99/100]
	return nil
}

type snapshot struct {
	t          time.Time
	calls      int64
	cliMallocs uint64
	cliCPU     time.Duration
	srvMallocs uint64
	srvCPU     time.Duration
	io         [4]uint64 // client reads, writes; server reads, writes
}

// concPhase: o.callers callers share cl; after the warm-up, counts calls,
// allocations and CPU time of both processes over a window.
func concPhase(ctx context.Context, cl caller, srv *serverProc, p *payload, o clientOpts, r *Measure) error {
	var (
		stop     atomic.Bool
		count    atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := range o.callers {
		wg.Go(func() {
			req := p.req(0)
			for i := int64(1); !stop.Load(); i++ {
				req.ID = int64(w+1)<<40 | i
				resp, err := cl.Echo(ctx, &req)
				if err == nil {
					err = verify(&req, &resp)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				count.Add(1)
			}
		})
	}
	take := func() (s snapshot, err error) {
		var ms runtime.MemStats
		s.t = time.Now()
		s.calls = count.Load()
		runtime.ReadMemStats(&ms)
		s.cliMallocs = ms.Mallocs
		s.cliCPU = selfCPU()
		if s.io[0], s.io[1], err = procIO(0); err != nil {
			return s, err
		}
		if s.srvCPU, err = srv.cpu(); err != nil {
			return s, err
		}
		if s.io[2], s.io[3], err = procIO(srv.cmd.Process.Pid); err != nil {
			return s, err
		}
		s.srvMallocs, err = srv.mallocs()
		return s, err
	}
	var s0, s1 snapshot
	err := func() error {
		time.Sleep(o.warmup)
		var err error
		if s0, err = take(); err != nil {
			return err
		}
		time.Sleep(o.window)
		s1, err = take()
		return err
	}()
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err != nil {
		return err
	}
	n := s1.calls - s0.calls
	if n <= 0 {
		return fmt.Errorf("no call completed in the window")
	}
	r.Calls = n
	r.Window = s1.t.Sub(s0.t)
	r.ClientMallocs = s1.cliMallocs - s0.cliMallocs
	r.ServerMallocs = s1.srvMallocs - s0.srvMallocs
	r.ClientCPU = s1.cliCPU - s0.cliCPU
	r.ServerCPU = s1.srvCPU - s0.srvCPU
	r.ClientReads, r.ClientWrites = s1.io[0]-s0.io[0], s1.io[1]-s0.io[1]
	r.ServerReads, r.ServerWrites = s1.io[2]-s0.io[2], s1.io[3]-s0.io[3]
	return nil
}

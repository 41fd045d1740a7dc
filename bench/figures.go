package main

// The stream and routing figures (phases stream, route, p99): Trellis only,
// each beside its own baseline, measured after the echo table in the same
// run, in rounds that alternate the two sides of each figure.
//
//   - stream: a Trellis server process returns an io.Reader of -stream-mib
//     MiB (echo.Streamer.Dump, a Pattern) and the client process reads it to
//     the end; the baseline is a plain TCP copy of the same Pattern from a
//     server process of its own (-serve tcpcopy), over a connection kept
//     open, read by the same loop into the same sink (CRC-32C of every byte,
//     checked). MB/s, and client+server CPU per GiB.
//   - route: processes A (the client), B and C, A connected to B and B to C;
//     A's router sends calls for C to B, B's router maps A→A and C→C. One
//     caller, small echo calls, alternately direct A→B and routed A→C via B
//     (so that both see the same machine), p50 and p99 of each.
//   - p99: 64 callers (-callers) make small echo calls on the connection of
//     the stream figure; their p99 while one -busy-stream-mib MiB stream runs
//     on that connection against their p99 with no stream.
//
// Client modes: -client stream (the stream and p99 figures: it starts a
// Trellis server and a tcpcopy server) and -client route (it starts C, then
// B connected to C, and is A). They read one phase per line on stdin
// ("stream trellis", "stream tcp", "hop both", "p99 idle", "p99 stream")
// and answer each with a JSON XMeasure.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/trellisrpc/trellis/bench/echo"
	"github.com/trellisrpc/trellis/nodeid"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// streamBuf is the size of every read and write of the stream figures: the
// reader's buffer on both sides and the TCP copy's writes (the Trellis pump
// reads its source one frame, 256 KiB less an envelope, at a time).
const streamBuf = 256 << 10

// streamWarmup is read once before each measured stream, on either side.
const streamWarmup = 16 << 20

// An XMeasure is what a figure client measured in one phase of one round.
type XMeasure struct {
	Phase, Variant string

	// stream: Bytes read in Elapsed, and the CPU both processes spent.
	Bytes                int64         `json:",omitempty"`
	Elapsed              time.Duration `json:",omitempty"`
	ClientCPU, ServerCPU time.Duration `json:",omitempty"`

	// hop, p99: latency of the calls measured (hop: the direct ones).
	Calls    int           `json:",omitempty"`
	P50, P99 time.Duration `json:",omitempty"`
	// hop: the routed calls, made alternately with the direct ones.
	RoutedCalls          int           `json:",omitempty"`
	RoutedP50, RoutedP99 time.Duration `json:",omitempty"`

	// p99 stream: the stream that ran under the calls, over the window.
	StreamBytes   int64         `json:",omitempty"`
	StreamElapsed time.Duration `json:",omitempty"`
	StreamEnded   bool          `json:",omitempty"` // read to its end (else cut at the window)

	Err string `json:",omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// drain reads r to its end into buf and returns the byte count and their
// CRC-32C: the sink of both sides of the stream figure.
func drain(r io.Reader, buf []byte) (n int64, sum uint32, err error) {
	for {
		k, err := r.Read(buf)
		if k > 0 {
			sum = crc32.Update(sum, castagnoli, buf[:k])
			n += int64(k)
		}
		if err == io.EOF {
			return n, sum, nil
		}
		if err != nil {
			return n, sum, err
		}
	}
}

// patternSum returns the CRC-32C of the first n bytes of the Pattern.
func patternSum(n int64) uint32 {
	_, sum, _ := drain(echo.NewPattern(n), make([]byte, streamBuf))
	return sum
}

// checkStream verifies that n bytes with CRC sum are the Pattern of want bytes.
func checkStream(what string, n int64, sum uint32, want int64) error {
	if n != want {
		return fmt.Errorf("%s: read %d bytes, want %d", what, n, want)
	}
	if s := patternSum(n); s != sum {
		return fmt.Errorf("%s: %d bytes with CRC-32C %08x, want %08x", what, n, sum, s)
	}
	return nil
}

// serveTCPCopy is the server of the stream figure's baseline: on each
// connection, for each 8-byte length N it reads, it writes N bytes of the
// Pattern, streamBuf bytes per write.
func serveTCPCopy(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go tcpCopy(c)
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }, nil
}

func tcpCopy(c net.Conn) {
	defer c.Close()
	buf := make([]byte, streamBuf)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		src := echo.NewPattern(int64(binary.LittleEndian.Uint64(hdr[:])))
		for {
			k, err := src.Read(buf)
			if k > 0 {
				if _, err := c.Write(buf[:k]); err != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
	}
}

// routes is a fixed routing table.
type routes map[trellis.NodeID]trellis.NodeID

func (r routes) NextHop(dst trellis.NodeID) (trellis.NodeID, bool) {
	next, ok := r[dst]
	return next, ok
}

// serveRelay starts B: a Trellis server connected onward to the node at
// connect (C), routing calls for C and for the caller (peerID) straight to
// them. It returns " peer C-ID" for the first line of its output.
func serveRelay(addr, connect, peerID string) (string, func(), string, error) {
	a, err := nodeid.Parse(peerID)
	if err != nil {
		return "", nil, "", fmt.Errorf("-peer-id: %v", err)
	}
	n, err := newTrellisServer(addr)
	if err != nil {
		return "", nil, "", err
	}
	stop := func() { n.Close(context.Background()) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.Connect(ctx, connect)
	if err != nil {
		stop()
		return "", nil, "", err
	}
	n.SetRouter(routes{a: a, c: c})
	return n.Addr().String(), stop, " peer " + c.String(), nil
}

// figureOpts are the sizes and windows of the figures.
type figureOpts struct {
	streamBytes, busyBytes int64
	p99Window              time.Duration
}

// serveLines runs one phase per line of stdin and answers each with a JSON
// XMeasure, until stdin closes or a phase fails.
func serveLines(run func(phase, variant string, m *XMeasure) error) error {
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	var failed error
	for in.Scan() && failed == nil {
		phase, variant, _ := strings.Cut(in.Text(), " ")
		m := XMeasure{Phase: phase, Variant: variant}
		failed = run(phase, variant, &m)
		if failed != nil {
			m.Err = failed.Error()
		}
		out.Encode(&m)
	}
	return failed
}

// streamClient is the client process of the stream and p99 figures.
type streamClient struct {
	o     clientOpts
	srv   *serverProc // the Trellis server
	tcp   *serverProc // the TCP copy server
	files *echo.StreamerProxy
	echo  *echo.EchoerProxy
	conn  net.Conn // to tcp, kept open
	buf   []byte
}

func runStreamClient(o clientOpts) (err error) {
	stopProfiles, err := startProfiles(o.cpuprofile, o.memprofile)
	if err != nil {
		return err
	}
	defer func() {
		if perr := stopProfiles(); err == nil {
			err = perr
		}
	}()
	srv, err := startServerProc("trellis", o.srvCPU, o.srvMem)
	if err != nil {
		return err
	}
	defer srv.close()
	tcp, err := startServerProc("tcpcopy", "", "")
	if err != nil {
		return err
	}
	defer tcp.close()
	ctx := context.Background()
	n, err := trellis.NewNode(trellis.Config{Name: "bench-stream-client"})
	if err != nil {
		return err
	}
	defer n.Close(ctx)
	id, err := n.Connect(ctx, srv.addr)
	if err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", tcp.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	c := &streamClient{o: o, srv: srv, tcp: tcp, files: echo.NewStreamerProxy(n, id),
		echo: echo.NewEchoerProxy(n, id), conn: conn, buf: make([]byte, streamBuf)}
	return serveLines(func(phase, variant string, m *XMeasure) error {
		switch phase + " " + variant {
		case "stream trellis", "stream tcp":
			return c.stream(ctx, variant, m)
		case "p99 idle", "p99 stream":
			return c.p99(ctx, variant == "stream", m)
		}
		return fmt.Errorf("stream client: unknown phase %q", phase+" "+variant)
	})
}

// pull reads a stream of n bytes from the Trellis server or the TCP copy
// server and checks it.
func (c *streamClient) pull(ctx context.Context, variant string, n int64) error {
	var (
		got int64
		sum uint32
		err error
	)
	switch variant {
	case "trellis":
		var r io.Reader
		if r, err = c.files.Dump(ctx, n); err != nil {
			return err
		}
		got, sum, err = drain(r, c.buf)
		r.(io.Closer).Close()
	case "tcp":
		var hdr [8]byte
		binary.LittleEndian.PutUint64(hdr[:], uint64(n))
		if _, err = c.conn.Write(hdr[:]); err != nil {
			return err
		}
		got, sum, err = drain(io.LimitReader(c.conn, n), c.buf)
	default:
		return fmt.Errorf("unknown stream %q", variant)
	}
	if err != nil {
		return fmt.Errorf("%s stream: %v after %d bytes", variant, err, got)
	}
	if got != n {
		return fmt.Errorf("%s stream: %d bytes, want %d", variant, got, n)
	}
	if sum != c.o.fig.sum(n) {
		return fmt.Errorf("%s stream: CRC-32C %08x, want %08x", variant, sum, c.o.fig.sum(n))
	}
	return nil
}

// sums caches patternSum by length.
var sums sync.Map

func (f figureOpts) sum(n int64) uint32 {
	if v, ok := sums.Load(n); ok {
		return v.(uint32)
	}
	s := patternSum(n)
	sums.Store(n, s)
	return s
}

// stream measures one stream of o.fig.streamBytes, after a short one.
func (c *streamClient) stream(ctx context.Context, variant string, m *XMeasure) error {
	n := c.o.fig.streamBytes
	c.o.fig.sum(n) // (computed before the clock starts)
	if err := c.pull(ctx, variant, streamWarmup); err != nil {
		return err
	}
	srv := c.srv
	if variant == "tcp" {
		srv = c.tcp
	}
	s0, err := srv.selfCPU()
	if err != nil {
		return err
	}
	c0, t0 := selfCPU(), time.Now()
	if err := c.pull(ctx, variant, n); err != nil {
		return err
	}
	m.Elapsed, m.ClientCPU = time.Since(t0), selfCPU()-c0
	s1, err := srv.selfCPU()
	if err != nil {
		return err
	}
	m.Bytes, m.ServerCPU = n, s1-s0
	return nil
}

// span is one call: when it started (since the phase began) and how long it took.
type span struct{ start, dur time.Duration }

// p99 runs o.callers callers making small echo calls; after the warm-up it
// takes their latencies over o.fig.p99Window, or, if busy, from the moment
// a stream of o.fig.busyBytes starts delivering until it ends or the window
// has passed (then the stream is closed).
func (c *streamClient) p99(ctx context.Context, busy bool, m *XMeasure) error {
	p := payloads["small"]
	base := time.Now()
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	spans := make([][]span, c.o.callers)
	for w := range c.o.callers {
		wg.Go(func() {
			req := p.req(0)
			mine := make([]span, 0, 1<<12)
			defer func() { spans[w] = mine }()
			for i := int64(1); !stop.Load(); i++ {
				req.ID = int64(w+1)<<40 | i
				t0 := time.Now()
				resp, err := c.echo.Echo(ctx, req)
				d := time.Since(t0)
				if err == nil {
					err = verify(&req, &resp)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				mine = append(mine, span{t0.Sub(base), d})
			}
		})
	}
	time.Sleep(c.o.warmup)
	var from, to time.Time
	var serr error
	if !busy {
		from = time.Now()
		time.Sleep(c.o.fig.p99Window)
		to = time.Now()
	} else {
		from, to, serr = c.busyStream(ctx, m)
	}
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if serr != nil {
		return serr
	}
	var lat []time.Duration
	lo, hi := from.Sub(base), to.Sub(base)
	for _, ss := range spans {
		for _, s := range ss {
			if s.start >= lo && s.start+s.dur <= hi {
				lat = append(lat, s.dur)
			}
		}
	}
	if len(lat) < 100 {
		return fmt.Errorf("p99: only %d calls in the window", len(lat))
	}
	slices.Sort(lat)
	m.Calls, m.P50, m.P99 = len(lat), lat[len(lat)/2], lat[len(lat)*99/100]
	return nil
}

// busyStream runs a stream of o.fig.busyBytes under the callers and returns
// the window over which it delivered: from its first bytes to its end, or
// to o.fig.p99Window later, when it is closed. The reading goroutine
// itself closes it (a Close concurrent with a Read is not relied on).
func (c *streamClient) busyStream(ctx context.Context, m *XMeasure) (from, to time.Time, err error) {
	n := c.o.fig.busyBytes
	r, err := c.files.Dump(ctx, n)
	if err != nil {
		return from, to, err
	}
	var got int64
	var sum uint32
	for {
		k, rerr := r.Read(c.buf)
		now := time.Now()
		if k > 0 {
			if got == 0 {
				from = now
			}
			sum = crc32.Update(sum, castagnoli, c.buf[:k])
			got += int64(k)
		}
		if rerr == io.EOF {
			to, m.StreamEnded = now, true
			break
		}
		if rerr != nil {
			r.(io.Closer).Close()
			return from, to, fmt.Errorf("stream under the calls: %v after %d bytes", rerr, got)
		}
		if got > 0 && now.Sub(from) >= c.o.fig.p99Window {
			to = now
			break
		}
	}
	r.(io.Closer).Close()
	if got == 0 {
		return from, to, errors.New("stream under the calls: no data")
	}
	want := n
	if !m.StreamEnded {
		want = got
	}
	m.StreamBytes, m.StreamElapsed = got, to.Sub(from)
	return from, to, checkStream("stream under the calls", got, sum, want)
}

// runRouteClient is A of the routing figure.
func runRouteClient(o clientOpts) (err error) {
	stopProfiles, err := startProfiles(o.cpuprofile, o.memprofile)
	if err != nil {
		return err
	}
	defer func() {
		if perr := stopProfiles(); err == nil {
			err = perr
		}
	}()
	aID := nodeid.New()
	c, err := startServerProc("trellis", "", "")
	if err != nil {
		return err
	}
	defer c.close()
	b, err := startServerProc("trellis", o.srvCPU, o.srvMem, "-connect", c.addr, "-peer-id", aID.String())
	if err != nil {
		return err
	}
	defer b.close()
	cID, err := nodeid.Parse(b.peer)
	if err != nil {
		return fmt.Errorf("relay: %v", err)
	}
	ctx := context.Background()
	a, err := trellis.NewNode(trellis.Config{Name: "A", ID: aID})
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	bID, err := a.Connect(ctx, b.addr)
	if err != nil {
		return err
	}
	a.SetRouter(routes{bID: bID, cID: bID})
	direct := &trellisClient{n: a, p: echo.NewEchoerProxy(a, bID)}
	routed := &trellisClient{n: a, p: echo.NewEchoerProxy(a, cID)}
	return serveLines(func(phase, variant string, m *XMeasure) error {
		if phase+" "+variant != "hop both" {
			return fmt.Errorf("route client: unknown phase %q", phase+" "+variant)
		}
		d, r, err := hopPhase(ctx, direct, routed, o)
		if err != nil {
			return err
		}
		if a.Connected(cID) || len(a.Peers()) != 1 {
			return fmt.Errorf("A is connected to %v: the routed calls may not have gone through B", a.Peers())
		}
		m.Calls, m.P50, m.P99 = len(d), d[len(d)/2], d[len(d)*99/100]
		m.RoutedCalls, m.RoutedP50, m.RoutedP99 = len(r), r[len(r)/2], r[len(r)*99/100]
		return nil
	})
}

// hopPhase: one caller, small calls alternately on direct and on routed,
// for o.warmup, then for 2×o.seqDur measured; the sorted latencies of each.
func hopPhase(ctx context.Context, direct, routed caller, o clientOpts) (d, r []time.Duration, err error) {
	req := payloads["small"].req(0)
	call := func(cl caller, id int64) (time.Duration, error) {
		req.ID = id
		t0 := time.Now()
		resp, err := cl.Echo(ctx, &req)
		lat := time.Since(t0)
		if err == nil {
			err = verify(&req, &resp)
		}
		return lat, err
	}
	id := int64(1)
	for t := time.Now(); time.Since(t) < o.warmup; id += 2 {
		if _, err := call(direct, id); err != nil {
			return nil, nil, err
		}
		if _, err := call(routed, id+1); err != nil {
			return nil, nil, err
		}
	}
	d, r = make([]time.Duration, 0, 1<<16), make([]time.Duration, 0, 1<<16)
	for end := time.Now().Add(2 * o.seqDur); time.Now().Before(end); id += 2 {
		ld, err := call(direct, id)
		if err != nil {
			return nil, nil, fmt.Errorf("direct call: %v", err)
		}
		lr, err := call(routed, id+1)
		if err != nil {
			return nil, nil, fmt.Errorf("routed call: %v", err)
		}
		d, r = append(d, ld), append(r, lr)
	}
	slices.Sort(d)
	slices.Sort(r)
	return d, r, nil
}

// ---- the orchestrator's side ----

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

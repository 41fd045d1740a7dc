package main

// The stream and p99 figures, on the client side.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/bench/echo"
	trellis "github.com/trellisrpc/trellis/runtime"
)

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
	n, err := trellis.NewNode(trellis.Config{Name: "bench-stream-client", Keyring: benchKeyring})
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

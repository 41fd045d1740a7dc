//go:build unix

package memberlist_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/memberlist"
	"github.com/trellisrpc/trellis/nodeid"
)

// TestFiguresLoopback measures both membership backends with their default
// timing (the built-in one: heartbeats every 200 ms to every member, unicast
// seeds; memberlist: the LAN preset) on real UDP and TCP sockets on
// loopback, all N members in this process, at growing N. For each backend
// and N it prints, per member: the bytes and packets sent per second in a
// steady cluster (memberlist: UDP and TCP), the CPU (the process's CPU time
// over the window, divided by N), then the time until every member lists a
// member that joins (p50 and max over the members), and the time until every
// member declares a crashed member failed (p50, p99, max); and each per-member
// cost as a ratio to the smallest N measured in the same run. It runs only
// with TRELLIS_FIGURES=1 (see FIGURES.md):
//
//	TRELLIS_FIGURES=1 go test -run TestFiguresLoopback -v -timeout 60m ./membership/memberlist
//
// TRELLIS_FIGURES_SIZES (default 8,32,64,128) and TRELLIS_FIGURES_BACKENDS
// (default builtin,memberlist) choose what runs; TRELLIS_FIGURES_WINDOW (a
// duration, default 10s) is the steady window.
func TestFiguresLoopback(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") != "1" {
		t.Skip("set TRELLIS_FIGURES=1 to measure")
	}
	sizes := figureSizes(t, []int{8, 32, 64, 128}, 3)
	backends := []string{"builtin", "memberlist"}
	if v := os.Getenv("TRELLIS_FIGURES_BACKENDS"); v != "" {
		backends = strings.Split(v, ",")
	}
	window := figureDuration(t, "TRELLIS_FIGURES_WINDOW", 10*time.Second)
	for _, b := range backends {
		var base *loopFigures
		t.Run(b, func(t *testing.T) {
			for _, n := range sizes {
				t.Run(fmt.Sprint(n), func(t *testing.T) {
					f := measureLoopback(t, b, n, window)
					if base == nil {
						base = &f
					}
					t.Logf("%s N=%d: per member sent %.0f B/s (%.1f pkt/s), CPU %.5f core; join seen by all in p50 %v max %v; crash detected p50 %v p99 %v max %v (%d observers); ÷ N=%d: bytes %.2f×, CPU %.2f×",
						b, n, f.bytes, f.packets, f.cpu, f.joinP50, f.joinMax, f.detP50, f.detP99, f.detMax, f.observers,
						base.n, f.bytes/base.bytes, f.cpu/base.cpu)
					fmt.Printf("FIGURE | %s | %d | %.0f | %.1f | %.5f | %v / %v | %v / %v / %v | %.2f× | %.2f× |\n",
						b, n, f.bytes, f.packets, f.cpu, f.joinP50, f.joinMax, f.detP50, f.detP99, f.detMax,
						f.bytes/base.bytes, f.cpu/base.cpu)
				})
			}
		})
	}
}

// loopFigures are one backend's figures at one size.
type loopFigures struct {
	n                      int
	bytes, packets, cpu    float64 // per member per second
	joinP50, joinMax       time.Duration
	detP50, detP99, detMax time.Duration
	observers              int
}

// loopMember is a member under measurement.
type loopMember struct {
	d    membership.Discovery
	sent func() (bytes, packets uint64)
}

func measureLoopback(t *testing.T, backend string, n int, window time.Duration) loopFigures {
	key := []byte("0123456789abcdef0123456789abcdef")
	var seed string      // the first member's address: the built-in backend's seed
	var started []string // the members' addresses: memberlist's seeds
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	newMember := func(i int) loopMember {
		id := nodeid.ID(0x10000 + i)
		name, addr := fmt.Sprintf("n%d", i), fmt.Sprintf("10.1.%d.%d:7001", i/256, i%256)
		var seeds []string
		if seed != "" {
			seeds = []string{seed}
		}
		switch backend {
		case "builtin":
			bind := "127.0.0.1:0"
			if seed == "" { // the first member listens on the seed address
				pc, err := net.ListenPacket("udp", bind)
				if err != nil {
					t.Fatal(err)
				}
				bind = pc.LocalAddr().String()
				pc.Close()
				seeds = []string{bind}
			}
			nd, err := membership.New(membership.Config{ID: id, Name: name, Addr: addr, Keys: [][]byte{key},
				DisableMulticast: true, BindAddr: bind, Seeds: seeds})
			if err != nil {
				t.Fatal(err)
			}
			return loopMember{nd, func() (uint64, uint64) { s := nd.Stats(); return s.BytesSent, s.PacketsSent }}
		case "memberlist":
			tr, err := newCountingTransport()
			if err != nil {
				t.Fatal(err)
			}
			// Each joins through a member chosen at random, as a cluster
			// whose members know a few seeds each would: through one seed,
			// every join's state exchange lands on the same member.
			if len(started) > 0 {
				seeds = []string{started[rng.IntN(len(started))]}
			}
			nd, err := memberlist.New(memberlist.Config{ID: id, Name: name, Addr: addr, Keys: [][]byte{key},
				Transport: tr, Seeds: seeds, Preset: memberlist.LAN})
			if err != nil {
				t.Fatal(err)
			}
			return loopMember{nd, tr.sent}
		}
		t.Fatalf("unknown backend %q (builtin, memberlist)", backend)
		return loopMember{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// n−1 members, then one more that joins under measurement.
	ms := make([]loopMember, 0, n)
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, m := range ms {
			wg.Add(1)
			go func() { defer wg.Done(); m.d.Close() }()
		}
		wg.Wait()
	})
	for i := range n - 1 {
		m := newMember(i)
		if err := m.d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
		started = append(started, m.d.Local().PacketAddr.String())
		if i == 0 {
			seed = started[0]
		}
	}
	waitAll := func(want int) {
		since, report := time.Now(), time.Now()
		for {
			all := true
			for _, m := range ms {
				if len(m.d.Members()) != want {
					all = false
					break
				}
			}
			if all {
				return
			}
			if ctx.Err() != nil || time.Since(report) > 30*time.Second {
				report = time.Now()
				lo, hi := n, 0
				for _, m := range ms {
					k := len(m.d.Members())
					lo, hi = min(lo, k), max(hi, k)
				}
				if ctx.Err() != nil {
					t.Fatalf("%s N=%d: the members do not all list %d members: they list %d to %d", backend, n, want, lo, hi)
				}
				t.Logf("%s N=%d: after %v the members list %d to %d members of %d", backend, n, time.Since(since).Round(time.Second), lo, hi, want)
			}
			// Polling N member lists (each a copy): no single event says
			// "all"; less often as N grows.
			time.Sleep(100*time.Millisecond + time.Duration(n)*time.Millisecond)
		}
	}
	waitAll(n - 1)

	// The join: every member's Joined event for the newcomer, and the
	// newcomer's for every member.
	joiner := newMember(n - 1)
	subs := make([]*membership.Subscription, len(ms))
	for i, m := range ms {
		subs[i] = m.d.Subscribe(4 * n)
	}
	jsub := joiner.d.Subscribe(4 * n)
	start := time.Now()
	if err := joiner.d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ms = append(ms, joiner)
	jctx, jcancel := context.WithTimeout(ctx, 3*time.Minute)
	seen := awaitEvent(jctx, subs, membership.Joined, joiner.d.Local().ID, start)
	jcancel()
	for got := map[nodeid.ID]bool{}; len(got) < n-1; {
		e, err := jsub.Next(ctx) // ctx: the newcomer must list everyone before the steady window
		if err != nil {
			t.Fatalf("%s N=%d: the newcomer lists %d of %d members: %v", backend, n, len(got), n-1, err)
		}
		if e.Kind == membership.Joined && !e.Member.Local {
			got[e.Member.ID] = true
			if len(got) == n-1 {
				seen = append(seen, e.Time.Sub(start))
			}
		}
	}
	jsub.Close()
	for _, s := range subs {
		s.Close()
	}
	if len(seen) == 0 {
		t.Fatalf("%s N=%d: the join was seen by none of %d members within 3 minutes", backend, n, n)
	}
	if len(seen) != n {
		t.Errorf("%s N=%d: the join was seen by %d of %d members within 3 minutes", backend, n, len(seen), n)
	}
	slices.Sort(seen)
	f := loopFigures{n: n, joinP50: seen[len(seen)/2].Round(time.Millisecond), joinMax: seen[len(seen)-1].Round(time.Millisecond)}
	waitAll(n)

	// The steady window.
	time.Sleep(2 * time.Second)
	sum := func() (b, p uint64) {
		for _, m := range ms {
			mb, mp := m.sent()
			b, p = b+mb, p+mp
		}
		return b, p
	}
	b0, p0 := sum()
	cpu0, t0 := cpuTime(), time.Now()
	time.Sleep(window)
	b1, p1 := sum()
	cpu, secs := cpuTime()-cpu0, time.Since(t0).Seconds()
	f.bytes = float64(b1-b0) / float64(n) / secs
	f.packets = float64(p1-p0) / float64(n) / secs
	f.cpu = cpu.Seconds() / secs / float64(n)

	// The crash: a member in the middle of the join order closes without a
	// word; every other member declares it failed.
	victim := n / 2
	subs = subs[:0]
	for i, m := range ms {
		if i != victim {
			subs = append(subs, m.d.Subscribe(4*n))
		}
	}
	vid := ms[victim].d.Local().ID
	start = time.Now()
	ms[victim].d.Close()
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Minute)
	det := awaitEvent(dctx, subs, membership.Failed, vid, start)
	dcancel()
	for _, s := range subs {
		s.Close()
	}
	if len(det) == 0 {
		t.Fatalf("%s N=%d: the crash was detected by none of %d members within 3 minutes", backend, n, n-1)
	}
	if len(det) != n-1 {
		t.Errorf("%s N=%d: the crash was detected by %d of %d members within 3 minutes", backend, n, len(det), n-1)
	}
	slices.Sort(det)
	f.observers = len(det)
	f.detP50 = det[len(det)/2].Round(time.Millisecond)
	f.detP99 = det[int(math.Ceil(float64(len(det))*0.99))-1].Round(time.Millisecond)
	f.detMax = det[len(det)-1].Round(time.Millisecond)
	return f
}

// awaitEvent waits on every subscription for an event of kind about id and
// returns how long after start each came (the event's own time); a
// subscription that sees none before ctx ends is left out.
func awaitEvent(ctx context.Context, subs []*membership.Subscription, kind membership.EventKind, id nodeid.ID, start time.Time) []time.Duration {
	var mu sync.Mutex
	var out []time.Duration
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				e, err := s.Next(ctx)
				if err != nil {
					return
				}
				if e.Kind == kind && e.Member.ID == id {
					mu.Lock()
					out = append(out, e.Time.Sub(start))
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// countingTransport is memberlist's own UDP and TCP transport on a free
// loopback port, counting the bytes and packets it sends: UDP packets, and
// the bytes written on every stream it dials or accepts.
type countingTransport struct {
	*ml.NetTransport
	streams        chan net.Conn
	done           chan struct{} // closed when shutting down
	stopped        chan struct{} // closed once the NetTransport is shut down
	wg             sync.WaitGroup
	bytes, packets atomic.Uint64
}

func newCountingTransport() (*countingTransport, error) {
	nt, err := ml.NewNetTransport(&ml.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0,
		Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		return nil, err
	}
	t := &countingTransport{NetTransport: nt, streams: make(chan net.Conn), done: make(chan struct{}), stopped: make(chan struct{})}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			// Once shutting down, streams still accepted are closed: the
			// NetTransport's listener waits for each to be taken.
			select {
			case c := <-nt.StreamCh():
				select {
				case t.streams <- &countingConn{Conn: c, t: t}:
				case <-t.done:
					c.Close()
				}
			case <-t.stopped:
				return
			}
		}
	}()
	return t, nil
}

func (t *countingTransport) sent() (bytes, packets uint64) { return t.bytes.Load(), t.packets.Load() }

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.bytes.Add(uint64(len(b)))
	t.packets.Add(1)
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a ml.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, t: t}, nil
}

func (t *countingTransport) DialAddressTimeout(a ml.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) Shutdown() error {
	close(t.done)
	err := t.NetTransport.Shutdown()
	close(t.stopped)
	t.wg.Wait()
	return err
}

// countingConn counts what is written on a stream.
type countingConn struct {
	net.Conn
	t *countingTransport
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.t.bytes.Add(uint64(n))
	return n, err
}

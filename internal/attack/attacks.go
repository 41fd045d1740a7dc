package attack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/internal/attack/targetsvc"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/wire"
	"github.com/trellisrpc/trellis/transport"
)

// Target describes the node under attack and what the attacker knows.
type Target struct {
	// Addr and ID are the target's RPC address and node ID.
	Addr string
	ID   nodeid.ID
	// Label is the cluster label of RPC connections and of membership.
	Label string
	// MemberAddr is the target's membership (UDP) address.
	MemberAddr netip.AddrPort
	// Key is the cluster key, which the attacker holds as a member.
	Key []byte
	// Victim is a legitimate member: its ID, and that of the node it runs in
	// membership; the target has exported a Counter to it.
	Victim nodeid.ID
	// Transport configures the attacker's handshakes as a member.
	Transport transport.Config
	// NewNode returns a runtime node of the attacker as a member.
	NewNode func(name string) (*runtime.Node, error)
}

// An Attack runs against a target until ctx is done and returns a one-line
// account of what the target did.
type Attack struct {
	Name string
	Run  func(ctx context.Context, t *Target) (string, error)
}

// All returns the attacks of issue 10, in order, then those found since.
func All() []Attack {
	return []Attack{
		{"handshake-flood", HandshakeFlood},
		{"fragments", Fragments},
		{"no-read", NoRead},
		{"amplify", Amplify},
		{"routed-ref", RoutedRef},
		{"release-1M", ReleaseMillion},
		{"forged-heartbeat", ForgedHeartbeat},
		{"oversized", Oversized},
		{"conn-flood", ConnFlood},
		{"big-then-idle", BigThenIdle},
		{"relay-flood", RelayFlood},
	}
}

// Method IDs of the target's service and of the runtime's own.
var (
	methodEcho, methodBlob, methodStrings = method(targetsvc.TargetService, "Echo"),
		method(targetsvc.TargetService, "Blob"), method(targetsvc.TargetService, "Strings")
	methodCounterAdd = method(targetsvc.CounterService, "Add")
	methodRelease    = codegen.MethodID("github.com/trellisrpc/trellis/runtime.refs", "Release",
		"func(context.Context, []refCount) error")
)

func method(s *codegen.ServiceDesc, name string) uint64 {
	for _, m := range s.Methods {
		if m.Name == name {
			return m.ID
		}
	}
	panic("attack: no method " + name)
}

// call returns the frames of one call: a request of the given envelope and
// CBOR arguments, in fragments of at most maxFramePayload.
func call(id uint64, r request, args []byte) []byte {
	msg := append(appendRequest(nil, r), args...)
	var b []byte
	for len(msg) > maxFramePayload {
		b = appendFrame(b, kindRequest, flagMore, id, msg[:maxFramePayload])
		msg = msg[maxFramePayload:]
	}
	return appendFrame(b, kindRequest, 0, id, msg)
}

// closeOnDone closes c when ctx ends, unblocking its reads and writes.
func closeOnDone(ctx context.Context, c *Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.Close() })
}

// HandshakeFlood opens connections as fast as 8 workers can, half with a
// handshake recorded from a member, half with a made-up hello, and on each
// sends an Echo call: without the key, no call may be answered.
func HandshakeFlood(ctx context.Context, t *Target) (string, error) {
	c, recorded, err := DialMember(ctx, t.Addr, t.Transport)
	if err != nil {
		return "", fmt.Errorf("recording a member's handshake: %w", err)
	}
	c.Close()
	var tries, answered [2]atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				kind := (w + i) % 2
				probe := fmt.Sprintf("unauthenticated-%d-%d", w, i)
				var hs []byte
				if kind == 0 {
					hs = append([]byte(nil), recorded...)
				} else {
					hs = appendHello(nil, t.Label, nodeid.New())
				}
				hs = append(hs, call(1, request{method: methodEcho},
					wire.AppendString(wire.AppendArrayHeader(nil, 1), probe))...)
				tries[kind].Add(1)
				c, err := DialRaw(ctx, t.Addr, hs)
				if err != nil {
					continue
				}
				c.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				buf := make([]byte, 4096)
				var got []byte
				for {
					n, err := c.nc.Read(buf)
					got = append(got, buf[:n]...)
					if bytes.Contains(got, []byte(probe)) {
						answered[kind].Add(1)
						break
					}
					if err != nil || len(got) > 1<<16 {
						break
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	return fmt.Sprintf("%d replayed handshakes: %d calls answered; %d made-up hellos: %d calls answered",
		tries[0].Load(), answered[0].Load(), tries[1].Load(), answered[1].Load()), nil
}

// Fragments opens 6 member connections, each sending 256 KiB fragments of 64
// calls that never complete, up to 160 MiB a connection.
func Fragments(ctx context.Context, t *Target) (string, error) {
	const conns, calls, perConn = 6, 64, 160 << 20
	var sent, closed atomic.Int64
	var wg sync.WaitGroup
	frag := appendFrame(nil, kindRequest, flagMore, 0, make([]byte, maxFramePayload))
	for range conns {
		c, _, err := DialMember(ctx, t.Addr, t.Transport)
		if err != nil {
			return "", err
		}
		stop := closeOnDone(ctx, c)
		wg.Add(2)
		go func() { // answers pings, notices the end
			defer wg.Done()
			for {
				if _, err := c.readFrame(); err != nil {
					if ctx.Err() == nil {
						closed.Add(1)
					}
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer stop()
			b := bytes.Clone(frag)
			for n := 0; n < perConn && ctx.Err() == nil; n += maxFramePayload {
				binary.BigEndian.PutUint64(b[8:16], uint64(n/maxFramePayload%calls+1))
				if err := c.write(b); err != nil {
					return
				}
				sent.Add(maxFramePayload)
			}
			<-ctx.Done()
		}()
	}
	wg.Wait()
	return fmt.Sprintf("%d connections sent %d MiB of fragments that never complete; %d closed by the target",
		conns, sent.Load()>>20, closed.Load()), nil
}

// NoRead sends requests for 1 MiB replies on one member connection, 1,500 at
// once and then one every 10 ms, and never reads.
func NoRead(ctx context.Context, t *Target) (string, error) {
	c, _, err := DialMember(ctx, t.Addr, t.Transport)
	if err != nil {
		return "", err
	}
	defer closeOnDone(ctx, c)()
	defer c.Close()
	args := wire.AppendInt(wire.AppendArrayHeader(nil, 1), 1<<20)
	n := 0
	start := time.Now()
	var werr error
	for ; ctx.Err() == nil; n++ {
		if werr = c.write(call(uint64(n+1), request{method: methodBlob}, args)); werr != nil {
			break
		}
		if n >= 1500 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	how := "the connection stayed open"
	if ctx.Err() == nil && werr != nil {
		how = fmt.Sprintf("the target closed the connection after %v", time.Since(start).Round(time.Millisecond))
	}
	return fmt.Sprintf("%d requests for 1 MiB replies, none read; %s", n, how), nil
}

// Amplify sends 16 MiB messages of [][]string holding 16 million empty
// strings, one after the other, waiting for each reply.
func Amplify(ctx context.Context, t *Target) (string, error) {
	c, _, err := DialMember(ctx, t.Addr, t.Transport)
	if err != nil {
		return "", err
	}
	defer closeOnDone(ctx, c)()
	defer c.Close()
	const outer, inner = 4096, 4096
	args := wire.AppendArrayHeader(nil, 1)
	args = wire.AppendArrayHeader(args, outer)
	row := wire.AppendArrayHeader(nil, inner)
	row = append(row, bytes.Repeat([]byte{0x60}, inner)...) // "" × inner
	for range outer {
		args = append(args, row...)
	}
	msgs := 0
	var results []string
	for id := uint64(1); ctx.Err() == nil && msgs < 3; id++ {
		start := time.Now()
		if err := c.write(call(id, request{method: methodStrings}, args)); err != nil {
			results = append(results, "connection closed")
			break
		}
		msgs++
		f, err := c.readFrame()
		switch {
		case err != nil:
			results = append(results, fmt.Sprintf("closed after %v", time.Since(start).Round(time.Millisecond)))
		case isErrorResponse(f.payload):
			results = append(results, fmt.Sprintf("refused in %v", time.Since(start).Round(time.Millisecond)))
		default:
			results = append(results, fmt.Sprintf("decoded in %v", time.Since(start).Round(time.Millisecond)))
		}
		if err != nil {
			break
		}
	}
	<-ctx.Done()
	return fmt.Sprintf("%d messages of %d MiB (16M empty strings): %v", msgs, len(args)>>20, results), nil
}

// RoutedRef sends routed calls of Counter.Add that name the victim as their
// source and guess the object IDs the target exported (1 to 4096): each
// answered call used a reference that was the victim's.
func RoutedRef(ctx context.Context, t *Target) (string, error) {
	c, _, err := DialMember(ctx, t.Addr, t.Transport)
	if err != nil {
		return "", err
	}
	defer closeOnDone(ctx, c)()
	defer c.Close()
	var ok, refused atomic.Int64
	done := make(chan error, 1)
	go func() {
		for {
			f, err := c.readFrame()
			if err != nil {
				done <- err
				return
			}
			if f.kind != kindResponse {
				continue
			}
			if isErrorResponse(f.payload) {
				refused.Add(1)
			} else {
				ok.Add(1)
			}
		}
	}()
	args := wire.AppendInt(wire.AppendArrayHeader(nil, 1), 1)
	sent := 0
	for obj := uint64(1); obj <= 4096 && ctx.Err() == nil; obj++ {
		r := request{routed: true, dst: t.ID, src: t.Victim, ttl: 8, object: obj, method: methodCounterAdd}
		if err := c.write(call(obj, r, args)); err != nil {
			break
		}
		sent++
	}
	closed := ""
	select {
	case <-ctx.Done():
	case err := <-done:
		if ctx.Err() == nil {
			closed = fmt.Sprintf("; connection closed (%v)", err)
		}
	}
	return fmt.Sprintf("%d routed calls naming the victim: %d answered (used its references), %d refused%s",
		sent, ok.Load(), refused.Load(), closed), nil
}

// ReleaseMillion sends releases of 1,000,000 bogus entries, one after the
// other, timing each reply.
func ReleaseMillion(ctx context.Context, t *Target) (string, error) {
	c, _, err := DialMember(ctx, t.Addr, t.Transport)
	if err != nil {
		return "", err
	}
	defer closeOnDone(ctx, c)()
	defer c.Close()
	const entries = 1_000_000
	args := wire.AppendArrayHeader(nil, 1)
	args = wire.AppendArrayHeader(args, entries)
	for i := range entries {
		args = wire.AppendArrayHeader(args, 2)
		args = wire.AppendUint(args, uint64(1<<40+i))
		args = wire.AppendUint(args, 1)
	}
	var results []string
	for id := uint64(1); ctx.Err() == nil && len(results) < 5; id++ {
		start := time.Now()
		if err := c.write(call(id, request{method: methodRelease}, args)); err != nil {
			results = append(results, "connection closed")
			break
		}
		f, err := c.readFrame()
		d := time.Since(start).Round(time.Millisecond)
		if err != nil {
			results = append(results, fmt.Sprintf("closed after %v", d))
			break
		}
		if isErrorResponse(f.payload) {
			results = append(results, fmt.Sprintf("refused in %v", d))
		} else {
			results = append(results, fmt.Sprintf("applied in %v", d))
		}
	}
	<-ctx.Done()
	return fmt.Sprintf("releases of %d entries (%d KiB): %v", entries, len(args)>>10, results), nil
}

// ForgedHeartbeat sends the target membership heartbeats signed with the key
// that claim the victim's ID, every 100 ms: one with incarnation 2^64−1 and a
// join time an hour old, one with a plausible next incarnation.
func ForgedHeartbeat(ctx context.Context, t *Target) (string, error) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", err
	}
	defer uc.Close()
	n := 0
	for seq := uint64(1 << 32); ctx.Err() == nil; seq += 2 {
		now := time.Now()
		for _, h := range []heartbeat{
			{label: t.Label, from: t.Victim, inc: math.MaxUint64, seq: seq, start: now.Add(-time.Hour), name: "impostor", addr: "evil:1"},
			{label: t.Label, from: t.Victim, inc: uint64(now.UnixNano()), seq: seq + 1, start: now, name: "impostor", addr: "evil:1"},
		} {
			if _, err := uc.WriteToUDPAddrPort(signedHeartbeat(h, t.Key), t.MemberAddr); err == nil {
				n++
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Sprintf("%d forged heartbeats (incarnation 2^64-1, and the next one)", n), nil
}

// Oversized calls, as a member node, Put with an argument over the message
// cap and Blob for a reply over it, each with a 2 s deadline, and reports
// how each failed and how long it took.
func Oversized(ctx context.Context, t *Target) (string, error) {
	n, err := t.NewNode("oversized")
	if err != nil {
		return "", err
	}
	defer n.Close(context.Background())
	id, err := n.Connect(ctx, t.Addr)
	if err != nil {
		return "", err
	}
	p := targetsvc.NewTargetProxy(n, id)
	big := make([]byte, 65<<20)
	_, _ = rand.Read(big[:1024])
	try := func(f func(ctx context.Context) error) string {
		// Each call gets its 2 s even if the attack's time is nearly up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := f(cctx)
		d := time.Since(start).Round(time.Millisecond)
		switch {
		case err == nil:
			return fmt.Sprintf("succeeded in %v", d)
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, runtime.ErrDeadlineExceeded):
			return fmt.Sprintf("no answer until the deadline (%v)", d)
		}
		return fmt.Sprintf("%q in %v", err.Error(), d)
	}
	arg := try(func(ctx context.Context) error { _, err := p.Put(ctx, big); return err })
	reply := try(func(ctx context.Context) error { _, err := p.Blob(ctx, 65<<20); return err })
	<-ctx.Done()
	return fmt.Sprintf("65 MiB argument: %s; 65 MiB reply: %s", arg, reply), nil
}

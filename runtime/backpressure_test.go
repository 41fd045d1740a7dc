package runtime

import (
	"context"
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

// silentPeer is a member's connection whose handshake the transport ran but
// which nothing reads: the test writes frames on it by hand.
type silentPeer struct {
	conn *transport.Conn // never started: nothing reads
	nc   net.Conn
}

// dialSilent connects to n as node self and returns the connection unread.
func dialSilent(t *testing.T, n *Node, self NodeID) *silentPeer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var nc net.Conn
	cfg := transport.Config{Self: self, Keyring: testKeyring, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		nc = c
		return c, err
	}}
	c, err := transport.Dial(ctx, n.Addr().String(), cfg, n.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Abort(nil) })
	return &silentPeer{conn: c, nc: nc}
}

// appendCall appends a request frame for method with the CBOR of args.
func appendCall(b []byte, id, method uint64, args any) []byte {
	body, err := cbor.Marshal(args)
	if err != nil {
		panic(err)
	}
	payload := append(appendRequest(nil, &request{method: method}), body...)
	var hdr [transport.HeaderSize]byte
	binary.BigEndian.PutUint32(hdr[0:4], uint32(len(payload)))
	hdr[4] = byte(kindRequest)
	binary.BigEndian.PutUint64(hdr[8:16], id)
	return append(append(b, hdr[:]...), payload...)
}

// serverPeer returns the server's side of its connection with node id.
func serverPeer(t *testing.T, n *Node, id NodeID) *peer {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n.mu.RLock()
		p := n.peers[id]
		n.mu.RUnlock()
		if p != nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s has no connection with %s", n.cfg.Name, id)
		}
		time.Sleep(time.Millisecond) // polling the table: no event to await
	}
}

// TestNoReadPeerBackpressure: a peer that sends many requests for large
// replies and reads none gets only a bounded number of them served (the
// node stops reading it), the memory held for it stays within the node's
// budget and is all given back when it goes, and a second peer's calls are
// answered meanwhile.
func TestNoReadPeerBackpressure(t *testing.T) {
	const (
		budget    = 8 << 20
		replySize = 64 << 10
		requests  = 1000 // 62 MiB of replies if all were built
	)
	server, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring, MaxPeerMemory: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close(context.Background())
	var built atomic.Int64
	growing := &codegen.ServiceDesc{Name: "test.Grow", Methods: []*codegen.MethodDesc{{
		Name: "Grow", ID: 1,
		Handler: func(ctx context.Context, impl any, call codegen.ServerCall) error {
			if a, _ := impl.(*atomic.Int64); a != nil {
				a.Add(1)
			}
			return growDesc.Methods[0].Handler(ctx, impl, call)
		},
	}}}
	if err := server.Register(growing, &built); err != nil {
		t.Fatal(err)
	}
	b := server.tcfg.Budget

	// The well-behaved peer calls on throughout.
	client, err := NewNode(Config{Name: "client", Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := client.Connect(ctx, server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	legit := newClient(client, id, growing)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		callErr   error
		peakUsed  int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			start := time.Now()
			var res growArgs
			err := legit.do(ctx, growing.Methods[0], &growArgs{S: "ok"}, &res)
			mu.Lock()
			latencies = append(latencies, time.Since(start))
			if err != nil && callErr == nil {
				callErr = err
			}
			peakUsed = max(peakUsed, b.Used())
			mu.Unlock()
		}
	}()
	calls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(latencies)
	}

	// The hostile peer asks for 1,000 large replies at once and reads none.
	hostile := dialSilent(t, server, NodeID(666))
	var frames []byte
	for i := range requests {
		frames = appendCall(frames, uint64(i+1), 1, growArgs{N: replySize})
	}
	hostile.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := hostile.nc.Write(frames); err != nil {
		t.Fatalf("writing the requests: %v", err)
	}
	hp := serverPeer(t, server, NodeID(666))

	// Wait until the server stops reading the hostile peer, then let the
	// legitimate peer make 50 more calls.
	deadline := time.Now().Add(10 * time.Second)
	for !hp.conn.Paused() {
		if time.Now().After(deadline) {
			t.Fatalf("the server never stopped reading the peer that reads nothing; %d replies built of %d", built.Load(), requests)
		}
		time.Sleep(time.Millisecond) // polling a state: no event to await
	}
	for before := calls(); calls() < before+50; {
		if time.Now().After(deadline) {
			t.Fatalf("the legitimate peer made %d calls in 10 s", calls()-before)
		}
		time.Sleep(time.Millisecond)
	}
	n := built.Load()
	// Bounded by what the peer may owe (half the budget), what the sockets
	// hold, and the calls served aside.
	if max := int64(budget/2/replySize + 4<<20/replySize + maxAside + 64); n > max {
		t.Errorf("%d of %d replies built for a peer that reads nothing, want at most %d", n, requests, max)
	}
	if used := b.Used(); used > budget {
		t.Errorf("the node's budget holds %d bytes, over its limit of %d", used, budget)
	}

	// The hostile peer goes: everything held for it is given back.
	hostile.nc.Close()
	for b.Used() > 1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held 10 s after the peer that reads nothing closed", b.Used())
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if callErr != nil {
		t.Errorf("a legitimate call failed: %v", callErr)
	}
	if peakUsed > budget {
		t.Errorf("the node's budget held %d bytes at a time, over its limit of %d", peakUsed, budget)
	}
	slices.Sort(latencies)
	median, worst := latencies[len(latencies)/2], latencies[len(latencies)-1]
	t.Logf("%d of %d replies built; %d legitimate calls, median %v, slowest %v; budget peak %d of %d",
		n, requests, len(latencies), median, latencies[max(0, len(latencies)-5):], peakUsed, budget)
	// Generous, for a loaded 2-core machine running the race detector.
	if median > 200*time.Millisecond || worst > 5*time.Second {
		t.Errorf("legitimate calls took %v (median), %v (max) while another peer read nothing", median, worst)
	}
}

// TestClosedConnectionCallsCancelled: when the node closes a connection,
// the calls of that peer in progress are cancelled at once, and none of
// the requests it had sent and the node had not yet started is started.
func TestClosedConnectionCallsCancelled(t *testing.T) {
	server, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close(context.Background())
	var started, cancelled atomic.Int64
	allCancelled := make(chan struct{})
	var closing atomic.Bool
	blocking := &codegen.ServiceDesc{Name: "test.Block", Methods: []*codegen.MethodDesc{{
		Name: "Block", ID: 1,
		Handler: func(ctx context.Context, impl any, call codegen.ServerCall) error {
			started.Add(1)
			<-ctx.Done()
			if cancelled.Add(1) == started.Load() && closing.Load() {
				select {
				case allCancelled <- struct{}{}:
				default:
				}
			}
			return ctx.Err()
		},
	}}}
	if err := server.Register(blocking, struct{}{}); err != nil {
		t.Fatal(err)
	}
	hostile := dialSilent(t, server, NodeID(667))
	var frames []byte
	for i := range 1000 {
		frames = appendCall(frames, uint64(i+1), 1, growArgs{})
	}
	if _, err := hostile.nc.Write(frames); err != nil {
		t.Fatal(err)
	}
	hp := serverPeer(t, server, NodeID(667))
	deadline := time.Now().Add(10 * time.Second)
	for started.Load() < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls started in 10 s", started.Load())
		}
		time.Sleep(time.Millisecond) // polling a count: no event to await
	}
	closing.Store(true)
	hp.conn.Abort(nil)
	atAbort := started.Load()
	select {
	case <-allCancelled:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d calls cancelled 10 s after their connection closed", cancelled.Load(), started.Load())
	}
	// One more call may have been starting as the connection closed.
	if after := started.Load(); after > atAbort+1 {
		t.Errorf("%d calls started after their connection closed (%d before)", after-atAbort, atAbort)
	}
}

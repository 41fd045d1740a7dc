package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/bench/echo"
	"github.com/trellisrpc/trellis/nodeid"
	trellis "github.com/trellisrpc/trellis/runtime"
)

func TestPattern(t *testing.T) {
	// Odd read sizes give the same bytes as one big read.
	const n = 3*4096 + 123
	whole, err := io.ReadAll(io.LimitReader(echo.NewPattern(n), n+1))
	if err != nil || len(whole) != n {
		t.Fatalf("%d bytes, %v", len(whole), err)
	}
	for i, b := range whole {
		if b != byte((i%4096)*7) {
			t.Fatalf("byte %d = %d", i, b)
		}
	}
	p, buf, off := echo.NewPattern(n), make([]byte, 1000), 0
	for {
		k, err := p.Read(buf[:1+off%999])
		for j := range k {
			if buf[j] != whole[off+j] {
				t.Fatalf("byte %d differs", off+j)
			}
		}
		off += k
		if err == io.EOF {
			break
		}
	}
	if off != n {
		t.Fatalf("read %d bytes, want %d", off, n)
	}
}

// TestStreamFigure pulls a Trellis stream and a TCP copy in process, as the
// stream client does.
func TestStreamFigure(t *testing.T) {
	ctx := context.Background()
	srv, err := newTrellisServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	tcpAddr, stop, err := serveTCPCopy("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	n, err := trellis.NewNode(trellis.Config{Name: "client", Keyring: benchKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(ctx)
	id, err := n.Connect(ctx, srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &streamClient{files: echo.NewStreamerProxy(n, id), echo: echo.NewEchoerProxy(n, id), conn: conn,
		buf: make([]byte, streamBuf), o: clientOpts{callers: 8, warmup: 50 * time.Millisecond,
			fig: figureOpts{streamBytes: 8 << 20, busyBytes: 64 << 20, p99Window: 200 * time.Millisecond}}}
	for _, v := range []string{"trellis", "tcp", "trellis", "tcp"} {
		for _, size := range []int64{0, 1, 5<<20 + 7} {
			if err := c.pull(ctx, v, size); err != nil {
				t.Fatalf("%s, %d bytes: %v", v, size, err)
			}
		}
	}
	// A corrupted byte is caught.
	if err := checkStream("test", 3, 0, 3); err == nil {
		t.Fatal("checkStream accepted a wrong CRC")
	}
	for _, busy := range []bool{false, true} {
		var m XMeasure
		if err := c.p99(ctx, busy, &m); err != nil {
			t.Fatalf("p99 (stream %v): %v", busy, err)
		}
		if m.Calls == 0 || m.P99 < m.P50 || busy != (m.StreamBytes > 0) {
			t.Fatalf("p99 (stream %v): %+v", busy, m)
		}
	}
}

// TestRouteFigure routes calls A→C via the relay B, in process.
func TestRouteFigure(t *testing.T) {
	ctx := context.Background()
	cNode, err := newTrellisServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cNode.Close(ctx)
	aID := nodeid.New()
	bAddr, stop, info, err := serveRelay("127.0.0.1:0", cNode.Addr().String(), aID.String())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if info != " peer "+cNode.ID().String() {
		t.Fatalf("relay says %q", info)
	}
	a, err := trellis.NewNode(trellis.Config{Name: "A", ID: aID, Keyring: benchKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	bID, err := a.Connect(ctx, bAddr)
	if err != nil {
		t.Fatal(err)
	}
	routed := &trellisClient{n: a, p: echo.NewEchoerProxy(a, cNode.ID())}
	req := payloads["small"].req(7)
	if _, err := routed.Echo(ctx, &req); err == nil {
		t.Fatal("a call to C without a router succeeded")
	}
	a.SetRouter(routes{bID: bID, cNode.ID(): bID})
	direct := &trellisClient{n: a, p: echo.NewEchoerProxy(a, bID)}
	d, r, err := hopPhase(ctx, direct, routed, clientOpts{warmup: 10 * time.Millisecond, seqDur: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(d) == 0 || len(d) != len(r) || a.Connected(cNode.ID()) {
		t.Fatalf("%d direct, %d routed calls; A connected to C: %v", len(d), len(r), a.Connected(cNode.ID()))
	}
}

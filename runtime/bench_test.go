package runtime_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// serverEnv makes the test binary a server process: see TestMain.
const serverEnv = "TRELLIS_TEST_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(serverEnv) == "1" {
		os.Exit(serveUntilStdinCloses())
	}
	if addr := os.Getenv(holderEnv); addr != "" {
		os.Exit(runHolder(addr))
	}
	os.Exit(m.Run())
}

// serveUntilStdinCloses serves Kitchen and Control, prints the address on
// stdout, and exits when its parent closes stdin (or dies).
func serveUntilStdinCloses() int {
	n, err := trellis.NewNode(trellis.Config{Name: "subprocess", Addr: "127.0.0.1:0", Keyring: testKeyring})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	impl := testsvc.NewImpl()
	testsvc.RegisterKitchen(n, impl)
	testsvc.RegisterControl(n, impl)
	fmt.Println(n.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.Close(ctx)
	return 0
}

// startServerProcess runs the test binary as a server in its own process, so
// that allocations measured in this process are the client's alone.
func startServerProcess(tb testing.TB) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("server process: %v", err)
	}
	return strings.TrimSpace(line)
}

func smallReq() testsvc.Req {
	return testsvc.Req{
		ID:      42,
		Name:    "sixteen-byte-nm!",
		Tags:    []string{"alpha", "beta", "gamma"},
		Payload: make([]byte, 64),
	}
}

// BenchmarkSmallCall measures one small call over loopback, client and
// server in this process: allocs/op counts both sides.
func BenchmarkSmallCall(b *testing.B) {
	p := newPair(b)
	ctx := context.Background()
	req := smallReq()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.kitchen.EchoReq(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallCallParallel runs small calls from many goroutines over one
// connection.
func BenchmarkSmallCallParallel(b *testing.B) {
	p := newPair(b)
	ctx := context.Background()
	req := smallReq()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.kitchen.EchoReq(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSmallCallSeparateServer runs the server in another process:
// allocs/op is the client's alone, and server-allocs/op is read from the
// server's own counters.
func BenchmarkSmallCallSeparateServer(b *testing.B) {
	addr := startServerProcess(b)
	client := newNode(b, "client", "")
	ctx := context.Background()
	id, err := client.Connect(ctx, addr)
	if err != nil {
		b.Fatal(err)
	}
	k := testsvc.NewKitchenProxy(client, id)
	ctl := testsvc.NewControlProxy(client, id)
	req := smallReq()
	for range 100 { // warm up pools on both sides
		if _, err := k.EchoReq(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	before, err := ctl.Mallocs(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	calls := 0
	for b.Loop() {
		if _, err := k.EchoReq(ctx, req); err != nil {
			b.Fatal(err)
		}
		calls++
	}
	after, err := ctl.Mallocs(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(after-before)/float64(calls), "server-allocs/op")
}

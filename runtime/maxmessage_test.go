package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// newCapNode starts a node with the given MaxMessageSize (0: the default),
// closed when the test ends.
func newCapNode(t testing.TB, name, addr string, maxMessage int) *trellis.Node {
	t.Helper()
	n, err := trellis.NewNode(trellis.Config{Name: name, Addr: addr, Keyring: testKeyring, MaxMessageSize: maxMessage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

// newCapFiles connects a client node with cap clientMax to a server node
// with cap serverMax serving testsvc.Files.
func newCapFiles(t testing.TB, serverMax, clientMax int) *filesPair {
	t.Helper()
	server := newCapNode(t, "server", "127.0.0.1:0", serverMax)
	client := newCapNode(t, "client", "", clientMax)
	impl := &testsvc.FilesImpl{}
	if err := testsvc.RegisterFiles(server, impl); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := client.Connect(ctx, server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return &filesPair{server: server, client: client, impl: impl, files: testsvc.NewFilesProxy(client, id)}
}

// readAllBounded reads r to its end, or fails the test after 10 s (closing
// r, which ends a Read in progress).
func readAllBounded(t *testing.T, r io.Reader) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(r)
		done <- result{b, err}
	}()
	select {
	case res := <-done:
		return res.b, res.err
	case <-time.After(10 * time.Second):
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		<-done
		t.Fatal("the stream did not end within 10 s")
		return nil, nil
	}
}

// Streams work whatever the nodes' MaxMessageSize, including caps below a
// stream's chunk and initial window, and caps that differ between the
// ends: the sender cuts its chunks to fit both. They used to hang for
// ever (caps under ~256 KiB) or drop the connection (a receiver with a
// smaller cap than the sender's).
func TestStreamsWithinMessageCaps(t *testing.T) {
	caps := []struct {
		name           string
		server, client int
	}{
		{"both 64 KiB", 64 << 10, 64 << 10},
		{"both 128 KiB", 128 << 10, 128 << 10},
		{"server default, client 64 KiB", 0, 64 << 10},
		{"server 64 KiB, client default", 64 << 10, 0},
		{"both 4 KiB", 4 << 10, 4 << 10},
	}
	sizes := []int64{1, 4000, 70_000, 300_000, 1 << 20}
	for _, c := range caps {
		t.Run(c.name, func(t *testing.T) {
			p := newCapFiles(t, c.server, c.client)
			for _, size := range sizes {
				t.Run(fmt.Sprintf("result of %d bytes", size), func(t *testing.T) {
					ctx := testCtx(t)
					r, err := p.files.Dump(ctx, size, 5, 0)
					if err != nil {
						t.Fatal(err)
					}
					got, err := readAllBounded(t, r)
					if err != nil || int64(len(got)) != size {
						t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, size)
					}
					want, _ := io.ReadAll(testsvc.NewSource(size, 5, nil))
					if !bytes.Equal(got, want) {
						t.Fatal("the bytes read differ from the source's")
					}
				})
				t.Run(fmt.Sprintf("argument of %d bytes", size), func(t *testing.T) {
					ctx := testCtx(t)
					n, _, err := p.files.Load(ctx, testsvc.NewSource(size, 6, nil))
					if err != nil || n != size {
						t.Fatalf("Load = %d, %v; want %d", n, err, size)
					}
				})
			}
			if !p.client.Connected(p.server.ID()) {
				t.Error("the connection was closed")
			}
			waitFor(t, "the stream tables to empty", func() bool {
				a, b := p.server.StreamStats()
				c, d := p.client.StreamStats()
				return a+b+c+d == 0
			})
		})
	}
}

// capChain starts nodes with the given caps connected in a line, each
// serving Kitchen and Files (impls), with routes along the line.
func capChain(t testing.TB, caps ...int) (ns []*trellis.Node, impls []*testsvc.FilesImpl) {
	t.Helper()
	ns = make([]*trellis.Node, len(caps))
	impls = make([]*testsvc.FilesImpl, len(caps))
	for i, c := range caps {
		ns[i] = newCapNode(t, fmt.Sprintf("n%d", i), "127.0.0.1:0", c)
		impls[i] = &testsvc.FilesImpl{}
		testsvc.RegisterKitchen(ns[i], testsvc.NewImpl())
		testsvc.RegisterFiles(ns[i], impls[i])
	}
	connectLine(t, ns)
	return ns, impls
}

// Through a relay whose next link has a smaller cap than the first: a
// call that does not fit fails with ErrTooLarge (it failed with
// ErrUnreachable), and a stream whose chunks do not fit is reset at the
// relay: the receiver's Read fails with ErrStreamReset saying where, and
// the sender closes its source (the receiver waited for ever, and the
// sender held its source).
func TestRelayOverSmallerCap(t *testing.T) {
	const small = 64 << 10
	ns, impls := capChain(t, 0, 0, small)
	ctx := testCtx(t)
	k := testsvc.NewKitchenProxy(ns[0], ns[2].ID())
	_, _, err := k.Echo(ctx, strings.Repeat("a", 80_000), 1)
	if !errors.Is(err, trellis.ErrTooLarge) {
		t.Fatalf("relayed call over the cap: %v, want ErrTooLarge", err)
	}
	if want := "node n1 relaying to"; !strings.Contains(err.Error(), want) {
		t.Errorf("the error does not say %q: %v", want, err)
	}
	const why = "node n1 could not relay chunk 0 of stream"
	// A result stream: the reader sees the reset.
	r, err := testsvc.NewFilesProxy(ns[2], ns[0].ID()).Dump(ctx, 1<<20, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAllBounded(t, r); !errors.Is(err, trellis.ErrStreamReset) || !strings.Contains(err.Error(), why) {
		t.Fatalf("a relayed stream over the cap: %v, want ErrStreamReset saying %q", err, why)
	}
	waitFor(t, "the sender to close its source", func() bool { return impls[0].SourcesClosed.Load() == 1 })
	// An argument stream: the server's Load fails with the reset's text.
	var closed atomic.Int64
	_, _, err = testsvc.NewFilesProxy(ns[0], ns[2].ID()).Load(ctx, testsvc.NewSource(1<<20, 1, &closed))
	if err == nil || !strings.Contains(err.Error(), why) {
		t.Fatalf("a relayed argument stream over the cap: %v, want an error saying %q", err, why)
	}
	waitFor(t, "the sender to close its source", func() bool { return closed.Load() == 1 })
	// What fits still passes, and streams from the smaller cap pass.
	if s, _, err := k.Echo(ctx, "small", 1); err != nil || s != "small" {
		t.Fatalf("a small relayed call: %q, %v", s, err)
	}
	r, err = testsvc.NewFilesProxy(ns[0], ns[2].ID()).Dump(ctx, 1<<20, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAllBounded(t, r); err != nil || len(got) != 1<<20 {
		t.Fatalf("a relayed stream from the smaller cap: %d bytes, %v", len(got), err)
	}
	waitFor(t, "the stream tables to empty", func() bool {
		total := 0
		for _, n := range ns {
			a, b := n.StreamStats()
			total += a + b
		}
		return total == 0
	})
}

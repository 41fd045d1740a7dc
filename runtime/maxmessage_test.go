package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
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


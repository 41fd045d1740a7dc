package runtime_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

type filesPair struct {
	server, client *trellis.Node
	impl           *testsvc.FilesImpl
	files          *testsvc.FilesProxy
}

func newFilesPair(t testing.TB) *filesPair {
	t.Helper()
	server := newNode(t, "server", "127.0.0.1:0")
	client := newNode(t, "client", "")
	impl := &testsvc.FilesImpl{}
	if err := testsvc.RegisterFiles(server, impl); err != nil {
		t.Fatal(err)
	}
	id, err := client.Connect(context.Background(), server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return &filesPair{server: server, client: client, impl: impl, files: testsvc.NewFilesProxy(client, id)}
}

// bigStream is the size of the byte-exact transfer: 1 GiB, less under the
// race detector or -short.
func bigStream() int64 {
	if raceEnabled || testing.Short() {
		return 64 << 20
	}
	return 1 << 30
}

func sum(r io.Reader) (int64, []byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, h.Sum(nil), err
}

func TestStreamResultByteExact(t *testing.T) {
	p := newFilesPair(t)
	ctx := testCtx(t)
	size := bigStream()
	r, err := p.files.Dump(ctx, size, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, got, err := sum(r)
	if err != nil || n != size {
		t.Fatalf("read %d bytes, %v; want %d", n, err, size)
	}
	_, want, _ := sum(testsvc.NewSource(size, 7, nil))
	if !bytes.Equal(got, want) {
		t.Fatal("checksum mismatch")
	}
	t.Logf("%d MiB in %v (%.0f MiB/s)", size>>20, time.Since(start).Round(time.Millisecond), float64(size>>20)/time.Since(start).Seconds())
	waitFor(t, "the source to be closed", func() bool { return p.impl.SourcesClosed.Load() == 1 })
	waitFor(t, "the stream tables to empty", func() bool {
		a, b := p.server.StreamStats()
		c, d := p.client.StreamStats()
		return a+b+c+d == 0
	})
}

func TestStreamArgument(t *testing.T) {
	p := newFilesPair(t)
	ctx := testCtx(t)
	const size = 10<<20 + 123
	var closed atomic.Int64
	n, got, err := p.files.Load(ctx, testsvc.NewSource(size, 3, &closed))
	if err != nil || n != size {
		t.Fatalf("Load = %d, %v; want %d", n, err, size)
	}
	_, want, _ := sum(testsvc.NewSource(size, 3, nil))
	if !bytes.Equal(got, want) {
		t.Fatal("checksum mismatch")
	}
	waitFor(t, "the source to be closed", func() bool { return closed.Load() == 1 })
	// An empty stream.
	if n, _, err := p.files.Load(ctx, strings.NewReader("")); err != nil || n != 0 {
		t.Fatalf("empty stream: %d, %v", n, err)
	}
}

func TestStreamRemoteErrorArrivesAsReadError(t *testing.T) {
	p := newFilesPair(t)
	r, err := p.files.Dump(testCtx(t), 1<<20, 1, 100<<10)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if n != 100<<10 || err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("read %d bytes then %v; want 102400 then the source's error", n, err)
	}
}

func TestStreamCancelStopsTheSender(t *testing.T) {
	p := newFilesPair(t)
	r, err := p.files.Dump(testCtx(t), 1<<30, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	read := 0
	for read < 1<<20 {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		read += n
	}
	r.(io.Closer).Close()
	waitFor(t, "the sender to close its source", func() bool { return p.impl.SourcesClosed.Load() == 1 })
	src := p.impl.Last.Load()
	// The sender may have read at most what the window allowed beyond what
	// was consumed, plus one chunk.
	if over := src.Reads.Load() - int64(read); over > 8<<20+64<<10 {
		t.Errorf("the sender read %d bytes beyond what the reader consumed", over)
	}
	if _, err := r.Read(buf); !errors.Is(err, trellis.ErrStreamReset) {
		t.Errorf("Read after Close: %v, want ErrStreamReset", err)
	}
}

func TestSlowReaderBoundsMemory(t *testing.T) {
	p := newFilesPair(t)
	r, err := p.files.Dump(testCtx(t), 1<<30, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.(io.Closer).Close()
	buf := make([]byte, 4<<10)
	read := int64(0)
	maxAhead := int64(0)
	for i := 0; i < 200; i++ {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		read += int64(n)
		time.Sleep(time.Millisecond) // a slow consumer (not synchronisation)
		maxAhead = max(maxAhead, p.impl.Last.Load().Reads.Load()-read)
	}
	t.Logf("slow reader: sender at most %d KiB ahead of the reader", maxAhead>>10)
	if maxAhead > 256<<10+64<<10 {
		t.Errorf("the sender ran %d bytes ahead of a slow reader, beyond the initial window", maxAhead)
	}
}

// waitFor polls cond for at most 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter: no event to await
	}
}

// BenchmarkStreamThroughput pulls a remote io.Reader over loopback.
func BenchmarkStreamThroughput(b *testing.B) {
	p := newFilesPair(b)
	const size = 256 << 20
	b.SetBytes(size)
	buf := make([]byte, 256<<10)
	for b.Loop() {
		r, err := p.files.Dump(context.Background(), size, -1, 0)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.CopyBuffer(io.Discard, r, buf); err != nil || n != size {
			b.Fatalf("%d, %v", n, err)
		}
	}
}

// BenchmarkTCPCopy is the floor for BenchmarkStreamThroughput: the same
// bytes copied over a plain loopback TCP connection.
func BenchmarkTCPCopy(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	const size = 256 << 20
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.CopyBuffer(c, io.LimitReader(testsvc.NewSource(size, -1, nil), size), make([]byte, 64<<10))
			}()
		}
	}()
	b.SetBytes(size)
	buf := make([]byte, 256<<10)
	for b.Loop() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.CopyBuffer(io.Discard, c, buf); err != nil || n != size {
			b.Fatalf("%d, %v", n, err)
		}
		c.Close()
	}
}

// p99 of small calls made by 64 goroutines for d, on p's connection.
func smallCallP99(b *testing.B, p *filesPair, k *testsvc.KitchenProxy, d time.Duration) time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(stop) {
				start := time.Now()
				if _, _, err := k.Echo(context.Background(), "x", 1); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	return lat[len(lat)*99/100]
}

// BenchmarkSmallCallsDuringStream compares the p99 latency of small calls
// from 64 goroutines with and without a large stream on the same
// connection (reported as p99-idle-µs, p99-stream-µs and p99-ratio).
func BenchmarkSmallCallsDuringStream(b *testing.B) {
	p := newFilesPair(b)
	server := p.server
	impl := testsvc.NewImpl()
	testsvc.RegisterKitchen(server, impl)
	k := testsvc.NewKitchenProxy(p.client, server.ID())
	for b.Loop() {
		idle := smallCallP99(b, p, k, time.Second)
		r, err := p.files.Dump(context.Background(), 1<<40, -1, 0)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(io.Discard, r)
		}()
		busy := smallCallP99(b, p, k, time.Second)
		r.(io.Closer).Close()
		<-done
		b.ReportMetric(float64(idle.Microseconds()), "p99-idle-µs")
		b.ReportMetric(float64(busy.Microseconds()), "p99-stream-µs")
		b.ReportMetric(float64(busy)/float64(idle), "p99-ratio")
	}
}

func TestStreamCloseUnblocksConcurrentRead(t *testing.T) {
	p := newFilesPair(t)
	// A stream that fails after 1 MiB would end by itself; this one is
	// endless, and the reader blocks once it is starved by a closed window.
	r, err := p.files.Dump(testCtx(t), 1<<40, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		var err error
		for i := 0; err == nil; i++ {
			_, err = r.Read(buf)
			if i == 0 {
				close(started)
			}
		}
		done <- err
	}()
	<-started
	r.(io.Closer).Close()
	select {
	case err := <-done:
		if !errors.Is(err, trellis.ErrStreamReset) {
			t.Fatalf("Read after a concurrent Close: %v, want ErrStreamReset", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a Read blocked in another goroutine did not return after Close")
	}
	waitFor(t, "the sender to close its source", func() bool { return p.impl.SourcesClosed.Load() == 1 })
}

// aheadWhileReading reads total bytes of r as fast as it can and returns
// how far, at most, the sender's source ran ahead of what was read.
func aheadWhileReading(t *testing.T, r io.Reader, src func() int64, total int64) int64 {
	t.Helper()
	buf := make([]byte, 256<<10)
	read, ahead := int64(0), int64(0)
	for read < total {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		read += int64(n)
		ahead = max(ahead, src()-read)
	}
	return ahead
}

// The window grows toward what the connection can carry while nothing
// else uses it, and is held small while calls wait for replies on it.
// (How far the sender runs ahead is bounded by the window, and also by the
// sockets' buffers: while nothing else uses the connection, a chunk waits
// in the socket for the reader to come back rather than in a buffer, so
// that the larger window is checked itself.)
func TestStreamWindowFollowsTheConnection(t *testing.T) {
	total := int64(256 << 20)
	if raceEnabled || testing.Short() {
		total = 64 << 20
	}
	const busyBound = 512<<10 + 256<<10 // the busy window, plus a chunk being read
	tests := []struct {
		name       string
		busy       bool
		wantWindow int   // the window must have grown beyond this
		wantBelow  int64 // the sender must never have run further ahead than this
	}{
		{name: "idle", busy: false, wantWindow: 512 << 10, wantBelow: 4<<20 + 256<<10},
		{name: "a call waits", busy: true, wantWindow: 0, wantBelow: busyBound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newFilesPair(t)
			if tt.busy {
				impl := testsvc.NewImpl()
				if err := testsvc.RegisterKitchen(p.server, impl); err != nil {
					t.Fatal(err)
				}
				kitchen := testsvc.NewKitchenProxy(p.client, p.server.ID())
				ctx, cancel := context.WithCancel(testCtx(t))
				done := make(chan error, 1)
				go func() { done <- kitchen.Block(ctx, "window") }()
				defer func() { cancel(); <-done }()
				if err := impl.Started(testCtx(t), "window"); err != nil {
					t.Fatal(err)
				}
			}
			r, err := p.files.Dump(testCtx(t), 1<<40, -1, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.(io.Closer).Close()
			ahead := aheadWhileReading(t, r, func() int64 { return p.impl.Last.Load().Reads.Load() }, total)
			window := trellis.StreamWindow(r)
			t.Logf("the sender ran at most %d KiB ahead; window %d KiB", ahead>>10, window>>10)
			if ahead > tt.wantBelow {
				t.Errorf("the sender ran at most %d bytes ahead of the reader; want at most %d", ahead, tt.wantBelow)
			}
			if window <= tt.wantWindow {
				t.Errorf("the window is %d bytes; want more than %d", window, tt.wantWindow)
			}
		})
	}
}

// readAllWith reads r to its end with reads of size bytes and returns the
// count and SHA-256 of what it read.
func readAllWith(r io.Reader, size int) (int64, []byte, error) {
	h := sha256.New()
	buf := make([]byte, size)
	var n int64
	for {
		k, err := r.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			return n, h.Sum(nil), nil
		}
		if err != nil {
			return n, nil, err
		}
	}
}

// Whatever the size of the reads, the bytes arrive exact: chunks read
// straight into a waiting Read's buffer (a buffer larger than the chunk,
// smaller, about the same), queued ones, and a mix of both.
func TestStreamByteExactAnyReadSize(t *testing.T) {
	p := newFilesPair(t)
	const size = 16<<20 + 12345
	_, want, _ := sum(testsvc.NewSource(size, 11, nil))
	for _, readSize := range []int{1000, 4 << 10, 4<<10 + 1, 64 << 10, 252 << 10, 256 << 10, 1 << 20} {
		t.Run(fmt.Sprint(readSize), func(t *testing.T) {
			before := trellis.DirectFills(p.client)
			r, err := p.files.Dump(testCtx(t), size, 11, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.(io.Closer).Close()
			n, got, err := readAllWith(r, readSize)
			if err != nil || n != size {
				t.Fatalf("read %d bytes, %v; want %d", n, err, int64(size))
			}
			if !bytes.Equal(got, want) {
				t.Fatal("checksum mismatch")
			}
			t.Logf("%d chunks read straight into the Read's buffer", trellis.DirectFills(p.client)-before)
		})
	}
}

// The streams received from one node grow their windows together only up
// to a cap, so that many streams cannot make a node buffer without bound.
func TestStreamWindowsCappedPerConnection(t *testing.T) {
	p := newFilesPair(t)
	const streams = 4
	total := int64(64 << 20)
	if raceEnabled || testing.Short() {
		total = 16 << 20
	}
	readers := make([]io.Reader, streams)
	for i := range readers {
		r, err := p.files.Dump(testCtx(t), 1<<40, -1, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.(io.Closer).Close()
		readers[i] = r
	}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.CopyN(io.Discard, r, total); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sum, grown := 0, false
	for _, r := range readers {
		w := trellis.StreamWindow(r)
		sum += w
		grown = grown || w > 256<<10
	}
	t.Logf("windows of %d streams: %d KiB in all", streams, sum>>10)
	if sum > 8<<20 || trellis.StreamWindows(p.client, p.server.ID()) != sum {
		t.Errorf("the streams' windows add up to %d (table: %d), want at most 8 MiB", sum, trellis.StreamWindows(p.client, p.server.ID()))
	}
	if !grown {
		t.Errorf("no window grew beyond the initial one")
	}
	for _, r := range readers {
		r.(io.Closer).Close()
	}
	if w := trellis.StreamWindows(p.client, p.server.ID()); w != 0 {
		t.Errorf("after the streams closed, %d bytes of window still counted", w)
	}
}

// blockingFiles serves Files with a Dump whose source is a pipe that nobody
// writes to: its Read blocks until the pipe is closed.
type blockingFiles struct {
	*testsvc.FilesImpl
	src chan *signalReader
}

// signalReader is a pipe's reader that tells when a Read starts and ends.
type signalReader struct {
	*io.PipeReader
	reading, returned chan struct{} // closed at the first Read's start and end
	once              sync.Once
}

func (r *signalReader) Read(p []byte) (int, error) {
	first := false
	r.once.Do(func() { first = true; close(r.reading) })
	n, err := r.PipeReader.Read(p)
	if first {
		close(r.returned)
	}
	return n, err
}

func (f *blockingFiles) Dump(ctx context.Context, n, seed, failAt int64) (io.Reader, error) {
	pr, _ := io.Pipe()
	s := &signalReader{PipeReader: pr, reading: make(chan struct{}), returned: make(chan struct{})}
	f.src <- s
	return s, nil
}

// TestStreamResetClosesSourceInRead: when the receiver closes a stream, the
// sender closes its source even while its pump is blocked in the source's
// Read, which then returns. It stayed blocked (a pipe nobody writes to),
// and the sender's Node.Close waited for it for ever, whatever its context.
func TestStreamResetClosesSourceInRead(t *testing.T) {
	server := newNode(t, "server", "127.0.0.1:0")
	client := newNode(t, "client", "")
	impl := &blockingFiles{FilesImpl: &testsvc.FilesImpl{}, src: make(chan *signalReader, 1)}
	if err := testsvc.RegisterFiles(server, impl); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	id, err := client.Connect(ctx, server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r, err := testsvc.NewFilesProxy(client, id).Dump(ctx, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	src := <-impl.src
	// Without the fix the source's Read never returns: close the pipe when
	// the test ends, so that the nodes' cleanup can end.
	t.Cleanup(func() { src.PipeReader.Close() })
	read := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10)) // grants credit: the pump starts and blocks in the source's Read
		read <- err
	}()
	select {
	case <-src.reading:
	case <-ctx.Done():
		t.Fatal("the sender never read its source")
	}
	if err := r.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-read; !errors.Is(err, trellis.ErrStreamReset) {
		t.Errorf("Read of a closed stream: %v, want ErrStreamReset", err)
	}
	select {
	case <-src.returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the source's Read did not return after the stream was reset: it was not closed")
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Close(closeCtx); err != nil {
		t.Fatalf("closing the sender: %v", err)
	}
}

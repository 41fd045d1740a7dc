package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

// DirectFills returns how many stream chunks n has read straight into the
// buffer of a waiting Read (for the tests of package runtime_test).
func DirectFills(n *Node) uint64 { return n.streams.filled.Load() }

// StreamWindow returns the window of a stream reader (for the tests of
// package runtime_test).
func StreamWindow(r io.Reader) int {
	s := r.(*streamReader).s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.window
}

// rawPeer is a connection to a node spoken by hand, frame by frame, so
// that a test can stop in the middle of a frame.
type rawPeer struct {
	nc      net.Conn
	closed  chan struct{} // closed when the node closes the connection
	replies chan uint64   // the ids of the responses the node sends
}

// dialRaw connects to n as node id and waits until n has registered the
// connection. Of what n sends, only the ids of responses are kept.
func dialRaw(t testing.TB, n *Node, id NodeID) *rawPeer {
	t.Helper()
	var nc net.Conn
	var err error
	if pa, ok := n.Addr().(pipeAddr); ok {
		nc, err = pa.l.dial()
	} else {
		nc, err = net.DialTimeout("tcp", n.Addr().String(), 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	// A hello without a key (flags 0) and a zero nonce: rawNode is Insecure.
	hello := append([]byte(transport.Magic), transport.ProtocolVersion, 0, 0)
	hello = binary.BigEndian.AppendUint64(hello, uint64(id))
	hello = binary.BigEndian.AppendUint64(hello, uint64(n.ID()))
	hello = append(hello, 0, 0)
	hello = append(hello, make([]byte, 32)...)
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(hello); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, len(hello))
	if _, err := io.ReadFull(nc, reply); err != nil || reply[5] != 0 {
		t.Fatalf("handshake: % x, %v", reply, err)
	}
	nc.SetDeadline(time.Time{})
	r := &rawPeer{nc: nc, closed: make(chan struct{}), replies: make(chan uint64, 16)}
	go func() {
		defer close(r.closed)
		var hdr [transport.HeaderSize]byte
		for {
			if _, err := io.ReadFull(nc, hdr[:]); err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, nc, int64(binary.BigEndian.Uint32(hdr[:]))); err != nil {
				return
			}
			if hdr[4] == kindResponse {
				select {
				case r.replies <- binary.BigEndian.Uint64(hdr[8:]):
				default:
				}
			}
		}
	}()
	waitUntil(t, "the node to register the connection", func() bool { return n.Connected(id) })
	return r
}

// write writes b, failing the test if it cannot.
func (r *rawPeer) write(t testing.TB, b []byte) {
	t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.nc.Write(b); err != nil {
		t.Fatal(err)
	}
}

// waitClosed waits for the node to close the connection.
func (r *rawPeer) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-r.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the node did not close the connection")
	}
}

// dataFrame lays out a frame carrying a chunk of stream id.
func dataFrame(id, seq uint64, flags byte, data []byte) []byte {
	return rawFrame(kindStream, id, streamMsg(opData, id, append(appendDataHeader(nil, seq, flags), data...)))
}

// rawFrame lays out a frame.
func rawFrame(kind transport.Kind, id uint64, payload []byte) []byte {
	hdr := make([]byte, transport.HeaderSize, transport.HeaderSize+len(payload))
	binary.BigEndian.PutUint32(hdr, uint32(len(payload)))
	hdr[4] = byte(kind)
	binary.BigEndian.PutUint64(hdr[8:], id)
	return append(hdr, payload...)
}

// waitUntil polls cond, for at most 5 s: at first only yielding to the
// goroutines that are about to make it true, then every millisecond.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; !cond(); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if i < 100 {
			goruntime.Gosched()
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}

// readResult is what a Read in another goroutine returned.
type readResult struct {
	n   int
	err error
}

// importRaw imports stream id of node from into n and returns the reader
// and the stream.
func importRaw(t testing.TB, n *Node, from NodeID, id uint64) (io.ReadCloser, *inStream) {
	t.Helper()
	rd, err := n.importStream(codegen.StreamRef{Node: from, Stream: id}, from)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	n.streams.mu.Lock()
	s := n.streams.in[streamKey{from, id}]
	n.streams.mu.Unlock()
	return rd, s
}

// readAsync starts a Read of len(buf) bytes and waits until it offers its
// buffer to the connection's reader.
func readAsync(t testing.TB, rd io.Reader, s *inStream, buf []byte) chan readResult {
	t.Helper()
	done := make(chan readResult, 1)
	go func() {
		n, err := rd.Read(buf)
		done <- readResult{n, err}
	}()
	waitUntil(t, "the Read to offer its buffer", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.target != nil
	})
	return done
}

func result(t testing.TB, done chan readResult) readResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the Read did not return")
		return readResult{}
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// pipeNode is rawNode serving in memory: dialRaw connects to it through
// net.Pipe, which costs no socket (for fuzz targets, which connect once
// per input).
func pipeNode(t testing.TB, logger *slog.Logger) *Node {
	t.Helper()
	n, err := NewNode(Config{Name: "server", Insecure: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	if err := n.Serve(newPipeListener()); err != nil {
		t.Fatal(err)
	}
	return n
}

// A pipeListener is a net.Listener whose connections are net.Pipes.
type pipeListener struct {
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// dial returns the client end of a new connection.
func (l *pipeListener) dial() (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{l} }

// pipeAddr is the address of a pipeListener, and the way to dial it.
type pipeAddr struct{ l *pipeListener }

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func rawNode(t testing.TB, logger *slog.Logger) *Node {
	t.Helper()
	// Insecure: the raw peers of these tests handshake by hand, without a key.
	n, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Insecure: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// A chunk that arrives while a Read waits goes straight into its buffer;
// what does not fit is queued for the next Read.
func TestStreamFillsAWaitingRead(t *testing.T) {
	tests := []struct {
		name      string
		buf, data int
	}{
		{"buffer larger than the chunk", 300 << 10, 200 << 10},
		{"chunk of a full frame", 256 << 10, streamChunk},
		{"buffer smaller than the chunk", 100 << 10, 200 << 10},
		{"smallest buffer offered", smallChunk + 1, 64 << 10},
		{"rest small enough to copy", 60 << 10, 60<<10 + 100},
	}
	n := rawNode(t, nil)
	raw := dialRaw(t, n, 90)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint64(10 + i)
			rd, s := importRaw(t, n, 90, id)
			buf := make([]byte, tt.buf)
			done := readAsync(t, rd, s, buf)
			before := DirectFills(n)
			data := pattern(tt.data, byte(i))
			raw.write(t, dataFrame(id, 0, 0, data))
			r := result(t, done)
			if r.err != nil || r.n != min(tt.buf, tt.data) {
				t.Fatalf("Read = %d, %v; want %d", r.n, r.err, min(tt.buf, tt.data))
			}
			if DirectFills(n) != before+1 {
				t.Errorf("the chunk was not read into the waiting buffer")
			}
			got := append([]byte(nil), buf[:r.n]...)
			for len(got) < len(data) {
				k, err := rd.Read(buf)
				if err != nil {
					t.Fatalf("Read of the rest: %v", err)
				}
				got = append(got, buf[:k]...)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("the bytes read differ from the bytes sent")
			}
			raw.write(t, dataFrame(id, 1, dataEOF, nil))
			if k, err := rd.Read(buf); k != 0 || err != io.EOF {
				t.Fatalf("Read at the end = %d, %v; want io.EOF", k, err)
			}
		})
	}
}

// A Close from another goroutine while the connection's reader is filling
// the Read's buffer does not let the Read return before the fill ends; the
// Read then reports the reset, and the connection carries on.
func TestStreamCloseDuringFill(t *testing.T) {
	n := rawNode(t, nil)
	raw := dialRaw(t, n, 90)
	rd, s := importRaw(t, n, 90, 1)
	buf := make([]byte, 256<<10)
	done := readAsync(t, rd, s, buf)
	frame := dataFrame(1, 0, 0, pattern(200<<10, 1))
	raw.write(t, frame[:len(frame)-150<<10]) // the header and 50 KiB
	waitUntil(t, "the fill to start", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.filling
	})
	rd.Close()
	select {
	case r := <-done:
		t.Fatalf("Read returned (%d, %v) while its buffer was being filled", r.n, r.err)
	default:
	}
	raw.write(t, frame[len(frame)-150<<10:])
	if r := result(t, done); r.n != 0 || !errors.Is(r.err, ErrStreamReset) {
		t.Fatalf("Read = %d, %v; want ErrStreamReset", r.n, r.err)
	}
	// A late chunk of the closed stream is dropped; another stream works.
	raw.write(t, dataFrame(1, 1, 0, pattern(100<<10, 2)))
	rd2, s2 := importRaw(t, n, 90, 2)
	done = readAsync(t, rd2, s2, buf)
	raw.write(t, dataFrame(2, 0, 0, pattern(100<<10, 3)))
	if r := result(t, done); r.err != nil || !bytes.Equal(buf[:r.n], pattern(100<<10, 3)) {
		t.Fatalf("Read of another stream = %d, %v", r.n, r.err)
	}
}

// Hostile chunks of the size that takes the direct path: each closes the
// connection with a logged reason (or resets the stream), never panics,
// and the waiting Read returns.
func TestStreamHostileBulkChunks(t *testing.T) {
	badEnvelope := dataFrame(1, 0, 0, make([]byte, 8<<10))
	badEnvelope[transport.HeaderSize] = 0x80 // unknown request flags
	tests := []struct {
		name   string
		ahead  int // if not 0, the window granted
		frames [][]byte
		closes bool   // the connection is closed
		log    string // with this reason
	}{
		{name: "beyond the granted window", ahead: 1000, frames: [][]byte{dataFrame(1, 0, 0, make([]byte, 10<<10))}, closes: true, log: "beyond the granted window"},
		{name: "beyond the window after a fill", frames: [][]byte{dataFrame(1, 0, 0, make([]byte, 200<<10)), dataFrame(1, 1, 0, make([]byte, 200<<10))}, closes: true, log: "beyond the granted window"},
		{name: "bad envelope", frames: [][]byte{badEnvelope}, closes: true, log: "unknown request flags"},
		{name: "out of sequence", frames: [][]byte{dataFrame(1, 5, 0, make([]byte, 10<<10))}},
		{name: "cut inside the data", frames: [][]byte{dataFrame(1, 0, 0, make([]byte, 100<<10))[:20<<10]}, closes: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logRecorder{}
			n := rawNode(t, slog.New(logs))
			raw := dialRaw(t, n, 90)
			rd, s := importRaw(t, n, 90, 1)
			if tt.ahead != 0 {
				s.mu.Lock()
				s.ahead, s.window = tt.ahead, tt.ahead
				s.mu.Unlock()
			}
			buf := make([]byte, 64<<10) // less than a chunk: the second frame finds data queued
			done := readAsync(t, rd, s, buf)
			raw.write(t, tt.frames[0])
			if tt.name == "cut inside the data" {
				raw.nc.Close()
			}
			r := result(t, done)
			for _, f := range tt.frames[1:] { // (the first Read has taken what it could)
				raw.write(t, f)
			}
			if tt.closes {
				raw.waitClosed(t)
			}
			if r.err == nil {
				r.err = readToError(t, rd, buf)
			}
			if !errors.Is(r.err, ErrStreamReset) {
				t.Fatalf("Read: %v, want ErrStreamReset", r.err)
			}
			if tt.log != "" {
				waitUntil(t, "the reason to be logged", func() bool { return logs.contains(tt.log) })
			}
		})
	}
}

// readToError reads rd until an error, which it returns, for at most 5 s.
func readToError(t *testing.T, rd io.Reader, buf []byte) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := rd.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end")
		return nil
	}
}

// A chunk that arrives while no Read waits is kept whole for the next
// Read; a Read that arrives in the middle of it takes what has been read
// of it so far and the rest straight from the socket.
func TestStreamChunkWithoutAWaitingRead(t *testing.T) {
	n := rawNode(t, nil)
	raw := dialRaw(t, n, 90)
	data := pattern(250<<10, 5)
	frame := dataFrame(1, 0, 0, data)
	t.Run("no Read", func(t *testing.T) {
		rd, s := importRaw(t, n, 90, 1)
		raw.write(t, frame)
		waitUntil(t, "the chunk to be queued", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.queued == len(data)
		})
		buf := make([]byte, 1<<20)
		if k, err := rd.Read(buf); err != nil || !bytes.Equal(buf[:k], data) {
			t.Fatalf("Read = %d, %v; want the %d bytes sent", k, err, len(data))
		}
	})
	t.Run("a Read arrives in the middle", func(t *testing.T) {
		rd, s := importRaw(t, n, 90, 2)
		frame := dataFrame(2, 0, 0, data)
		cut := len(frame) - 150<<10
		raw.write(t, frame[:cut])
		waitUntil(t, "the chunk to be read into its own buffer", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.receiving
		})
		before, caught := DirectFills(n), n.streams.caught.Load()
		buf := make([]byte, 1<<20)
		done := readAsync(t, rd, s, buf)
		raw.write(t, frame[cut:])
		r := result(t, done)
		if r.err != nil || !bytes.Equal(buf[:r.n], data) {
			t.Fatalf("Read = %d, %v; want the %d bytes sent", r.n, r.err, len(data))
		}
		if DirectFills(n) != before+1 || n.streams.caught.Load() != caught+1 {
			t.Error("the Read's buffer was not filled with the rest of the chunk")
		}
	})
}

// A small chunk, which is not read by HandleBody, queued while a Read
// offers its buffer, stays ahead of the large chunk that follows it.
func TestStreamSmallChunkThenLarge(t *testing.T) {
	n := rawNode(t, nil)
	raw := dialRaw(t, n, 90)
	small, large := pattern(1000, 1), pattern(100<<10, 2)
	want := append(append([]byte(nil), small...), large...)
	for i := range 20 {
		id := uint64(i + 1)
		rd, s := importRaw(t, n, 90, id)
		buf := make([]byte, 256<<10)
		done := readAsync(t, rd, s, buf)
		raw.write(t, append(dataFrame(id, 0, 0, small), dataFrame(id, 1, 0, large)...))
		r := result(t, done)
		if r.err != nil {
			t.Fatal(r.err)
		}
		got := append([]byte(nil), buf[:r.n]...)
		for len(got) < len(want) {
			k, err := rd.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:k]...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: the chunks arrived out of order", i)
		}
	}
}

// On a connection where no call waits, a chunk for a stream whose reader
// has caught up waits a little in the socket for the reader to come back:
// then it goes straight into its buffer; if the reader does not come back
// in time, or closes the stream, the chunk is queued or dropped and the
// connection carries on.
func TestStreamChunkWaitsForTheRead(t *testing.T) {
	tests := []struct {
		name string
		then string // what the reader does while the chunk waits: "read", "nothing", "close"
	}{
		{"the reader comes back", "read"},
		{"the reader does not come back", "nothing"},
		{"the reader closes the stream", "close"},
		{"the reader reads with a small buffer", "small"},
	}
	n := rawNode(t, nil)
	raw := dialRaw(t, n, 90)
	first, second := pattern(50<<10, 1), pattern(60<<10, 2)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint64(i + 1)
			rd, s := importRaw(t, n, 90, id)
			buf := make([]byte, 256<<10)
			done := readAsync(t, rd, s, buf)
			raw.write(t, dataFrame(id, 0, 0, first))
			if r := result(t, done); r.err != nil || !bytes.Equal(buf[:r.n], first) {
				t.Fatalf("first Read = %d, %v", r.n, r.err)
			}
			if tt.then == "small" { // a Read that has no buffer to offer is not waited for
				small := make(chan readResult, 1)
				go func() {
					k, err := rd.Read(buf[:1000])
					small <- readResult{k, err}
				}()
				n.streams.patience.Store(int64(10 * time.Second))
				raw.write(t, dataFrame(id, 1, 0, second))
				if r := result(t, small); r.err != nil || !bytes.Equal(buf[:r.n], second[:1000]) {
					t.Fatalf("small Read = %d, %v", r.n, r.err)
				}
				return
			}
			patience := 10 * time.Second // longer than any test waits
			if tt.then == "nothing" {
				patience = time.Millisecond
			}
			n.streams.patience.Store(int64(patience))
			raw.write(t, dataFrame(id, 1, 0, second))
			switch tt.then {
			case "read":
				waitUntil(t, "the chunk to wait for the reader", func() bool {
					s.mu.Lock()
					defer s.mu.Unlock()
					return s.awaiting
				})
				before := DirectFills(n)
				if k, err := rd.Read(buf); err != nil || !bytes.Equal(buf[:k], second) {
					t.Fatalf("second Read = %d, %v", k, err)
				}
				if DirectFills(n) != before+1 {
					t.Error("the waiting chunk did not go straight into the Read's buffer")
				}
			case "nothing":
				waitUntil(t, "the chunk to be queued", func() bool {
					s.mu.Lock()
					defer s.mu.Unlock()
					return s.queued == len(second)
				})
				if k, err := rd.Read(buf); err != nil || !bytes.Equal(buf[:k], second) {
					t.Fatalf("second Read = %d, %v", k, err)
				}
			case "close":
				waitUntil(t, "the chunk to wait for the reader", func() bool {
					s.mu.Lock()
					defer s.mu.Unlock()
					return s.awaiting
				})
				rd.Close()
				if _, err := rd.Read(buf); !errors.Is(err, ErrStreamReset) {
					t.Fatalf("Read after Close: %v, want ErrStreamReset", err)
				}
			}
		})
	}
	// The connection still works.
	rd, s := importRaw(t, n, 90, 99)
	buf := make([]byte, 64<<10)
	done := readAsync(t, rd, s, buf)
	raw.write(t, dataFrame(99, 0, 0, first[:10<<10]))
	if r := result(t, done); r.err != nil || r.n != 10<<10 {
		t.Fatalf("Read of another stream = %d, %v", r.n, r.err)
	}
}

// StreamWindows returns the sum of the windows of the streams n receives
// from node from (for the tests of package runtime_test).
func StreamWindows(n *Node, from NodeID) int {
	n.streams.mu.Lock()
	defer n.streams.mu.Unlock()
	return n.streams.windows[from]
}

package transport

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/nodeid"
)

// waitLimit bounds every wait for an event in these tests. It only delays a
// failure, so it is generous: under -race on a loaded 2-core machine moving
// 32 MiB through a connection has taken over 10 s.
const waitLimit = 30 * time.Second

// checkLeaks fails the test if, once it and its cleanups are done, more
// goroutines run than before it started. Call it first in a test, so its
// cleanup runs last.
func checkLeaks(t testing.TB) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d running, %d before the test\n%s", n, base, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// logRecorder is a slog.Handler that keeps every record as one line of
// text ("LEVEL msg key=value ..."), so tests can await and assert logged
// reasons.
type logRecorder struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on each record
	attrs   []slog.Attr
	root    *logRecorder
}

func newLogRecorder() *logRecorder {
	r := &logRecorder{changed: make(chan struct{})}
	r.root = r
	return r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	for _, a := range r.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	root := r.root
	root.mu.Lock()
	root.lines = append(root.lines, b.String())
	close(root.changed)
	root.changed = make(chan struct{})
	root.mu.Unlock()
	return nil
}

func (r *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{root: r.root, attrs: append(append([]slog.Attr(nil), r.attrs...), attrs...)}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

func (r *logRecorder) logger() *slog.Logger { return slog.New(r) }

// find returns the first line containing every one of subs, or "".
func (r *logRecorder) find(subs ...string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
next:
	for _, l := range r.lines {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		return l
	}
	return ""
}

// count returns how many lines contain sub.
func (r *logRecorder) count(sub string) int {
	r.root.mu.Lock()
	defer r.root.mu.Unlock()
	n := 0
	for _, l := range r.root.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// all returns a copy of the lines.
func (r *logRecorder) all() []string {
	r.root.mu.Lock()
	defer r.root.mu.Unlock()
	return append([]string(nil), r.root.lines...)
}

// waitFor waits for a line containing every one of subs and returns it.
func (r *logRecorder) waitFor(t testing.TB, subs ...string) string {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if l := r.find(subs...); l != "" {
			return l
		}
		select {
		case <-changed:
		case <-deadline.C:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("no log line containing %q; got:\n%s", subs, strings.Join(r.lines, "\n"))
			return ""
		}
	}
}

// message is one message received by a recorder.
type message struct {
	kind    Kind
	id      uint64
	payload []byte
}

// recorder is a Handler that records what arrives, in order.
type recorder struct {
	msgs     chan message
	goAway   chan struct{}
	closed   chan struct{}
	onMsg    func(message) error // optional
	mu       sync.Mutex
	events   []string // "msg <id>", "goaway", "closed"
	goAways  int
	closes   int
	closeErr error
}

func newRecorder(buffer int) *recorder {
	return &recorder{
		msgs:   make(chan message, buffer),
		goAway: make(chan struct{}),
		closed: make(chan struct{}),
	}
}

func (r *recorder) HandleMessage(kind Kind, id uint64, payload []byte) error {
	m := message{kind: kind, id: id, payload: bytes.Clone(payload)}
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf("msg %d", id))
	r.mu.Unlock()
	if r.onMsg != nil {
		if err := r.onMsg(m); err != nil {
			return err
		}
	}
	select {
	case r.msgs <- m:
	default:
		panic("recorder: message buffer full")
	}
	return nil
}

func (r *recorder) HandleGoAway() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "goaway")
	r.goAways++
	if r.goAways == 1 {
		close(r.goAway)
	}
}

func (r *recorder) HandleClosed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "closed")
	r.closes++
	if r.closes == 1 {
		r.closeErr = err
		close(r.closed)
	}
}

// waitClosed waits for HandleClosed and returns its error.
func (r *recorder) waitClosed(t testing.TB) error {
	t.Helper()
	select {
	case <-r.closed:
	case <-time.After(waitLimit):
		t.Fatal("HandleClosed not called")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeErr
}

// next waits for the next message.
func (r *recorder) next(t testing.TB) message {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(waitLimit):
		t.Fatal("no message arrived")
		return message{}
	}
}

func (r *recorder) closeCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closes
}

func (r *recorder) eventLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// testPeerTimeout is the KeepaliveTimeout and StallTimeout of testConfig.
// Pings still go out every (default) KeepaliveInterval, but a peer that a
// test leaves silent or unread on purpose (never started, stalled) or that
// a loaded machine deschedules for seconds is not dropped with
// ErrPeerTimeout or ErrPeerStalled in tests that are not about those;
// the tests that are set their own timings.
const testPeerTimeout = 2 * time.Minute

// testConfig returns a configuration for node self with a shared label and
// a logger recording to logs (which may be nil).
func testConfig(self nodeid.ID, logs *logRecorder) Config {
	cfg := Config{
		Self: self, Label: "test-cluster", Keyring: testRing(),
		HandshakeTimeout: 5 * time.Second,
		KeepaliveTimeout: testPeerTimeout, StallTimeout: testPeerTimeout,
	}
	if logs != nil {
		cfg.Logger = logs.logger()
	}
	return cfg
}

// listen starts a listener closed at the end of the test.
func listen(t testing.TB, cfg Config) *Listener {
	t.Helper()
	l, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); l.Wait() })
	return l
}

// accept accepts one connection within waitLimit.
func accept(t testing.TB, l *Listener) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	return c
}

// closeAtEnd aborts c and waits for it at the end of the test.
func closeAtEnd(t testing.TB, c *Conn) {
	t.Cleanup(func() { c.Abort(nil); c.Wait() })
}

// pair returns a connection dialed with dcfg to a listener configured with
// lcfg, and the accepted end; neither is started.
func pair(t testing.TB, dcfg, lcfg Config) (dialed, accepted *Conn) {
	t.Helper()
	l := listen(t, lcfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	d, err := Dial(ctx, l.Addr().String(), dcfg, lcfg.Self)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	closeAtEnd(t, d)
	a := accept(t, l)
	closeAtEnd(t, a)
	return d, a
}

// testKey is the cluster key of the tests' keyring.
var testKey = []byte("transport-test-cluster-key-0123")

// testRing returns a new keyring holding testKey.
func testRing() *keyring.Ring {
	r, err := keyring.New(testKey)
	if err != nil {
		panic(err)
	}
	return r
}

// rawHello is a hello laid out and read by hand, independently of
// encodeHello and readHello.
type rawHello struct {
	magic      string
	version    byte
	status     byte
	label      string
	self, want uint64
	reason     string
	flags      byte // version 2 on
	nonce      [32]byte
}

// bytes lays out h: the version-1 prefix, then, for the current version,
// flags and nonce.
func (h rawHello) bytes() []byte {
	var b bytes.Buffer
	b.WriteString(h.magic)
	b.WriteByte(h.version)
	b.WriteByte(h.status)
	b.WriteByte(byte(len(h.label)))
	b.WriteString(h.label)
	binary.Write(&b, binary.BigEndian, h.self)
	binary.Write(&b, binary.BigEndian, h.want)
	b.WriteByte(byte(len(h.reason)))
	b.WriteString(h.reason)
	if h.version == ProtocolVersion {
		b.WriteByte(h.flags)
		b.Write(h.nonce[:])
	}
	return b.Bytes()
}

// helloBytes lays out a hello by hand that announces the cluster key, with
// a zero nonce.
func helloBytes(magic string, version, status byte, label string, self, want uint64, reason string) []byte {
	return rawHello{magic: magic, version: version, status: status, label: label, self: self, want: want, reason: reason, flags: 1}.bytes()
}

// readRawHello reads a hello by hand.
func readRawHello(r io.Reader) (rawHello, error) {
	var h rawHello
	fixed := make([]byte, 7)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return h, err
	}
	h.magic, h.version, h.status = string(fixed[:4]), fixed[4], fixed[5]
	label := make([]byte, fixed[6])
	if _, err := io.ReadFull(r, label); err != nil {
		return h, err
	}
	h.label = string(label)
	ids := make([]byte, 17)
	if _, err := io.ReadFull(r, ids); err != nil {
		return h, err
	}
	h.self, h.want = binary.BigEndian.Uint64(ids), binary.BigEndian.Uint64(ids[8:])
	reason := make([]byte, ids[16])
	if _, err := io.ReadFull(r, reason); err != nil {
		return h, err
	}
	h.reason = string(reason)
	if h.version == ProtocolVersion {
		ext := make([]byte, 33)
		if _, err := io.ReadFull(r, ext); err != nil {
			return h, err
		}
		h.flags = ext[0]
		copy(h.nonce[:], ext[1:])
	}
	return h, nil
}

// rawProof computes by hand the proof of role ("dialer" or "acceptor")
// over the handshake of hellos d and a, without TLS, followed by the
// settings blocks given (the dialer's then the acceptor's, as sent).
func rawProof(key []byte, role string, d, a rawHello, settings ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("trellis transport handshake\x00"))
	m.Write([]byte(role))
	m.Write([]byte{0, d.version, d.flags, a.flags, byte(len(d.label))})
	m.Write([]byte(d.label))
	binary.Write(m, binary.BigEndian, d.self)
	binary.Write(m, binary.BigEndian, a.self)
	m.Write(d.nonce[:])
	m.Write(a.nonce[:])
	m.Write([]byte{0}) // no TLS binding
	for _, b := range settings {
		m.Write(b)
	}
	return m.Sum(nil)
}

// readRawVerdict reads the acceptor's verdict by hand: status, reason and,
// when the status is OK, its proof.
func readRawVerdict(r io.Reader) (status byte, reason string, proof []byte, err error) {
	fixed := make([]byte, 2)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return 0, "", nil, err
	}
	rb := make([]byte, fixed[1])
	if _, err := io.ReadFull(r, rb); err != nil {
		return 0, "", nil, err
	}
	if fixed[0] != 0 {
		return fixed[0], string(rb), nil, nil
	}
	proof = make([]byte, 32)
	_, err = io.ReadFull(r, proof)
	return fixed[0], string(rb), proof, err
}

// rawDial connects to addr and completes a valid keyed handshake by hand as
// node self, returning the raw socket.
func rawDial(t testing.TB, addr string, self nodeid.ID, label string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rawHandshake(t, nc, self, label)
	return nc
}

// rawHandshake runs a valid keyed handshake by hand as node self on nc.
func rawHandshake(t testing.TB, nc net.Conn, self nodeid.ID, label string) {
	t.Helper()
	nc.SetDeadline(time.Now().Add(waitLimit))
	ours := rawHello{magic: Magic, version: ProtocolVersion, label: label, self: uint64(self), flags: 1}
	rand.Read(ours.nonce[:])
	if _, err := nc.Write(ours.bytes()); err != nil {
		t.Fatal(err)
	}
	h, err := readRawHello(nc)
	if err != nil {
		t.Fatalf("reading the acceptor's hello: %v", err)
	}
	if h.magic != Magic || h.status != 0 || h.want != uint64(self) || h.flags != 1 {
		t.Fatalf("unexpected hello from the acceptor: %+v", h)
	}
	if _, err := nc.Write(rawProof(testKey, "dialer", ours, h)); err != nil {
		t.Fatal(err)
	}
	status, reason, proof, err := readRawVerdict(nc)
	if err != nil || status != 0 {
		t.Fatalf("the acceptor's verdict: status %d %q, %v", status, reason, err)
	}
	if !hmac.Equal(proof, rawProof(testKey, "acceptor", ours, h)) {
		t.Fatal("the acceptor's proof does not verify")
	}
	nc.SetDeadline(time.Time{})
}

// rawAccept answers one valid keyed handshake by hand as node self on nc,
// returning the dialer's hello.
func rawAccept(nc net.Conn, self nodeid.ID) (rawHello, error) {
	h, err := readRawHello(nc)
	if err != nil {
		return h, err
	}
	ours := rawHello{magic: Magic, version: ProtocolVersion, label: h.label, self: uint64(self), want: h.self, flags: 1}
	rand.Read(ours.nonce[:])
	if _, err := nc.Write(ours.bytes()); err != nil {
		return h, err
	}
	proof := make([]byte, 32)
	if _, err := io.ReadFull(nc, proof); err != nil {
		return h, err
	}
	if !hmac.Equal(proof, rawProof(testKey, "dialer", h, ours)) {
		return h, errors.New("the dialer's proof does not verify")
	}
	_, err = nc.Write(append([]byte{0, 0}, rawProof(testKey, "acceptor", h, ours)...))
	return h, err
}

// rawServer accepts one connection on a fresh port and runs serve on it in
// a goroutine; the test waits for serve to return at its end.
func rawServer(t testing.TB, serve func(nc net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(waitLimit))
		serve(nc)
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Error("raw server did not end")
		}
	})
	return ln.Addr().String()
}

// frameBytes lays out one frame by hand, independently of putHeader.
func frameBytes(kind Kind, flags uint8, id uint64, payload []byte) []byte {
	b := make([]byte, 16, 16+len(payload))
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	b[4], b[5] = byte(kind), flags
	binary.BigEndian.PutUint64(b[8:], id)
	return append(b, payload...)
}

// rawFrame is one frame read by hand from a raw connection.
type rawFrame struct {
	length  uint32
	kind    Kind
	flags   uint8
	id      uint64
	payload []byte
}

// readRawFrame reads one frame by hand.
func readRawFrame(r io.Reader) (rawFrame, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return rawFrame{}, err
	}
	f := rawFrame{
		length: binary.BigEndian.Uint32(hdr[:]),
		kind:   Kind(hdr[4]),
		flags:  hdr[5],
		id:     binary.BigEndian.Uint64(hdr[8:]),
	}
	if hdr[6] != 0 || hdr[7] != 0 || f.length > MaxFramePayload {
		return f, fmt.Errorf("bad frame header % x", hdr)
	}
	f.payload = make([]byte, f.length)
	_, err := io.ReadFull(r, f.payload)
	return f, err
}

// waitEOF waits for the peer to close nc, reading and discarding what it
// sends, and fails the test if it does not within waitLimit.
func waitEOF(t testing.TB, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection was not closed by the other side")
	}
}

// bufferOf returns a pooled buffer holding p.
func bufferOf(p []byte) *Buffer {
	b := GetBuffer()
	b.Write(p)
	return b
}

// ctxT returns a context bounded by waitLimit.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// fakeConn is a net.Conn that reads nothing and swallows writes: the tests
// and fuzz targets that drive Conn.read directly need one to build a Conn.
type fakeConn struct{}

func (fakeConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (fakeConn) Close() error                     { return nil }
func (fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (fakeConn) SetDeadline(time.Time) error      { return nil }
func (fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (fakeConn) SetWriteDeadline(time.Time) error { return nil }

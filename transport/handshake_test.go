package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/nodeid"
)

func TestHandshakeSuccess(t *testing.T) {
	for _, want := range []nodeid.ID{nodeid.None, 2} {
		t.Run("want="+want.String(), func(t *testing.T) {
			checkLeaks(t)
			l := listen(t, testConfig(2, nil))
			d, err := Dial(ctxT(t), l.Addr().String(), testConfig(1, nil), want)
			if err != nil {
				t.Fatal(err)
			}
			closeAtEnd(t, d)
			a := accept(t, l)
			closeAtEnd(t, a)
			if d.Local() != 1 || d.Remote() != 2 || a.Local() != 2 || a.Remote() != 1 {
				t.Errorf("ids: dialer %s→%s, acceptor %s→%s", d.Local(), d.Remote(), a.Local(), a.Remote())
			}
			if d.RemoteAddr().String() != a.LocalAddr().String() || d.LocalAddr().String() != a.RemoteAddr().String() {
				t.Errorf("addresses do not match: dialer %s→%s, acceptor %s→%s", d.LocalAddr(), d.RemoteAddr(), a.LocalAddr(), a.RemoteAddr())
			}
			// The connection works in both directions after the handshake.
			dr, ar := newRecorder(1), newRecorder(1)
			d.Start(dr)
			a.Start(ar)
			if err := d.Send(ctxT(t), 1, 10, bufferOf([]byte("ping"))); err != nil {
				t.Fatal(err)
			}
			if m := ar.next(t); m.id != 10 || string(m.payload) != "ping" {
				t.Errorf("acceptor got %+v", m)
			}
			if err := a.Send(ctxT(t), 2, 11, bufferOf([]byte("pong"))); err != nil {
				t.Fatal(err)
			}
			if m := dr.next(t); m.kind != 2 || m.id != 11 || string(m.payload) != "pong" {
				t.Errorf("dialer got %+v", m)
			}
		})
	}
}

// TestHandshakeMismatch checks that each mismatch found by the acceptor is a
// clear error on both sides: the dialer's *HandshakeError carries the
// acceptor's reason, and the acceptor logs the same reason.
func TestHandshakeMismatch(t *testing.T) {
	tests := []struct {
		name   string
		dialer func(*Config)
		want   nodeid.ID // the node the dialer expects
		reason string    // in both the dialer's error and the acceptor's log
	}{
		{
			name:   "protocol version",
			dialer: func(c *Config) { c.version = ProtocolVersion + 1 },
			reason: fmt.Sprintf("protocol version mismatch: dialer speaks %d, acceptor speaks %d", ProtocolVersion+1, ProtocolVersion),
		},
		{
			name:   "cluster label",
			dialer: func(c *Config) { c.Label = "other-cluster" },
			reason: `cluster label mismatch: dialer has "other-cluster", acceptor has "test-cluster"`,
		},
		{
			name:   "expected node",
			want:   3,
			reason: "the dialer expected node 0000000000000003, the acceptor is node 0000000000000002",
		},
		{
			name:   "connection to self",
			dialer: func(c *Config) { c.Self = 2 },
			reason: "both ends have node id 0000000000000002 (a connection to self?)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			logs := newLogRecorder()
			l := listen(t, testConfig(2, logs))
			dcfg := testConfig(1, nil)
			if tt.dialer != nil {
				tt.dialer(&dcfg)
			}
			c, err := Dial(ctxT(t), l.Addr().String(), dcfg, tt.want)
			if err == nil {
				c.Abort(nil)
				t.Fatal("Dial succeeded")
			}
			var he *HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("Dial error %T %v, want *HandshakeError", err, err)
			}
			if !he.Remote || he.Reason != tt.reason {
				t.Errorf("dialer error: remote=%v reason %q, want remote reason %q", he.Remote, he.Reason, tt.reason)
			}
			if want := "refused by peer: " + tt.reason; !strings.Contains(err.Error(), want) {
				t.Errorf("dialer error %q does not say %q", err, want)
			}
			line := logs.waitFor(t, "handshake failed", tt.reason)
			if !strings.Contains(line, "refused: "+tt.reason) {
				t.Errorf("acceptor log %q does not say it refused", line)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if c, err := l.Accept(ctx); err == nil {
				c.Abort(nil)
				t.Error("the refused connection was accepted")
			}
		})
	}
}

// TestHandshakeDialerRefuses runs the dialer against raw acceptors that
// answer with something the dialer must refuse itself.
func TestHandshakeDialerRefuses(t *testing.T) {
	const self = 1
	tests := []struct {
		name    string
		answer  []byte // written after reading the dialer's hello
		close   bool   // close after answering
		want    nodeid.ID
		reason  string // in the *HandshakeError
		wrapped error  // the HandshakeError's Err, if any
	}{
		{
			name:   "garbage",
			answer: []byte("HTTP/1.1 400 Bad Request\r\n\r\n"),
			reason: `wrong magic "HTTP" (want "TRLS"): not a Trellis peer`,
		},
		{
			name:   "newer version",
			answer: helloBytes(Magic, ProtocolVersion+1, 0, "test-cluster", 2, self, ""),
			reason: fmt.Sprintf("protocol version mismatch: acceptor speaks %d, dialer speaks %d", ProtocolVersion+1, ProtocolVersion),
		},
		{
			name:   "label",
			answer: helloBytes(Magic, ProtocolVersion, 0, "x", 2, self, ""),
			reason: `cluster label mismatch: acceptor has "x", dialer has "test-cluster"`,
		},
		{
			name:   "zero id",
			answer: helloBytes(Magic, ProtocolVersion, 0, "test-cluster", 0, self, ""),
			reason: "the acceptor sent the zero node id",
		},
		{
			name:   "our own id",
			answer: helloBytes(Magic, ProtocolVersion, 0, "test-cluster", self, self, ""),
			reason: "both ends have node id 0000000000000001 (a connection to self?)",
		},
		{
			name:   "unexpected node",
			answer: helloBytes(Magic, ProtocolVersion, 0, "test-cluster", 5, self, ""),
			want:   2,
			reason: "the dialer expected node 0000000000000002, the acceptor is node 0000000000000005",
		},
		{
			name:   "acceptor expects another node",
			answer: helloBytes(Magic, ProtocolVersion, 0, "test-cluster", 2, 9, ""),
			reason: "the acceptor expected node 0000000000000009, the dialer is node 0000000000000001",
		},
		{
			name:    "truncated hello",
			answer:  helloBytes(Magic, ProtocolVersion, 0, "test-cluster", 2, self, "")[:12],
			close:   true,
			reason:  "reading the acceptor's hello: connection closed by peer",
			wrapped: io.ErrUnexpectedEOF,
		},
		{
			name:    "closed at once",
			close:   true,
			reason:  "reading the acceptor's hello: connection closed by peer",
			wrapped: io.EOF,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			got := make(chan rawHello, 1)
			addr := rawServer(t, func(nc net.Conn) {
				h, err := readRawHello(nc)
				if err != nil {
					t.Errorf("raw acceptor: reading hello: %v", err)
					return
				}
				got <- h
				nc.Write(tt.answer)
				if !tt.close {
					io.Copy(io.Discard, nc) // until the dialer hangs up
				}
			})
			c, err := Dial(ctxT(t), addr, testConfig(self, nil), tt.want)
			if err == nil {
				c.Abort(nil)
				t.Fatal("Dial succeeded")
			}
			var he *HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("Dial error %T %v, want *HandshakeError", err, err)
			}
			if he.Remote || he.Reason != tt.reason {
				t.Errorf("got remote=%v reason %q, want local reason %q", he.Remote, he.Reason, tt.reason)
			}
			if tt.wrapped != nil && !errors.Is(err, tt.wrapped) {
				t.Errorf("error %v does not wrap %v", err, tt.wrapped)
			}
			h := <-got
			if h.magic != Magic || h.version != ProtocolVersion || h.label != "test-cluster" || h.self != self || h.want != uint64(tt.want) || h.status != 0 {
				t.Errorf("the dialer sent %+v", h)
			}
		})
	}
}

// TestHandshakeAcceptorRefusesRawInput sends what no Trellis dialer would:
// the acceptor logs why and closes the connection without accepting it.
func TestHandshakeAcceptorRefusesRawInput(t *testing.T) {
	tests := []struct {
		name   string
		send   []byte
		reason string
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), `wrong magic "GET " (want "TRLS"): not a Trellis peer`},
		{"short garbage", []byte("XYZW"), `wrong magic "XYZW"`},
		{"truncated hello", helloBytes(Magic, ProtocolVersion, 0, "test-cluster", 7, 0, "")[:20], "reading the dialer's hello: connection closed by peer"},
		{"zero id", helloBytes(Magic, ProtocolVersion, 0, "test-cluster", 0, 0, ""), "refused: the dialer sent the zero node id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			logs := newLogRecorder()
			l := listen(t, testConfig(2, logs))
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			nc.(*net.TCPConn).CloseWrite()
			logs.waitFor(t, "handshake failed", tt.reason)
			waitEOF(t, nc)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if c, err := l.Accept(ctx); err == nil {
				c.Abort(nil)
				t.Error("the connection was accepted")
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	t.Run("silent acceptor", func(t *testing.T) {
		checkLeaks(t)
		addr := rawServer(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
		cfg := testConfig(1, nil)
		cfg.HandshakeTimeout = timeout
		start := time.Now()
		c, err := Dial(ctxT(t), addr, cfg, nodeid.None)
		elapsed := time.Since(start)
		if err == nil {
			c.Abort(nil)
			t.Fatal("Dial succeeded")
		}
		var he *HandshakeError
		if !errors.As(err, &he) || !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("Dial error %v, want a *HandshakeError wrapping os.ErrDeadlineExceeded", err)
		}
		if elapsed < timeout || elapsed > timeout+2*time.Second {
			t.Errorf("Dial gave up after %v, want about %v", elapsed, timeout)
		}
	})
	t.Run("silent dialer", func(t *testing.T) {
		checkLeaks(t)
		logs := newLogRecorder()
		cfg := testConfig(2, logs)
		cfg.HandshakeTimeout = timeout
		l := listen(t, cfg)
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		start := time.Now()
		logs.waitFor(t, "handshake failed", "reading the dialer's hello: timed out")
		if elapsed := time.Since(start); elapsed < timeout-50*time.Millisecond {
			t.Errorf("the acceptor gave up after %v, before the timeout of %v", elapsed, timeout)
		}
		waitEOF(t, nc)
	})
}

func TestDialCancelled(t *testing.T) {
	checkLeaks(t)
	addr := rawServer(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		c, err := Dial(ctx, addr, testConfig(1, nil), nodeid.None)
		if c != nil {
			c.Abort(nil)
		}
		res <- err
	}()
	cancel()
	select {
	case err := <-res:
		var he *HandshakeError
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Errorf("Dial error %v, want one wrapping context.Canceled", err)
		} else if errors.As(err, &he) && he.Reason != "dial abandoned" {
			t.Errorf("reason %q", he.Reason)
		}
	case <-time.After(waitLimit):
		t.Fatal("Dial ignored the cancellation")
	}
}

// TestListenerCloseAbandonsHandshakes checks that Close does not wait for
// handshakes in progress to time out.
func TestListenerCloseAbandonsHandshakes(t *testing.T) {
	checkLeaks(t)
	logs := newLogRecorder()
	cfg := testConfig(2, logs)
	cfg.HandshakeTimeout = time.Minute
	l, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var socks []net.Conn
	for i := range 5 {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		// Some say nothing, some stop in the middle of their hello.
		if i%2 == 1 {
			nc.Write(helloBytes(Magic, ProtocolVersion, 0, "test-cluster", 7, 0, "")[:10])
		}
		socks = append(socks, nc)
	}
	// A complete handshake proves the listener has accepted the sockets
	// dialed before it (it accepts in order).
	rawDial(t, l.Addr().String(), 9, "test-cluster")
	start := time.Now()
	l.Close()
	waited := make(chan struct{})
	go func() { l.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(waitLimit):
		t.Fatal("Wait did not return after Close")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Close and Wait took %v", elapsed)
	}
	for _, nc := range socks {
		waitEOF(t, nc)
	}
	if _, err := l.Accept(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close: %v, want ErrClosed", err)
	}
	logs.waitFor(t, "handshake failed", "listener closed")
}

// TestListenerCloseUnaccepted checks that a connection whose handshake
// succeeded but that nobody accepted is closed with the listener.
func TestListenerCloseUnaccepted(t *testing.T) {
	checkLeaks(t)
	l, err := Listen("127.0.0.1:0", testConfig(2, nil))
	if err != nil {
		t.Fatal(err)
	}
	nc := rawDial(t, l.Addr().String(), 9, "test-cluster")
	l.Close()
	l.Wait()
	waitEOF(t, nc)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		err  string
	}{
		{"zero self", Config{Insecure: true}, "Config.Self is the zero node id"},
		{"long label", Config{Self: 1, Insecure: true, Label: strings.Repeat("x", 256)}, "cluster label is 256 bytes, the limit is 255"},
		{"no way to authenticate", Config{Self: 1}, "no Keyring, no TLS and not Insecure"},
		{"empty keyring", Config{Self: 1, Keyring: &keyring.Ring{}}, "Config.Keyring holds no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Listen("127.0.0.1:0", tt.cfg); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Listen: %v, want %q", err, tt.err)
			}
			if _, err := Dial(context.Background(), "127.0.0.1:1", tt.cfg, nodeid.None); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Dial: %v, want %q", err, tt.err)
			}
		})
	}
	if err := (&Config{Self: 1}).Validate(); !errors.Is(err, ErrNoAuth) {
		t.Errorf("Validate without Keyring, TLS or Insecure: %v, want ErrNoAuth", err)
	}
	// A listener with TLS and no Keyring must verify client certificates:
	// they are all that authenticates a dialer.
	_, err := Listen("127.0.0.1:0", Config{Self: 1, TLS: &tls.Config{}})
	if err == nil || !strings.Contains(err.Error(), "RequireAndVerifyClientCert") {
		t.Errorf("Listen with TLS, no Keyring, no client certificates: %v", err)
	}
}

func TestEncodeHelloMatchesWireLayout(t *testing.T) {
	h := hello{version: 1, status: statusRefused, label: "lbl", self: 0x0102030405060708, want: 9, reason: "no"}
	got := encodeHello(h)
	want := helloBytes(Magic, 1, 1, "lbl", 0x0102030405060708, 9, "no")
	if string(got) != string(want) {
		t.Fatalf("encodeHello = % x, want % x", got, want)
	}
	long := encodeHello(hello{reason: strings.Repeat("r", 300)})
	back, err := readRawHello(strings.NewReader(string(long)))
	if err != nil || len(back.reason) != 255 || !strings.HasSuffix(back.reason, "...") {
		t.Errorf("a long reason came back as %d bytes (%v)", len(back.reason), err)
	}
}

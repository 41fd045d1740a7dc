package transport

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/nodeid"
)

func ringOf(t testing.TB, keys ...string) *keyring.Ring {
	t.Helper()
	bs := make([][]byte, len(keys))
	for i, k := range keys {
		bs[i] = []byte(k + "-0123456789abcdef")
	}
	r, err := keyring.New(bs...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestHandshakeAuthentication runs dialers and acceptors with and without
// keys against each other: members get in, others are refused with a
// reason both sides can read.
func TestHandshakeAuthentication(t *testing.T) {
	tests := []struct {
		name             string
		dialer, acceptor func(*Config)
		dialErr          string // "" for success
		remote           bool   // the acceptor refused (rather than the dialer)
	}{
		{name: "same key"},
		{
			name:     "rotation: each proves with a key the other still accepts",
			dialer:   func(c *Config) { c.Keyring = ringOf(t, "old", "new") },
			acceptor: func(c *Config) { c.Keyring = ringOf(t, "new", "old") },
		},
		{
			name:    "another key",
			dialer:  func(c *Config) { c.Keyring = ringOf(t, "intruder") },
			dialErr: "the dialer (node 0000000000000001) did not prove it holds a cluster key: it is not a member",
			remote:  true,
		},
		{
			name:    "dialer without key",
			dialer:  func(c *Config) { c.Keyring, c.Insecure = nil, true },
			dialErr: "the dialer holds no cluster key and its certificate names no node id; the acceptor admits only members",
			remote:  true,
		},
		{
			name:     "acceptor without key",
			acceptor: func(c *Config) { c.Keyring, c.Insecure = nil, true },
			dialErr:  "the acceptor holds no cluster key and its certificate names no node id; the dialer admits only members",
		},
		{
			name:     "the acceptor proves with a key the dialer dropped",
			dialer:   func(c *Config) { c.Keyring = ringOf(t, "a") },
			acceptor: func(c *Config) { c.Keyring = ringOf(t, "b", "a") },
			dialErr:  "the acceptor's proof does not verify with any cluster key: it is not a member",
		},
		{
			name:     "both insecure",
			dialer:   func(c *Config) { c.Keyring, c.Insecure = nil, true },
			acceptor: func(c *Config) { c.Keyring, c.Insecure = nil, true },
		},
		{
			name:     "keyed and insecure acceptor admits a dialer without key (migration)",
			dialer:   func(c *Config) { c.Keyring, c.Insecure = nil, true },
			acceptor: func(c *Config) { c.Insecure = true },
		},
		{
			name:     "an insecure acceptor still checks a key that is announced",
			dialer:   func(c *Config) { c.Keyring = ringOf(t, "intruder") },
			acceptor: func(c *Config) { c.Insecure = true },
			dialErr:  "did not prove it holds a cluster key",
			remote:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			logs := newLogRecorder()
			lcfg, dcfg := testConfig(2, logs), testConfig(1, nil)
			if tt.acceptor != nil {
				tt.acceptor(&lcfg)
			}
			if tt.dialer != nil {
				tt.dialer(&dcfg)
			}
			l := listen(t, lcfg)
			c, err := Dial(ctxT(t), l.Addr().String(), dcfg, 2)
			if tt.dialErr == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				closeAtEnd(t, c)
				closeAtEnd(t, accept(t, l))
				return
			}
			if err == nil {
				c.Abort(nil)
				t.Fatal("Dial succeeded")
			}
			var he *HandshakeError
			if !errors.As(err, &he) || he.Remote != tt.remote || !strings.Contains(he.Reason, tt.dialErr) {
				t.Fatalf("Dial: %v (remote %v), want a *HandshakeError with remote=%v saying %q", err, he != nil && he.Remote, tt.remote, tt.dialErr)
			}
			if !tt.remote {
				return // the acceptor admitted the dialer; the dialer hung up
			}
			logs.waitFor(t, "handshake failed", tt.dialErr)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if c, err := l.Accept(ctx); err == nil {
				c.Abort(nil)
				t.Error("the refused connection was accepted")
			}
		})
	}
}

// TestUnauthenticatedHandshakeRefused plays the attacker of issue 10: a
// program that sends the magic, the label and an id, without the cluster
// key, must not become a peer.
func TestUnauthenticatedHandshakeRefused(t *testing.T) {
	tests := []struct {
		name   string
		flags  byte
		proof  []byte // sent after the acceptor's hello, if any
		reason string
	}{
		{name: "no key announced", flags: 0, reason: "the dialer holds no cluster key"},
		{name: "a key announced, a wrong proof", flags: 1, proof: bytes.Repeat([]byte{7}, 32), reason: "did not prove it holds a cluster key"},
		{name: "a key announced, no proof", flags: 1, reason: "reading the dialer's proof: connection closed by peer"},
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
			nc.SetDeadline(time.Now().Add(waitLimit))
			h := rawHello{magic: Magic, version: ProtocolVersion, label: "test-cluster", self: 9, flags: tt.flags}
			nc.Write(h.bytes())
			back, err := readRawHello(nc)
			if err != nil {
				t.Fatalf("reading the acceptor's hello: %v", err)
			}
			if tt.flags == 0 {
				if back.status == 0 || !strings.Contains(back.reason, tt.reason) {
					t.Fatalf("the acceptor answered status %d %q, want a refusal saying %q", back.status, back.reason, tt.reason)
				}
			} else {
				if back.status != 0 {
					t.Fatalf("the acceptor refused before the proof: %q", back.reason)
				}
				if tt.proof != nil {
					nc.Write(tt.proof)
					status, reason, proof, err := readRawVerdict(nc)
					if err != nil || status == 0 || proof != nil || !strings.Contains(reason, tt.reason) {
						t.Fatalf("verdict: status %d %q proof %x (%v), want a refusal saying %q", status, reason, proof, err, tt.reason)
					}
				} else {
					nc.(*net.TCPConn).CloseWrite()
				}
			}
			logs.waitFor(t, "handshake failed", tt.reason)
			waitEOF(t, nc)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if c, err := l.Accept(ctx); err == nil {
				c.Abort(nil)
				t.Error("the unauthenticated connection was accepted")
			}
		})
	}
}

// recordingProxy forwards one connection to target and records what each
// side sent.
type recordingProxy struct {
	addr     string
	mu       sync.Mutex
	fromDial bytes.Buffer
	fromAcc  bytes.Buffer
	done     chan struct{}
}

func (p *recordingProxy) dialerBytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.fromDial.Bytes())
}

func (p *recordingProxy) acceptorBytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.fromAcc.Bytes())
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	p := &recordingProxy{done: make(chan struct{})}
	p.addr = rawServer(t, func(nc net.Conn) {
		defer close(p.done)
		up, err := net.Dial("tcp", target)
		if err != nil {
			t.Errorf("proxy: %v", err)
			return
		}
		defer up.Close()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			io.Copy(io.MultiWriter(up, lockedWriter{&p.mu, &p.fromDial}), nc)
			up.(*net.TCPConn).CloseWrite()
		}()
		go func() {
			defer wg.Done()
			io.Copy(io.MultiWriter(nc, lockedWriter{&p.mu, &p.fromAcc}), up)
			nc.(*net.TCPConn).CloseWrite()
		}()
		wg.Wait()
	})
	return p
}

// TestRecordedHandshakeReplayed records a member's successful handshake
// and replays each side's bytes against a fresh handshake: the other side's
// fresh nonce makes every recorded proof worthless.
func TestRecordedHandshakeReplayed(t *testing.T) {
	checkLeaks(t)
	logs := newLogRecorder()
	l := listen(t, testConfig(2, logs))
	proxy := newRecordingProxy(t, l.Addr().String())
	c, err := Dial(ctxT(t), proxy.addr, testConfig(1, nil), 2)
	if err != nil {
		t.Fatalf("the recorded handshake failed: %v", err)
	}
	accept(t, l).Abort(nil)
	c.Abort(nil)
	c.Wait()
	<-proxy.done
	fromDialer, fromAcceptor := proxy.dialerBytes(), proxy.acceptorBytes()
	if len(fromDialer) == 0 || len(fromAcceptor) == 0 {
		t.Fatal("nothing recorded")
	}

	t.Run("the dialer's side replayed to the acceptor", func(t *testing.T) {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(waitLimit))
		nc.Write(fromDialer)
		nc.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, nc) // until the acceptor hangs up
		logs.waitFor(t, "handshake failed", "did not prove it holds a cluster key")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if c, err := l.Accept(ctx); err == nil {
			c.Abort(nil)
			t.Error("the replayed handshake was accepted")
		}
	})
	t.Run("the acceptor's side replayed to a dialer", func(t *testing.T) {
		addr := rawServer(t, func(nc net.Conn) {
			readRawHello(nc)
			nc.Write(fromAcceptor)
			io.Copy(io.Discard, nc)
		})
		c, err := Dial(ctxT(t), addr, testConfig(1, nil), 2)
		if err == nil {
			c.Abort(nil)
			t.Fatal("the dialer accepted a replayed acceptor")
		}
		if !strings.Contains(err.Error(), "the acceptor's proof does not verify") {
			t.Fatalf("Dial: %v, want the acceptor's proof refused", err)
		}
	})
}

// TestTLSNodeIDBinding checks that a verified certificate naming a node
// binds that node's id: a peer claiming another id is refused, whichever
// side it is, with a key or without.
func TestTLSNodeIDBinding(t *testing.T) {
	ca, err := NewCA("trellis test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	cert := func(id nodeid.ID) tls.Certificate {
		c, err := NewNodeCertificate(ca, id, time.Hour, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	serverTLS := func(c tls.Certificate) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{c}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS13}
	}
	clientTLS := func(c tls.Certificate) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{c}, RootCAs: pool, MinVersion: tls.VersionTLS13}
	}
	tests := []struct {
		name             string
		dialer, acceptor func(*Config)
		dialErr          string
	}{
		{
			name:     "certificates name both nodes, no key",
			dialer:   func(c *Config) { c.Keyring, c.TLS = nil, clientTLS(cert(1)) },
			acceptor: func(c *Config) { c.Keyring, c.TLS = nil, serverTLS(cert(2)) },
		},
		{
			name:     "certificates and key",
			dialer:   func(c *Config) { c.TLS = clientTLS(cert(1)) },
			acceptor: func(c *Config) { c.TLS = serverTLS(cert(2)) },
		},
		{
			name:     "the dialer has another node's certificate",
			dialer:   func(c *Config) { c.Keyring, c.TLS = nil, clientTLS(cert(3)) },
			acceptor: func(c *Config) { c.Keyring, c.TLS = nil, serverTLS(cert(2)) },
			dialErr:  "the dialer's certificate is for node 0000000000000003, the dialer claims to be node 0000000000000001",
		},
		{
			name:     "the dialer has another node's certificate and the key",
			dialer:   func(c *Config) { c.TLS = clientTLS(cert(3)) },
			acceptor: func(c *Config) { c.TLS = serverTLS(cert(2)) },
			dialErr:  "the dialer's certificate is for node 0000000000000003",
		},
		{
			name:     "the acceptor has another node's certificate",
			dialer:   func(c *Config) { c.Keyring, c.TLS = nil, clientTLS(cert(1)) },
			acceptor: func(c *Config) { c.Keyring, c.TLS = nil, serverTLS(cert(4)) },
			dialErr:  "the acceptor's certificate is for node 0000000000000004, the acceptor claims to be node 0000000000000002",
		},
		{
			name:     "a certificate naming no node, no key",
			dialer:   func(c *Config) { c.Keyring, c.TLS = nil, clientTLS(cert(1)) },
			acceptor: func(c *Config) { c.Keyring, c.TLS = nil, serverTLS(caCertWithoutNode(t, ca)) },
			dialErr:  "the acceptor is not authenticated: its certificate names no node id",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			lcfg, dcfg := testConfig(2, nil), testConfig(1, nil)
			tt.acceptor(&lcfg)
			tt.dialer(&dcfg)
			l := listen(t, lcfg)
			c, err := Dial(ctxT(t), l.Addr().String(), dcfg, 2)
			if tt.dialErr == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				closeAtEnd(t, c)
				closeAtEnd(t, accept(t, l))
				return
			}
			if err == nil {
				c.Abort(nil)
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), tt.dialErr) {
				t.Fatalf("Dial: %v, want %q", err, tt.dialErr)
			}
			if !strings.Contains(tt.dialErr, "the dialer") {
				return // the acceptor admitted the dialer; the dialer hung up
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if c, err := l.Accept(ctx); err == nil {
				c.Abort(nil)
				t.Error("the connection was accepted")
			}
		})
	}
}

// caCertWithoutNode issues a server certificate for 127.0.0.1 that names no
// node.
func caCertWithoutNode(t *testing.T, ca tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "no node"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	c, err := issue(tmpl, ca.Leaf, ca.PrivateKey.(crypto.Signer), key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHandshakeFloodBounded opens many connections that never finish their
// handshake: the listener runs no more handshakes than its cap (and a
// quarter of it per source), logs the refusals a few times, not once each,
// and a member from another address still gets in.
func TestHandshakeFloodBounded(t *testing.T) {
	checkLeaks(t)
	logs := newLogRecorder()
	cfg := testConfig(2, logs)
	cfg.MaxPendingHandshakes = 8
	l := listen(t, cfg)
	base := runtime.NumGoroutine()
	const flood = 60
	var socks []net.Conn
	for range flood {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write([]byte("TR")) // a hello that never completes
		socks = append(socks, nc)
	}
	// Every socket beyond the per-source cap (max(4, 8/4) = 4) is closed
	// at once (reset, as what it sent was not read).
	closed := 0
	for _, nc := range socks {
		nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if closed < flood-4 {
		t.Errorf("%d of %d stalled handshakes closed at once, want at least %d", closed, flood, flood-4)
	}
	l.pmu.Lock()
	pending := l.pending
	l.pmu.Unlock()
	if pending > 4 {
		t.Errorf("%d handshakes pending from one source, cap 4", pending)
	}
	if g := runtime.NumGoroutine() - base; g > 8 {
		t.Errorf("%d goroutines more during the flood", g)
	}
	if n := logs.count("too many handshakes in progress"); n != 1 {
		t.Errorf("the refusals were logged %d times, want once", n)
	}
	// A member from another address of the loopback network gets in.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: waitLimit}
	nc, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rawHandshake(t, nc, 7, "test-cluster")
	closeAtEnd(t, accept(t, l))
}

func TestRefusalLogRateLimited(t *testing.T) {
	logs := newLogRecorder()
	r := newRefusalLog(logs.logger())
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	a := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	b := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 1}
	for range 100 {
		r.refused(a, "refused", errors.New("bad"))
	}
	r.refused(b, "refused", errors.New("bad"))
	if n := logs.count("refused"); n != 2 {
		t.Fatalf("%d lines for 100 refusals from one source and 1 from another, want 2", n)
	}
	now = now.Add(refusalWindow)
	r.refused(a, "refused", errors.New("bad"))
	if n := logs.count("not_logged_since_last=99"); n != 1 {
		t.Fatalf("after the window: %d lines saying 99 were not logged, want 1:\n%s", n, strings.Join(logs.all(), "\n"))
	}
	// Many sources: the table stays bounded.
	for i := range 3 * maxRefusalSources {
		r.refused(&net.TCPAddr{IP: net.IPv4(11, byte(i>>16), byte(i>>8), byte(i))}, "refused", errors.New("bad"))
	}
	if n := len(r.sources); n > maxRefusalSources+1 {
		t.Fatalf("%d sources remembered, cap %d", n, maxRefusalSources)
	}
}

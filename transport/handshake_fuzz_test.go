package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// byteCounter counts the bytes read through it.
type byteCounter struct {
	r io.Reader
	n int
}

func (c *byteCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzHandshakeDecode feeds arbitrary bytes to the handshake's decoders: a
// hello, settings, then a verdict. They never panic, never read more than
// their bounds, fail only with a wrong magic, malformed settings or a short
// input, and what they accept re-encodes to the bytes they read.
func FuzzHandshakeDecode(f *testing.F) {
	h := hello{version: ProtocolVersion, label: "test-cluster", self: 1, want: 2, flags: flagKey}
	h.nonce[3] = 9
	f.Add(append(encodeHello(h), encodeVerdict(verdict{status: statusOK})...))
	h.flags |= flagSettings
	f.Add(append(append(encodeHello(h), encodeSettings(settings{maxMessage: 1 << 16})...), encodeVerdict(verdict{status: statusOK})...))
	f.Add(append(encodeHello(h), 3, 1, 2, 3))
	f.Add(append(encodeHello(hello{version: ProtocolVersion, status: statusRefused, reason: "no"}),
		encodeVerdict(verdict{status: statusRefused, reason: "not a member"})...))
	f.Add(encodeHello(hello{version: 1, label: "old", self: 5}))
	f.Add([]byte("TRLS\x02\x00\xff"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &byteCounter{r: bytes.NewReader(b)}
		h, err := readHello(cr, ProtocolVersion)
		if cr.n > maxHelloLen {
			t.Fatalf("readHello read %d bytes, bound %d", cr.n, maxHelloLen)
		}
		if err != nil {
			var bad errBadMagic
			if !errors.As(err, &bad) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("readHello: %T %v", err, err)
			}
			return
		}
		if h.version == ProtocolVersion || h.version < 2 {
			if back := encodeHello(h); !bytes.Equal(back, b[:cr.n]) {
				t.Fatalf("hello re-encodes to % x, read % x", back, b[:cr.n])
			}
		}
		rest := b[cr.n:]
		sr := &byteCounter{r: bytes.NewReader(rest)}
		set, raw, err := readSettings(sr)
		if sr.n > maxSettingsLen {
			t.Fatalf("readSettings read %d bytes, bound %d", sr.n, maxSettingsLen)
		}
		if err != nil {
			var bad errBadSettings
			if !errors.As(err, &bad) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("readSettings: %T %v", err, err)
			}
			return
		}
		if !bytes.Equal(raw, rest[:sr.n]) || set.maxMessage == 0 {
			t.Fatalf("readSettings returned % x and cap %d, read % x", raw, set.maxMessage, rest[:sr.n])
		}
		if back := encodeSettings(set); len(raw) == 1+minSettingsLen && !bytes.Equal(back, raw) {
			t.Fatalf("settings re-encode to % x, read % x", back, raw)
		}
		rest = rest[sr.n:]
		vr := &byteCounter{r: bytes.NewReader(rest)}
		v, err := readVerdict(vr)
		if vr.n > maxVerdictLen {
			t.Fatalf("readVerdict read %d bytes, bound %d", vr.n, maxVerdictLen)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("readVerdict: %T %v", err, err)
			}
			return
		}
		if back := encodeVerdict(v); v.status <= statusRefused && !bytes.Equal(back, rest[:vr.n]) {
			t.Fatalf("verdict re-encodes to % x, read % x", back, rest[:vr.n])
		}
	})
}

// scriptConn is a net.Conn that reads a fixed script and discards writes.
type scriptConn struct {
	r io.Reader
}

func (c *scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 2} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzAcceptorHandshake runs the acceptor's side of the handshake against
// arbitrary dialer bytes: no input made without the cluster key gets in,
// and the acceptor fails with a *HandshakeError, never a panic.
func FuzzAcceptorHandshake(f *testing.F) {
	ours := hello{version: ProtocolVersion, label: "test-cluster", self: 1, flags: flagKey}
	f.Add(append(encodeHello(ours), bytes.Repeat([]byte{1}, proofLen)...))
	ours.flags = flagKey | flagSettings
	f.Add(append(append(encodeHello(ours), encodeSettings(settings{maxMessage: 1000})...), bytes.Repeat([]byte{1}, proofLen)...))
	f.Add(append(encodeHello(ours), 0))
	ours.flags = 0
	f.Add(encodeHello(ours))
	f.Add([]byte("TRLS"))
	cfg := testConfig(2, nil)
	cfg = cfg.withDefaults()
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := serverHandshake(&scriptConn{r: bytes.NewReader(b)}, &cfg, "")
		if err == nil {
			t.Fatalf("admitted node %s without the key", id.id)
		}
		var he *HandshakeError
		if !errors.As(err, &he) {
			t.Fatalf("error %T %v, want a *HandshakeError", err, err)
		}
	})
}

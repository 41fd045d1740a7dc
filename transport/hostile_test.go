package transport

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
)

// hostileConn is an accepted, started connection whose peer is a raw socket
// that completed a valid handshake by hand.
type hostileConn struct {
	raw  net.Conn
	conn *Conn
	rec  *recorder
	logs *logRecorder
}

func newHostileConn(t *testing.T, cfg func(*Config)) *hostileConn {
	t.Helper()
	logs := newLogRecorder()
	lcfg := testConfig(2, logs)
	if cfg != nil {
		cfg(&lcfg)
	}
	l := listen(t, lcfg)
	h := &hostileConn{raw: rawDial(t, l.Addr().String(), 1, "test-cluster"), logs: logs, rec: newRecorder(16)}
	h.conn = accept(t, l)
	closeAtEnd(t, h.conn)
	h.conn.Start(h.rec)
	return h
}

// TestHostileInput sends malformed streams on an accepted connection: each
// must close it with a *ProtocolError that says what was wrong, reported to
// HandleClosed and logged, without a panic and without delivering the bad
// message.
func TestHostileInput(t *testing.T) {
	huge := frameBytes(1, 0, 1, nil)
	huge[0], huge[1], huge[2], huge[3] = 0xFF, 0xFF, 0xFF, 0xFF
	reserved := frameBytes(1, 0, 1, []byte("x"))
	reserved[7] = 1
	random := make([]byte, 4096)
	rand.NewChaCha8([32]byte{'r'}).Read(random)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name      string
		cfg       func(*Config)
		send      []byte
		closeSend bool   // half-close after sending (EOF)
		delivered int    // good messages sent before the bad part
		reason    string // in the *ProtocolError
	}{
		{name: "4 GiB length prefix", send: huge, reason: "frame length 4294967295 exceeds the cap of 262144 bytes"},
		{name: "length one over the cap", send: frameBytes(1, 0, 1, make([]byte, MaxFramePayload+1)), reason: "frame length 262145 exceeds the cap"},
		{name: "unknown type", send: frameBytes(0xF9, 0, 1, nil), reason: "unknown frame type 0xf9"},
		{name: "kind zero", send: frameBytes(0, 0, 1, []byte("x")), reason: "unknown frame type 0x0"},
		{name: "bad flags", send: frameBytes(1, 0x04, 1, []byte("x")), reason: "unknown frame flags 0x4"},
		{name: "non-zero reserved", send: reserved, reason: "non-zero reserved bytes in frame header"},
		{name: "ping with payload", send: frameBytes(framePing, 0, 1, []byte("x")), reason: "control frame 0xf0 with a payload or flags"},
		{name: "truncated header then EOF", send: cat(frameBytes(1, 0, 1, []byte("ok")), frameBytes(1, 0, 2, nil)[:7]), closeSend: true, delivered: 1, reason: "connection closed inside a frame header"},
		{name: "header then EOF", send: frameBytes(1, FlagMore, 1, make([]byte, 100))[:16], closeSend: true, reason: "connection closed inside a frame payload"},
		{name: "truncated payload then EOF", send: frameBytes(1, 0, 1, []byte("hello"))[:18], closeSend: true, reason: "connection closed inside a frame payload"},
		{
			name:   "fragments beyond MaxMessageSize",
			cfg:    func(c *Config) { c.MaxMessageSize = 100 << 10 },
			send:   cat(frameBytes(1, FlagMore, 1, make([]byte, MaxFramePayload)), frameBytes(1, 0, 1, make([]byte, MaxFramePayload))),
			reason: "message 1 of kind 1 exceeds the cap of 102400 bytes",
		},
		{
			name:      "single frame beyond MaxMessageSize",
			cfg:       func(c *Config) { c.MaxMessageSize = 10 },
			send:      cat(frameBytes(1, 0, 1, make([]byte, 10)), frameBytes(1, 0, 2, make([]byte, 11))),
			delivered: 1,
			reason:    "message 2 of kind 1 exceeds the cap of 10 bytes",
		},
		{
			name:   "partial messages beyond MaxPartialBytes",
			cfg:    func(c *Config) { c.MaxPartialBytes = 1 << 20 },
			send:   cat(bytes.Repeat(frameBytes(1, FlagMore, 1, make([]byte, MaxFramePayload)), 12), bytes.Repeat(frameBytes(2, FlagMore, 1, make([]byte, MaxFramePayload)), 12)),
			reason: "partly received messages exceed the cap of 1048576 bytes",
		},
		{name: "random bytes", send: random, reason: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			h := newHostileConn(t, tt.cfg)
			go func() {
				// The connection may close before all is written.
				h.raw.Write(tt.send)
				if tt.closeSend {
					h.raw.(*net.TCPConn).CloseWrite()
				}
			}()
			err := h.rec.waitClosed(t)
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tt.reason) {
				t.Fatalf("HandleClosed(%v), want a *ProtocolError saying %q", err, tt.reason)
			}
			if got := h.conn.Err(); got != err {
				t.Errorf("Err() = %v, want %v", got, err)
			}
			h.logs.waitFor(t, "connection closed", "protocol error: "+tt.reason)
			if n := len(h.rec.msgs); n != tt.delivered {
				t.Errorf("%d messages delivered, want %d", n, tt.delivered)
			}
			waitEOF(t, h.raw) // the connection is closed
		})
	}
}

// TestHandlerError checks that an error returned by HandleMessage closes
// the connection with that error as the reason.
func TestHandlerError(t *testing.T) {
	checkLeaks(t)
	h := newHostileConn(t, nil)
	bad := &ProtocolError{Reason: "message 3 makes no sense"}
	h.rec.onMsg = func(m message) error {
		if m.id == 3 {
			return bad
		}
		return nil
	}
	h.raw.Write(frameBytes(1, 0, 2, nil))
	h.raw.Write(frameBytes(1, 0, 3, nil))
	if err := h.rec.waitClosed(t); err != bad {
		t.Errorf("HandleClosed(%v), want the handler's error", err)
	}
	h.logs.waitFor(t, "connection closed", "message 3 makes no sense")
	waitEOF(t, h.raw)
}

// TestPeerClosesAbruptly checks the reason given when the peer closes at a
// frame boundary without a GoAway.
func TestPeerClosesAbruptly(t *testing.T) {
	checkLeaks(t)
	h := newHostileConn(t, nil)
	h.raw.Write(frameBytes(1, 0, 1, []byte("last words")))
	h.raw.Close()
	if err := h.rec.waitClosed(t); !errors.Is(err, ErrPeerGone) {
		t.Errorf("HandleClosed(%v), want ErrPeerGone", err)
	}
	if m := h.rec.next(t); string(m.payload) != "last words" {
		t.Errorf("got %q", m.payload)
	}
	h.logs.waitFor(t, "connection closed", "closed by peer")
}

// TestGoAwayReportedOnce checks that repeated GoAway frames reach the
// Handler once.
func TestGoAwayReportedOnce(t *testing.T) {
	checkLeaks(t)
	h := newHostileConn(t, nil)
	goAway := frameBytes(frameGoAway, 0, 0, nil)
	h.raw.Write(bytes.Repeat(goAway, 3))
	h.raw.Write(frameBytes(1, 0, 8, nil))
	h.rec.next(t) // the frames before it have been handled
	if !h.conn.GoneAway() {
		t.Error("GoneAway() = false after a GoAway")
	}
	h.raw.Close()
	h.rec.waitClosed(t)
	if got := strings.Join(h.rec.eventLog(), ","); got != "goaway,msg 8,closed" {
		t.Errorf("events %s, want goaway,msg 8,closed", got)
	}
	// ErrPeerGone after a goodbye is the normal end: not logged as a failure.
	if l := h.logs.find("INFO", "connection closed"); l != "" {
		t.Errorf("logged %q", l)
	}
	h.logs.waitFor(t, "DEBUG", "closed by peer after goodbye")
}

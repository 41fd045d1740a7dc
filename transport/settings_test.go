package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// insecure makes cfg admit peers without a key.
func insecure(cfg Config) Config {
	cfg.Keyring, cfg.Insecure = nil, true
	return cfg
}

// Each end announces its MaxMessageSize in the handshake; a message over
// the peer's cap is refused by Send with ErrTooLarge, which names the
// receiver's cap, and the connection stays up. Before, it was sent, and
// the receiver closed the connection with a protocol error.
func TestMessageCapAnnounced(t *testing.T) {
	const small = 1000
	tests := []struct {
		name         string
		dialerMax    int
		acceptorMax  int
		withoutKey   bool
		sender       string // "dialer" or "acceptor": the end with the larger cap
		senderPeerID nodeid.ID
	}{
		{"acceptor's cap smaller", 0, small, false, "dialer", 2},
		{"dialer's cap smaller", small, 0, false, "acceptor", 1},
		{"acceptor's cap smaller, no key", 0, small, true, "dialer", 2},
		{"dialer's cap smaller, no key", small, 0, true, "acceptor", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			dcfg, lcfg := testConfig(1, nil), testConfig(2, nil)
			if tt.withoutKey {
				dcfg, lcfg = insecure(dcfg), insecure(lcfg)
			}
			dcfg.MaxMessageSize, lcfg.MaxMessageSize = tt.dialerMax, tt.acceptorMax
			d, a := pair(t, dcfg, lcfg)
			dr, ar := newRecorder(4), newRecorder(4)
			d.Start(dr)
			a.Start(ar)
			for _, c := range []*Conn{d, a} {
				if c.MaxSend() != small {
					t.Errorf("node %s: MaxSend = %d, want %d", c.Local(), c.MaxSend(), small)
				}
			}
			if d.PeerMaxMessageSize() != cmpOr(tt.acceptorMax, defaultMaxMessage) || a.PeerMaxMessageSize() != cmpOr(tt.dialerMax, defaultMaxMessage) {
				t.Errorf("PeerMaxMessageSize: dialer %d, acceptor %d; want %d, %d", d.PeerMaxMessageSize(), a.PeerMaxMessageSize(), cmpOr(tt.acceptorMax, defaultMaxMessage), cmpOr(tt.dialerMax, defaultMaxMessage))
			}
			send, recv := d, ar
			if tt.sender == "acceptor" {
				send, recv = a, dr
			}
			sends := []struct {
				name string
				send func(context.Context, Kind, uint64, *Buffer) error
			}{{"Send", send.Send}, {"SendInline", send.SendInline}, {"SendBulkInline", send.SendBulkInline}, {"SendReplyInline", send.SendReplyInline}}
			for _, s := range sends {
				err := s.send(ctxT(t), 1, 1, bufferOf(make([]byte, small+1)))
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("%s of %d bytes: %v, want ErrTooLarge", s.name, small+1, err)
				}
				want := "1001 bytes, the cap is 1000 (the MaxMessageSize of node " + send.Remote().String() + ", the receiver"
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error %q does not say %q", s.name, err, want)
				}
			}
			// The connection is still up, and a message at the cap passes.
			if err := send.Send(ctxT(t), 1, 2, bufferOf(make([]byte, small))); err != nil {
				t.Fatal(err)
			}
			if m := recv.next(t); m.id != 2 || len(m.payload) != small {
				t.Errorf("got message %d of %d bytes, want message 2 of %d", m.id, len(m.payload), small)
			}
			select {
			case <-d.Done():
				t.Fatalf("the connection closed: %v", d.Err())
			case <-a.Done():
				t.Fatalf("the connection closed: %v", a.Err())
			default:
			}
		})
	}
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// A peer that exchanges no settings (protocol 2 before them) is admitted
// either way round, and is assumed to have the default cap.
func TestMessageCapOlderPeer(t *testing.T) {
	checkLeaks(t)
	const big = 128 << 20
	t.Run("older acceptor", func(t *testing.T) {
		addr := rawServer(t, func(nc net.Conn) {
			rawAccept(nc, 2)
			io.Copy(io.Discard, nc)
		})
		cfg := testConfig(1, nil)
		cfg.MaxMessageSize = big
		c, err := Dial(ctxT(t), addr, cfg, 2)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Abort(nil)
		if c.MaxSend() != defaultMaxMessage || c.PeerMaxMessageSize() != defaultMaxMessage {
			t.Errorf("MaxSend %d, PeerMaxMessageSize %d; want both %d", c.MaxSend(), c.PeerMaxMessageSize(), defaultMaxMessage)
		}
	})
	t.Run("older dialer", func(t *testing.T) {
		cfg := testConfig(2, nil)
		cfg.MaxMessageSize = big
		l := listen(t, cfg)
		rawDial(t, l.Addr().String(), 1, "test-cluster") // checks that the acceptor's flags are the key's alone
		c := accept(t, l)
		defer c.Abort(nil)
		if c.MaxSend() != defaultMaxMessage || c.PeerMaxMessageSize() != defaultMaxMessage {
			t.Errorf("MaxSend %d, PeerMaxMessageSize %d; want both %d", c.MaxSend(), c.PeerMaxMessageSize(), defaultMaxMessage)
		}
	})
}

// rawSettings lays out a settings block by hand.
func rawSettings(fields []byte) []byte {
	return append([]byte{byte(len(fields))}, fields...)
}

// capField is a maxMessage field.
func capField(n uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, n)
}

// The settings are read within their bounds, checked, and covered by the
// proofs: a dialer's settings changed on the way, or left out of its
// proof, get it refused; fields after those known are ignored.
func TestSettingsChecked(t *testing.T) {
	tests := []struct {
		name   string
		sent   []byte // the dialer's settings as sent
		proven []byte // as its proof covers them
		cap    int    // the cap the acceptor learns; 0: refused
		reason string
	}{
		{"valid", rawSettings(capField(5000)), rawSettings(capField(5000)), 5000, ""},
		{"a longer block", rawSettings(append(capField(7000), 1, 2, 3)), rawSettings(append(capField(7000), 1, 2, 3)), 7000, ""},
		{"changed on the way", rawSettings(capField(6000)), rawSettings(capField(5000)), 0, "did not prove it holds a cluster key"},
		{"left out of the proof", rawSettings(capField(5000)), nil, 0, "did not prove it holds a cluster key"},
		{"too short", rawSettings([]byte{1, 2, 3}), nil, 0, "malformed settings: 3 bytes, want at least 8"},
		{"a cap of 0", rawSettings(capField(0)), nil, 0, "malformed settings: a message cap of 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			logs := newLogRecorder()
			l := listen(t, testConfig(2, logs))
			nc, err := net.DialTimeout("tcp", l.Addr().String(), waitLimit)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(waitLimit))
			ours := rawHello{magic: Magic, version: ProtocolVersion, label: "test-cluster", self: 1, flags: uint8(flagKey | flagSettings)}
			rand.Read(ours.nonce[:])
			if _, err := nc.Write(ours.bytes()); err != nil {
				t.Fatal(err)
			}
			h, err := readRawHello(nc)
			if err != nil || h.status != 0 || h.flags != ours.flags {
				t.Fatalf("the acceptor's hello: %+v, %v; want status 0 and flags %d", h, err, ours.flags)
			}
			var n [1]byte
			if _, err := io.ReadFull(nc, n[:]); err != nil {
				t.Fatal(err)
			}
			theirs := make([]byte, 1+int(n[0]))
			theirs[0] = n[0]
			if _, err := io.ReadFull(nc, theirs[1:]); err != nil {
				t.Fatal(err)
			}
			if want := rawSettings(capField(defaultMaxMessage)); !bytes.Equal(theirs, want) {
				t.Fatalf("the acceptor's settings: % x, want % x", theirs, want)
			}
			out := append([]byte(nil), tt.sent...)
			if tt.proven != nil {
				out = append(out, rawProof(testKey, "dialer", ours, h, tt.proven, theirs)...)
			} else {
				out = append(out, rawProof(testKey, "dialer", ours, h)...)
			}
			if _, err := nc.Write(out); err != nil {
				t.Fatal(err)
			}
			if tt.cap == 0 {
				logs.waitFor(t, "handshake failed", tt.reason)
				return
			}
			status, reason, _, err := readRawVerdict(nc)
			if err != nil || status != 0 {
				t.Fatalf("verdict: status %d %q, %v", status, reason, err)
			}
			c := accept(t, l)
			defer c.Abort(nil)
			if c.PeerMaxMessageSize() != tt.cap || c.MaxSend() != tt.cap {
				t.Errorf("PeerMaxMessageSize %d, MaxSend %d; want %d", c.PeerMaxMessageSize(), c.MaxSend(), tt.cap)
			}
		})
	}
}

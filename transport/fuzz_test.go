package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzParseHeader checks that ParseHeader never panics, refuses with a
// *ProtocolError, and accepts only headers that re-encode to the same bytes
// and respect every rule of the format.
func FuzzParseHeader(f *testing.F) {
	f.Add(frameBytes(1, 0, 1, nil))
	f.Add(frameBytes(KindMax, FlagMore, 1<<63, nil))
	f.Add(frameBytes(framePing, 0, 9, nil))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte("TRLS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("ParseHeader error %T %v, want a *ProtocolError", err, err)
			}
			return
		}
		if len(b) < HeaderSize {
			t.Fatalf("accepted a %d-byte header", len(b))
		}
		if h.Length > MaxFramePayload || h.Kind == 0 || h.Kind > frameGoAway || h.Flags&^FlagMore != 0 ||
			(h.Kind > KindMax && (h.Length != 0 || h.Flags != 0)) {
			t.Fatalf("accepted an invalid header %+v", h)
		}
		var back [HeaderSize]byte
		putHeader(back[:], h)
		if !bytes.Equal(back[:], b[:HeaderSize]) {
			t.Fatalf("% x parsed as %+v, which encodes as % x", b[:HeaderSize], h, back)
		}
	})
}

// delivered is one message as delivered.
type delivered struct {
	kind    Kind
	id      uint64
	payload string
}

// fuzzHandler records what Conn.read delivers.
type fuzzHandler struct {
	maxMessage int
	got        []delivered
	goAways    int
}

func (h *fuzzHandler) HandleMessage(kind Kind, id uint64, payload []byte) error {
	if kind == 0 || kind > KindMax {
		return fmt.Errorf("delivered kind %d", kind)
	}
	if len(payload) > h.maxMessage {
		return fmt.Errorf("delivered %d bytes, over the cap of %d", len(payload), h.maxMessage)
	}
	h.got = append(h.got, delivered{kind, id, string(payload)})
	return nil
}

func (h *fuzzHandler) HandleGoAway()      { h.goAways++ }
func (h *fuzzHandler) HandleClosed(error) {}

// refDecode is a reference decoder of the frame stream, written for
// clarity, without caps on partial messages: what Conn.read must deliver
// when those caps are not reached.
func refDecode(b []byte, maxMessage int) (got []delivered, clean bool) {
	type key struct {
		kind byte
		id   uint64
	}
	partial := make(map[key][]byte)
	for {
		if len(b) == 0 {
			return got, true
		}
		if len(b) < 16 {
			return got, false
		}
		n := binary.BigEndian.Uint32(b)
		kind, flags, id := b[4], b[5], binary.BigEndian.Uint64(b[8:])
		valid := n <= MaxFramePayload && kind != 0 && kind <= byte(frameGoAway) && flags&^FlagMore == 0 &&
			b[6] == 0 && b[7] == 0 && (kind <= byte(KindMax) || n == 0 && flags == 0)
		if !valid || len(b) < 16+int(n) {
			return got, false
		}
		payload := b[16 : 16+n]
		b = b[16+n:]
		if kind > byte(KindMax) {
			continue
		}
		k := key{kind, id}
		prev, open := partial[k]
		if len(prev)+int(n) > maxMessage {
			return got, false
		}
		msg := append(prev, payload...)
		if flags&FlagMore != 0 {
			partial[k] = msg
			continue
		}
		if open {
			delete(partial, k)
		}
		got = append(got, delivered{Kind(kind), id, string(msg)})
	}
}

// FuzzReadFrames feeds arbitrary bytes, as the stream that follows the
// handshake, to the connection's read path. It must never panic nor
// deliver an invalid or oversized message; it must end with a
// *ProtocolError or, at a frame boundary, ErrPeerGone; and, with caps that
// do not bite, it must deliver exactly what a reference decoder does.
func FuzzReadFrames(f *testing.F) {
	f.Add(frameBytes(1, 0, 1, []byte("hello")))
	f.Add(append(frameBytes(2, FlagMore, 7, []byte("frag")), frameBytes(2, 0, 7, []byte("ment"))...))
	f.Add(append(frameBytes(framePing, 0, 1, nil), frameBytes(frameGoAway, 0, 0, nil)...))
	f.Add(append(frameBytes(1, FlagMore, 3, []byte("re")), frameBytes(4, 0, 3, []byte("other kind"))...))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add(append(frameBytes(1, 0, 1, bytes.Repeat([]byte("bulk"), 5000)), frameBytes(3, 0, 2, []byte("after"))...))
	f.Add(append(frameBytes(2, 0, 1, bytes.Repeat([]byte("x"), 300)), frameBytes(1, 0, 2, []byte("trunc"))[:19]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return // big inputs add nothing that small fragments do not test
		}
		for _, caps := range []struct{ message, partial int }{{1 << 20, 1 << 30}, {100, 300}} {
			cfg := Config{Self: 1, MaxMessageSize: caps.message, MaxPartialBytes: caps.partial}
			cfg = cfg.withDefaults()
			c := newConn(fakeConn{}, &cfg, 2)
			h := &fuzzHandler{maxMessage: caps.message}
			err := c.read(bytes.NewReader(b), h)
			var pe *ProtocolError
			if err == nil || !errors.As(err, &pe) && !errors.Is(err, ErrPeerGone) {
				t.Fatalf("read ended with %T %v, want a *ProtocolError or ErrPeerGone", err, err)
			}
			if caps.partial < 1<<30 {
				continue
			}
			want, clean := refDecode(b, caps.message)
			if clean != errors.Is(err, ErrPeerGone) {
				t.Fatalf("read ended with %v; the reference decoder ended cleanly: %v", err, clean)
			}
			if len(h.got) != len(want) {
				t.Fatalf("delivered %d messages, the reference %d:\n%v\n%v", len(h.got), len(want), h.got, want)
			}
			for i := range want {
				if h.got[i] != want[i] {
					t.Fatalf("message %d: %+v, the reference %+v", i, h.got[i], want[i])
				}
			}
		}
		// The same through a BodyHandler that reads some kinds' bodies
		// itself, in several ways, from a reader that returns short reads:
		// the messages must be the same, and so must the end.
		want, clean := refDecode(b, 1<<20)
		for _, wrap := range []func(io.Reader) io.Reader{iotest.HalfReader, iotest.OneByteReader} {
			cfg := Config{Self: 1, MaxMessageSize: 1 << 20, MaxPartialBytes: 1 << 30}
			cfg = cfg.withDefaults()
			c := newConn(fakeConn{}, &cfg, 2)
			h := &bodyRecorder{c: c, actions: map[Kind]bodyAction{1: readAll, 2: readSplit, 3: takeBytes, 5: readAll, 6: readSplit, 7: takeBytes}}
			err := c.read(wrap(bytes.NewReader(b)), h)
			var pe *ProtocolError
			if err == nil || !errors.As(err, &pe) && !errors.Is(err, ErrPeerGone) {
				t.Fatalf("body path: read ended with %T %v, want a *ProtocolError or ErrPeerGone", err, err)
			}
			if clean != errors.Is(err, ErrPeerGone) {
				t.Fatalf("body path: read ended with %v; the reference decoder ended cleanly: %v", err, clean)
			}
			if len(h.got) != len(want) {
				t.Fatalf("body path: delivered %d messages, the reference %d", len(h.got), len(want))
			}
			for i := range want {
				if h.got[i] != want[i] {
					t.Fatalf("body path: message %d: %.60q, the reference %.60q", i, h.got[i].payload, want[i].payload)
				}
			}
		}
	})
}

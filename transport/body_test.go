package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
)

// bodyAction is how a bodyRecorder reads a body.
type bodyAction int

const (
	readAll      bodyAction = iota // Peek, then ReadFull of everything
	readSplit                      // ReadFull of a third, then Bytes
	takeBytes                      // Bytes, then TakePayload
	readNothing                    // leave it all to the transport
	discardHalf                    // Discard half, then Bytes
	failHandler                    // read a little, then return an error
	swallowError                   // read past a failure, return nil
)

// bodyRecorder is a BodyHandler that reads the bodies of the kinds it has
// an action for, and records every message as the payload it reconstructs.
type bodyRecorder struct {
	c       *Conn
	actions map[Kind]bodyAction
	got     []delivered
	peeked  []string
	bodyErr error // the last error a Body returned
}

func (h *bodyRecorder) HandleMessage(kind Kind, id uint64, payload []byte) error {
	h.got = append(h.got, delivered{kind, id, string(payload)})
	return nil
}
func (h *bodyRecorder) HandleGoAway()      {}
func (h *bodyRecorder) HandleClosed(error) {}

func (h *bodyRecorder) WantBody(kind Kind, n int) bool {
	_, ok := h.actions[kind]
	return ok
}

func (h *bodyRecorder) HandleBody(kind Kind, id uint64, b *Body) error {
	n := b.Len()
	var got []byte
	keep := func(err error) error {
		if err != nil {
			h.bodyErr = err
		}
		return err
	}
	switch h.actions[kind] {
	case readAll:
		head, err := b.Peek(8)
		if keep(err) != nil {
			return err
		}
		h.peeked = append(h.peeked, string(head))
		got = make([]byte, n)
		if err := keep(b.ReadFull(got)); err != nil {
			return err
		}
	case readSplit:
		got = make([]byte, n/3)
		if err := keep(b.ReadFull(got)); err != nil {
			return err
		}
		rest, err := b.Bytes()
		if keep(err) != nil {
			return err
		}
		got = append(got, rest...)
	case takeBytes:
		if _, err := b.Bytes(); keep(err) != nil {
			return err
		}
		p := h.c.TakePayload()
		got = bytes.Clone(p.Bytes())
		p.Release()
	case readNothing:
		got = []byte(fmt.Sprintf("skipped %d", n))
	case discardHalf:
		if err := keep(b.Discard(n / 2)); err != nil {
			return err
		}
		rest, err := b.Bytes()
		if keep(err) != nil {
			return err
		}
		got = []byte(fmt.Sprintf("discarded %d then %q", n/2, rest))
	case failHandler:
		b.Peek(1)
		return errors.New("handler refuses")
	case swallowError:
		keep(b.ReadFull(make([]byte, n)))
		return nil
	}
	if b.Len() != 0 && h.actions[kind] != readNothing {
		return fmt.Errorf("%d bytes left after reading", b.Len())
	}
	h.got = append(h.got, delivered{kind, id, string(got)})
	return nil
}

func TestBodyHandler(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), MaxFramePayload/16)
	mid := big[:directRead+5]
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		in      []byte
		actions map[Kind]bodyAction
		want    []string // payloads as recorded, in order
		peeked  []string
		wantErr string // in the *ProtocolError; "" for ErrPeerGone
	}{
		{
			name:    "read whole, then a message as usual",
			in:      cat(frameBytes(1, 0, 1, big), frameBytes(2, 0, 2, []byte("small"))),
			actions: map[Kind]bodyAction{1: readAll},
			want:    []string{string(big), "small"},
			peeked:  []string{"01234567"},
		},
		{
			name:    "bulk frames back to back",
			in:      cat(frameBytes(1, 0, 1, big), frameBytes(1, 0, 2, mid), frameBytes(1, 0, 3, []byte("x")), frameBytes(1, 0, 4, big)),
			actions: map[Kind]bodyAction{1: readAll},
			want:    []string{string(big), string(mid), "x", string(big)},
			peeked:  []string{"01234567", "01234567", "x", "01234567"},
		},
		{
			name:    "split read",
			in:      cat(frameBytes(1, 0, 1, big), frameBytes(1, 0, 2, []byte("abcdef"))),
			actions: map[Kind]bodyAction{1: readSplit},
			want:    []string{string(big), "abcdef"},
		},
		{
			name:    "payload taken",
			in:      cat(frameBytes(3, 0, 1, mid), frameBytes(3, 0, 2, nil)),
			actions: map[Kind]bodyAction{3: takeBytes},
			want:    []string{string(mid), ""},
		},
		{
			name:    "unread bodies are skipped",
			in:      cat(frameBytes(1, 0, 1, big), frameBytes(2, 0, 2, []byte("after")), frameBytes(1, 0, 3, []byte("tiny"))),
			actions: map[Kind]bodyAction{1: readNothing},
			want:    []string{fmt.Sprintf("skipped %d", len(big)), "after", "skipped 4"},
		},
		{
			name:    "discard",
			in:      frameBytes(1, 0, 1, []byte("0123456789")),
			actions: map[Kind]bodyAction{1: discardHalf},
			want:    []string{`discarded 5 then "56789"`},
		},
		{
			name:    "fragments never go to HandleBody",
			in:      cat(frameBytes(1, FlagMore, 1, []byte("frag")), frameBytes(1, 0, 1, []byte("ment")), frameBytes(1, 0, 2, []byte("whole"))),
			actions: map[Kind]bodyAction{1: readAll},
			want:    []string{"fragment", "whole"},
			peeked:  []string{"whole"},
		},
		{
			name:    "the connection ends inside a body",
			in:      frameBytes(1, 0, 1, big)[:HeaderSize+1000],
			actions: map[Kind]bodyAction{1: readAll},
			wantErr: "connection closed inside a frame payload",
		},
		{
			name:    "the connection ends inside a skipped body",
			in:      frameBytes(1, 0, 1, big)[:HeaderSize+directRead+1],
			actions: map[Kind]bodyAction{1: readNothing},
			want:    []string{fmt.Sprintf("skipped %d", len(big))}, // recorded before the skip fails
			wantErr: "connection closed inside a frame payload",
		},
		{
			name:    "a swallowed read error still closes the connection",
			in:      frameBytes(1, 0, 1, big)[:HeaderSize+5],
			actions: map[Kind]bodyAction{1: swallowError},
			wantErr: "connection closed inside a frame payload",
		},
		{
			name:    "a handler error closes the connection",
			in:      cat(frameBytes(1, 0, 1, []byte("no")), frameBytes(2, 0, 2, []byte("never"))),
			actions: map[Kind]bodyAction{1: failHandler},
			wantErr: "handler refuses",
		},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				cfg := Config{Self: 1}
				cfg = cfg.withDefaults()
				c := newConn(fakeConn{}, &cfg, 2)
				h := &bodyRecorder{c: c, actions: tt.actions}
				err := c.read(rd.wrap(bytes.NewReader(tt.in)), h)
				if tt.wantErr == "" {
					if !errors.Is(err, ErrPeerGone) {
						t.Fatalf("read ended with %v, want ErrPeerGone", err)
					}
				} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("read ended with %v, want an error saying %q", err, tt.wantErr)
				}
				if len(h.got) != len(tt.want) {
					t.Fatalf("%d messages, want %d", len(h.got), len(tt.want))
				}
				for i, w := range tt.want {
					if h.got[i].payload != w {
						t.Errorf("message %d: %.40q (%d bytes), want %.40q (%d bytes)", i, h.got[i].payload, len(h.got[i].payload), w, len(w))
					}
				}
				if tt.peeked != nil && !slicesEqual(h.peeked, tt.peeked) {
					t.Errorf("peeked %q, want %q", h.peeked, tt.peeked)
				}
			})
		}
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A Body refuses reads beyond its payload and use after HandleBody.
func TestBodyBounds(t *testing.T) {
	cfg := Config{Self: 1}
	cfg = cfg.withDefaults()
	c := newConn(fakeConn{}, &cfg, 2)
	var kept *Body
	var errs []error
	h := &funcBodyHandler{handle: func(b *Body) error {
		kept = b
		errs = append(errs, b.ReadFull(make([]byte, 11)), b.Discard(11), b.Discard(-1))
		if p, err := b.Peek(MaxPeek + 100); err != nil || string(p) != "0123456789" {
			return fmt.Errorf("Peek = %q, %v", p, err)
		}
		return nil
	}}
	err := c.read(bytes.NewReader(cat2(frameBytes(1, 0, 1, []byte("0123456789")), frameBytes(2, 0, 2, []byte("next")))), h)
	if !errors.Is(err, ErrPeerGone) {
		t.Fatalf("read: %v", err)
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("out-of-bounds call %d succeeded", i)
		}
	}
	if err := kept.ReadFull(make([]byte, 1)); !errors.Is(err, errBodyDone) {
		t.Errorf("ReadFull after HandleBody: %v, want errBodyDone", err)
	}
	if string(h.next) != "next" {
		t.Errorf("the next message is %q", h.next)
	}
}

func cat2(a, b []byte) []byte { return append(append([]byte(nil), a...), b...) }

type funcBodyHandler struct {
	handle func(*Body) error
	next   []byte
}

func (h *funcBodyHandler) HandleMessage(kind Kind, id uint64, p []byte) error {
	h.next = bytes.Clone(p)
	return nil
}
func (h *funcBodyHandler) HandleGoAway()                  {}
func (h *funcBodyHandler) HandleClosed(error)             {}
func (h *funcBodyHandler) WantBody(kind Kind, n int) bool { return kind == 1 }
func (h *funcBodyHandler) HandleBody(kind Kind, id uint64, b *Body) error {
	return h.handle(b)
}

// fillReader records the sizes of the reads made into buf.
type fillReader struct {
	r     io.Reader
	buf   []byte
	fills []int
}

func (f *fillReader) Read(p []byte) (int, error) {
	if c := cap(p); c > 0 && &p[:c][c-1] == &f.buf[len(f.buf)-1] { // p is a tail of buf
		f.fills = append(f.fills, len(p))
	}
	return f.r.Read(p)
}

// After a payload read straight from the socket, the next header is read
// with a small read, so the next bulk payload is not copied through the
// buffer either.
func TestBulkPayloadsBypassTheBuffer(t *testing.T) {
	big := bytes.Repeat([]byte{7}, MaxFramePayload)
	var in []byte
	for i := range 4 {
		in = append(in, frameBytes(1, 0, uint64(i), big)...)
	}
	in = append(in, frameBytes(2, 0, 9, []byte("small"))...)
	fill := &fillReader{r: bytes.NewReader(in)}
	fr := newFrameReader(fill, 1<<20, 1<<20)
	fill.buf = fr.r.buf
	for i := range 5 {
		if _, p, err := fr.next(); err != nil || len(p) != len(big) && i < 4 {
			t.Fatalf("next: %d bytes, %v", len(p), err)
		}
	}
	if len(fill.fills) < 5 {
		t.Fatalf("%d reads into the buffer, want one per header at least: %v", len(fill.fills), fill.fills)
	}
	for i, n := range fill.fills[1:] {
		if n > HeaderSize+smallFill {
			t.Errorf("read %d into the buffer asked for %d bytes: the buffer was filled between bulk payloads (reads %v)", i+1, n, fill.fills)
		}
	}
}

// The writer sends a large payload from its own buffer, after the small
// frames batched before it, byte for byte, over TCP (writev) and over a
// connection without vectored writes.
func TestFrameWriterVectored(t *testing.T) {
	big := bytes.Repeat([]byte("trellis!"), MaxFramePayload/8)
	frames := []struct {
		kind    Kind
		payload []byte
	}{{1, []byte("a")}, {2, nil}, {1, big}, {3, big[:directWrite-1]}, {1, big[:directWrite]}, {4, []byte("z")}}
	var want []byte
	for i, f := range frames {
		want = append(want, frameBytes(f.kind, 0, uint64(i), f.payload)...)
	}
	for _, name := range []string{"tcp", "pipe"} {
		t.Run(name, func(t *testing.T) {
			var a, b net.Conn
			if name == "tcp" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				if a, err = net.Dial("tcp", ln.Addr().String()); err != nil {
					t.Fatal(err)
				}
				if b, err = ln.Accept(); err != nil {
					t.Fatal(err)
				}
			} else {
				a, b = net.Pipe()
			}
			defer a.Close()
			defer b.Close()
			got := make(chan []byte, 1)
			go func() {
				p, _ := io.ReadAll(io.LimitReader(b, int64(len(want))))
				got <- p
			}()
			cfg := Config{Self: 1}
			cfg = cfg.withDefaults()
			w := newFrameWriter(newConn(a, &cfg, 2))
			for i, f := range frames {
				if err := w.writeFrame(Header{Kind: f.kind, ID: uint64(i)}, f.payload); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if p := <-got; !bytes.Equal(p, want) {
				t.Fatalf("wrote %d bytes, not the %d expected", len(p), len(want))
			}
		})
	}
}

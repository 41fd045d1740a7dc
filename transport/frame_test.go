package transport

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	hdr := func(length uint32, kind Kind, flags uint8, reserved [2]byte, id uint64) []byte {
		b := frameBytes(kind, flags, id, nil)
		b[0], b[1], b[2], b[3] = byte(length>>24), byte(length>>16), byte(length>>8), byte(length)
		b[6], b[7] = reserved[0], reserved[1]
		return b
	}
	var zero [2]byte
	tests := []struct {
		name string
		in   []byte
		want Header
		err  string // substring of the *ProtocolError, "" for none
	}{
		{"message", hdr(5, 1, 0, zero, 42), Header{Length: 5, Kind: 1, ID: 42}, ""},
		{"fragment", hdr(MaxFramePayload, KindMax, FlagMore, zero, 1<<63), Header{Length: MaxFramePayload, Kind: KindMax, Flags: FlagMore, ID: 1 << 63}, ""},
		{"empty message", hdr(0, 7, 0, zero, 0), Header{Kind: 7}, ""},
		{"ping", hdr(0, framePing, 0, zero, 9), Header{Kind: framePing, ID: 9}, ""},
		{"pong", hdr(0, framePong, 0, zero, 9), Header{Kind: framePong, ID: 9}, ""},
		{"goaway", hdr(0, frameGoAway, 0, zero, 0), Header{Kind: frameGoAway}, ""},
		{"length over the cap", hdr(MaxFramePayload+1, 1, 0, zero, 1), Header{}, "frame length 262145 exceeds the cap of 262144 bytes"},
		{"length 4 GiB", hdr(0xFFFFFFFF, 1, 0, zero, 1), Header{}, "frame length 4294967295 exceeds the cap"},
		{"kind zero", hdr(1, 0, 0, zero, 1), Header{}, "unknown frame type 0x0"},
		{"kind after goaway", hdr(0, frameGoAway+1, 0, zero, 1), Header{}, "unknown frame type 0xf3"},
		{"kind 0xff", hdr(0, 0xFF, 0, zero, 1), Header{}, "unknown frame type 0xff"},
		{"unknown flag", hdr(1, 1, 2, zero, 1), Header{}, "unknown frame flags 0x2"},
		{"high flag", hdr(1, 1, 0x80|FlagMore, zero, 1), Header{}, "unknown frame flags 0x81"},
		{"reserved byte 6", hdr(1, 1, 0, [2]byte{1, 0}, 1), Header{}, "non-zero reserved bytes"},
		{"reserved byte 7", hdr(1, 1, 0, [2]byte{0, 0x80}, 1), Header{}, "non-zero reserved bytes"},
		{"ping with payload", hdr(8, framePing, 0, zero, 1), Header{}, "control frame 0xf0 with a payload or flags"},
		{"goaway with flags", hdr(0, frameGoAway, FlagMore, zero, 1), Header{}, "control frame 0xf2 with a payload or flags"},
		{"truncated", hdr(1, 1, 0, zero, 1)[:15], Header{}, "truncated frame header: 15 of 16 bytes"},
		{"empty", nil, Header{}, "truncated frame header: 0 of 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHeader(tt.in)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("ParseHeader: %v", err)
				}
				if h != tt.want {
					t.Errorf("ParseHeader = %+v, want %+v", h, tt.want)
				}
				var back [HeaderSize]byte
				putHeader(back[:], h)
				if !bytes.Equal(back[:], tt.in) {
					t.Errorf("putHeader(ParseHeader(b)) = % x, want % x", back, tt.in)
				}
				return
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tt.err) {
				t.Errorf("ParseHeader error %v, want a *ProtocolError saying %q", err, tt.err)
			}
		})
	}
}

func TestParseHeaderDoesNotAllocate(t *testing.T) {
	valid := frameBytes(3, FlagMore, 77, nil)
	if n := testing.AllocsPerRun(1000, func() { ParseHeader(valid) }); n != 0 {
		t.Errorf("ParseHeader allocates %v times per valid header, want 0", n)
	}
	// A refused header allocates its error, never anything sized by the
	// length it announces.
	huge := frameBytes(1, 0, 1, nil)
	huge[0], huge[1], huge[2], huge[3] = 0xFF, 0xFF, 0xFF, 0xFF
	if n := testing.AllocsPerRun(1000, func() { ParseHeader(huge) }); n > 8 {
		t.Errorf("ParseHeader allocates %v times for a refused header", n)
	}
}

// allocated returns the bytes allocated while f runs.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestOversizedLengthDoesNotAllocate drives the connection's read path with
// a 4 GiB length prefix followed by plenty of data and checks that it is
// refused having allocated only its fixed buffers.
func TestOversizedLengthDoesNotAllocate(t *testing.T) {
	input := frameBytes(1, 0, 1, nil)
	input[0], input[1], input[2], input[3] = 0xFF, 0xFF, 0xFF, 0xFF
	input = append(input, make([]byte, 1<<20)...)
	cfg := testConfig(1, nil)
	cfg = cfg.withDefaults()
	c := newConn(fakeConn{}, &cfg, 2)
	var err error
	n := allocated(func() { err = c.read(bytes.NewReader(input), newRecorder(1)) })
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "frame length 4294967295 exceeds the cap") {
		t.Fatalf("read: %v, want a *ProtocolError about the length", err)
	}
	// The read buffer (64 KiB) and the first payload buffer (4 KiB at most)
	// are the only sizeable allocations.
	if n > 128<<10 {
		t.Errorf("reading a 4 GiB length prefix allocated %d bytes", n)
	}
}

// TestFragmentsAllocateWhatArrives checks that a message announced in
// fragments allocates only for the bytes that actually arrive, and that
// the reader refuses the fragment that would cross MaxMessageSize before
// reading or allocating it.
func TestFragmentsAllocateWhatArrives(t *testing.T) {
	const limit = 256 << 10
	var input []byte
	chunk := make([]byte, MaxFramePayload)
	for range limit/MaxFramePayload + 1 {
		input = append(input, frameBytes(1, FlagMore, 5, chunk)...)
	}
	fr := newFrameReader(bytes.NewReader(input), limit, 1<<30)
	var err error
	n := allocated(func() { _, _, err = fr.next() })
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "exceeds the cap of 262144 bytes") {
		t.Fatalf("next: %v, want a *ProtocolError about the message cap", err)
	}
	if n > 2*limit {
		t.Errorf("reading %d bytes of fragments allocated %d bytes", limit, n)
	}
}

// TestFrameReader drives the reader through well-formed and malformed
// streams, checking what it returns and why it stops.
func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), (3*MaxFramePayload)/16+1)
	frag := func(kind Kind, id uint64, p []byte) []byte { // one message in fragments
		var out []byte
		for len(p) > MaxFramePayload {
			out = append(out, frameBytes(kind, FlagMore, id, p[:MaxFramePayload])...)
			p = p[MaxFramePayload:]
		}
		return append(out, frameBytes(kind, 0, id, p)...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	var emptyFragments []byte
	for i := range 21 {
		emptyFragments = append(emptyFragments, frameBytes(1, FlagMore, uint64(i+1), nil)...)
	}
	type msg struct {
		kind Kind
		id   uint64
		n    int
	}
	tests := []struct {
		name       string
		in         []byte
		maxMessage int
		maxPartial int
		want       []msg
		err        string // substring; "EOF" means a clean end
	}{
		{
			name: "messages and control frames",
			in:   cat(frameBytes(1, 0, 1, []byte("a")), frameBytes(framePing, 0, 7, nil), frameBytes(2, 0, 1, nil)),
			want: []msg{{1, 1, 1}, {framePing, 7, 0}, {2, 1, 0}},
			err:  "EOF",
		},
		{
			name: "fragments reassembled",
			in:   frag(3, 9, big),
			want: []msg{{3, 9, len(big)}},
			err:  "EOF",
		},
		{
			name: "fragments of the same id and different kinds kept apart",
			in: cat(frameBytes(1, FlagMore, 4, []byte("re")), frameBytes(2, 0, 4, []byte("response")),
				frameBytes(1, FlagMore, 4, []byte("que")), frameBytes(framePong, 0, 1, nil), frameBytes(1, 0, 4, []byte("st"))),
			want: []msg{{2, 4, 8}, {framePong, 1, 0}, {1, 4, 7}},
			err:  "EOF",
		},
		{
			name:       "unfragmented message over MaxMessageSize",
			in:         frameBytes(1, 0, 1, make([]byte, 100)),
			maxMessage: 99,
			err:        "message 1 of kind 1 exceeds the cap of 99 bytes",
		},
		{
			name:       "fragments over MaxMessageSize",
			in:         cat(frameBytes(1, FlagMore, 1, make([]byte, 60)), frameBytes(1, 0, 1, make([]byte, 60))),
			maxMessage: 100,
			err:        "message 1 of kind 1 exceeds the cap of 100 bytes",
		},
		{
			name:       "partial messages over MaxPartialBytes",
			in:         cat(frameBytes(1, FlagMore, 1, make([]byte, 60)), frameBytes(1, FlagMore, 2, make([]byte, 60))),
			maxPartial: 200,
			err:        "partly received messages exceed the cap of 200 bytes",
		},
		{
			name:       "empty fragments count against MaxPartialBytes",
			in:         emptyFragments, // many messages opened with an empty fragment each
			maxPartial: 10 * partialOverhead,
			err:        "partly received messages exceed the cap",
		},
		{
			name:       "partial bytes are released when a message completes",
			in:         cat(frag(1, 1, big), frag(1, 2, big), frag(1, 3, big)),
			maxPartial: len(big) + partialOverhead,
			want:       []msg{{1, 1, len(big)}, {1, 2, len(big)}, {1, 3, len(big)}},
			err:        "EOF",
		},
		{
			name: "truncated header",
			in:   frameBytes(1, 0, 1, nil)[:9],
			err:  "read frame header: unexpected EOF",
		},
		{
			name: "truncated payload",
			in:   frameBytes(1, 0, 1, []byte("hello"))[:19],
			err:  "read frame payload: unexpected EOF",
		},
		{
			name: "header then EOF",
			in:   frameBytes(1, 0, 1, []byte("hello"))[:16],
			err:  "read frame payload: unexpected EOF",
		},
		{
			name: "fragment header then EOF",
			in:   frameBytes(1, FlagMore, 1, []byte("hello"))[:16],
			err:  "read frame payload: unexpected EOF",
		},
		{
			name: "truncated fragment",
			in:   cat(frameBytes(1, FlagMore, 1, []byte("he")), frameBytes(1, 0, 1, []byte("llo"))[:17]),
			err:  "read frame payload: unexpected EOF",
		},
		{
			name: "bad header after good frames",
			in:   cat(frameBytes(1, 0, 1, nil), frameBytes(0xF7, 0, 1, nil)),
			want: []msg{{1, 1, 0}},
			err:  "unknown frame type 0xf7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.maxMessage == 0 {
				tt.maxMessage = 1 << 20
			}
			if tt.maxPartial == 0 {
				tt.maxPartial = 1 << 20
			}
			fr := newFrameReader(bytes.NewReader(tt.in), tt.maxMessage, tt.maxPartial)
			var got []msg
			var err error
			for {
				var h Header
				var p []byte
				h, p, err = fr.next()
				if err != nil {
					break
				}
				got = append(got, msg{h.Kind, h.ID, len(p)})
				if h.Kind == 3 && !bytes.Equal(p, big) {
					t.Errorf("reassembled message differs from what was sent")
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("message %d: got %v, want %v", i, got[i], tt.want[i])
				}
			}
			if tt.err == "EOF" {
				var re *readError
				if !errors.As(err, &re) || re.err != io.EOF {
					t.Errorf("stream ended with %v, want a clean EOF", err)
				}
				if fr.partialBytes != 0 || len(fr.partial) != 0 {
					t.Errorf("after the stream: %d partial bytes in %d messages", fr.partialBytes, len(fr.partial))
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("stream ended with %v, want %q", err, tt.err)
			}
		})
	}
}

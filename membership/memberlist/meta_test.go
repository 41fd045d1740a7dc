package memberlist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

func TestMetaRoundTrip(t *testing.T) {
	join := time.Unix(0, 1_700_000_000_123_456_789)
	inc := uint64(join.UnixNano())
	for _, tc := range []struct {
		name string
		in   info
	}{
		{"empty fields", info{inc: inc, join: join}},
		{"all fields", info{inc: inc, join: join, name: "node1", addr: "10.0.0.1:7001", meta: []byte("services=kv,http")}},
		{"incarnation set by the user", info{inc: 42, join: join, name: "node1", addr: "10.0.0.1:7001"}},
		{"restart one nanosecond later", info{inc: inc + 1, join: join}},
		{"incarnation above MaxInt64", info{inc: math.MaxUint64, join: join}},
		{"join time before 1970", info{inc: 1, join: time.Unix(-1_000_000, 7)}},
		{"leaving", info{inc: 3, join: join, name: "n", addr: "a", leaving: true}},
		{"longest name and addr", info{inc: 9, join: join, name: strings.Repeat("n", membership.MaxNameLen), addr: strings.Repeat("a", membership.MaxAddrLen),
			meta: bytes.Repeat([]byte{1}, MaxUserMeta(membership.MaxNameLen, membership.MaxAddrLen))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeMeta(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxNodeMeta {
				t.Fatalf("encoded %d bytes, limit %d", len(b), MaxNodeMeta)
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.inc != tc.in.inc || !got.join.Equal(tc.in.join) || got.name != tc.in.name ||
				got.addr != tc.in.addr || !bytes.Equal(got.meta, tc.in.meta) || got.leaving != tc.in.leaving {
				t.Errorf("decoded %+v, want %+v", got, tc.in)
			}
		})
	}
}

// TestMetaSize pins the encoding's size: memberlist sends every member's
// metadata in each full state exchange, N of them per exchange, so each byte
// here costs N bytes (before compression) per exchange. With the default
// incarnation (the start time, which is also the join time) the fixed part is
// 11 bytes: version, flags, incarnation and a one-byte join offset; the ID is
// not repeated (it is the memberlist name).
func TestMetaSize(t *testing.T) {
	join := time.Unix(0, 1_764_900_000_123_456_789)
	name, addr, user := "node-17", "10.1.0.17:7001", []byte("0123456789abcde")
	for _, tc := range []struct {
		name string
		inc  uint64
		want int
	}{
		{"default incarnation", uint64(join.UnixNano()), 11 + 1 + len(name) + 1 + len(addr) + len(user)},
		{"incarnation a second after the join", uint64(join.UnixNano()) + 1e9, 10 + 5 + 1 + len(name) + 1 + len(addr) + len(user)},
		{"small incarnation", 3, 10 + 9 + 1 + len(name) + 1 + len(addr) + len(user)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeMeta(info{inc: tc.inc, join: join, name: name, addr: addr, meta: user})
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.want {
				t.Errorf("encoded %d bytes, want %d", len(b), tc.want)
			}
		})
	}
}

func TestMetaOverflow(t *testing.T) {
	name, addr := "node-with-a-name", "10.0.0.1:7001"
	room := MaxUserMeta(len(name), len(addr))
	// Whatever the join time's offset from the incarnation, exactly room
	// bytes fit.
	for _, inc := range []uint64{0, 1_764_900_000_123_456_789, math.MaxUint64} {
		in := info{inc: inc, join: time.Unix(0, 1_764_900_000_123_456_789), name: name, addr: addr, meta: make([]byte, room)}
		b, err := encodeMeta(in)
		if err != nil {
			t.Fatalf("incarnation %d: meta of exactly %d bytes refused: %v", inc, room, err)
		}
		if _, err := decodeMeta(b); err != nil {
			t.Fatalf("incarnation %d: meta of exactly %d bytes does not decode: %v", inc, room, err)
		}
		in.meta = make([]byte, room+1)
		if _, err := encodeMeta(in); !errors.Is(err, ErrMetaTooLarge) {
			t.Fatalf("incarnation %d: meta of %d bytes: err %v, want ErrMetaTooLarge", inc, room+1, err)
		}
	}
	_, err := encodeMeta(info{name: name, addr: addr, meta: make([]byte, room+1)})
	// The error says how much fits and why.
	for _, want := range []string{"at most", "512"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// New refuses such a configuration up front.
	_, err = New(Config{Keys: [][]byte{make([]byte, 32)}, Name: name, Addr: addr, Meta: make([]byte, room+1)})
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("New with oversized meta: %v, want ErrMetaTooLarge", err)
	}
}

// metaV1 is the version 1 encoding of earlier builds: version, flags, ID,
// incarnation and join time (8 bytes each), name, address, user metadata.
func metaV1(id, inc uint64, join time.Time, name, addr string, meta []byte) []byte {
	b := []byte{1, 0}
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint64(b, inc)
	b = binary.BigEndian.AppendUint64(b, uint64(join.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(len(addr)))
	b = append(b, addr...)
	return append(b, meta...)
}

func TestMetaDecodeRejects(t *testing.T) {
	good, err := encodeMeta(info{inc: 1, join: time.Unix(0, 1), name: "n1", addr: "x:1", meta: []byte("m")})
	if err != nil {
		t.Fatal(err)
	}
	const nameAt = 11 // after version, flags, incarnation and the one-byte join offset
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tooMuchMeta, err := encodeMeta(info{inc: 1, join: time.Unix(0, 1), meta: make([]byte, MaxUserMeta(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"nil", nil, "shorter"},
		{"short", good[:metaMinLen-1], "shorter"},
		{"version 1", metaV1(5, 1, time.Unix(1, 0), "n1", "x:1", []byte("m")), "version 1"},
		{"bad version", mut(func(b []byte) []byte { b[0] = 9; return b }), "version 9"},
		{"unknown flag", mut(func(b []byte) []byte { b[1] = 0x80; return b }), "unknown flags"},
		{"join offset not minimal", mut(func(b []byte) []byte { return append(append(b[:10:10], 0x80, 0x00), b[11:]...) }), "join time"},
		{"join offset overflows", append(append(good[:10:10], bytes.Repeat([]byte{0xff}, 11)...), 0, 0), "join time"},
		{"name past the end", mut(func(b []byte) []byte { b[nameAt] = 60; return b }), "name of 60 bytes"},
		{"name over the limit", mut(func(b []byte) []byte { b[nameAt] = 0x80; b[nameAt+1] = 0x01; return b }), "name of 128 bytes"},
		{"name length not minimal", mut(func(b []byte) []byte { return append(append(b[:nameAt:nameAt], 0x82, 0x00), b[nameAt+1:]...) }), "bad name length"},
		{"truncated addr", good[:nameAt+1+2+1], "addr of 3 bytes"},
		{"user meta over the limit", append(tooMuchMeta, 0), "user meta"},
		{"too long", make([]byte, MaxNodeMeta+1), "limit 512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := decodeMeta(tc.b)
			if err == nil {
				t.Fatalf("decoded %+v, want an error", in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	// Version 1 is refused with an error that names both versions and says
	// why: a cluster cannot mix them.
	_, err = decodeMeta(metaV1(5, 1, time.Unix(1, 0), "n1", "x:1", nil))
	for _, want := range []string{"version 1", "version 2", "cannot mix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("version 1 metadata: error %v does not mention %q", err, want)
		}
	}
}

// TestIdentify checks that a member's ID is its memberlist name, in the one
// form nodeid.ID.String prints, and that a name that is not one, or bad
// metadata, keeps the node out.
func TestIdentify(t *testing.T) {
	meta, err := encodeMeta(info{inc: 1, join: time.Unix(0, 1), name: "n1", addr: "x:1"})
	if err != nil {
		t.Fatal(err)
	}
	id := nodeid.ID(0x00fedcba98765432)
	for _, tc := range []struct {
		name   string
		node   ml.Node
		wantID nodeid.ID // None: refused as not a Trellis node
		want   string    // error text, "" for none
	}{
		{"a member", ml.Node{Name: id.String(), Meta: meta}, id, ""},
		{"empty name", ml.Node{Name: "", Meta: meta}, nodeid.None, "not a Trellis node ID"},
		{"not hexadecimal", ml.Node{Name: "node-1", Meta: meta}, nodeid.None, "not a Trellis node ID"},
		{"the zero ID", ml.Node{Name: nodeid.None.String(), Meta: meta}, nodeid.None, "not a Trellis node ID"},
		{"short form", ml.Node{Name: "fedcba98765432", Meta: meta}, nodeid.None, "not a Trellis node ID"},
		{"upper case", ml.Node{Name: "00FEDCBA98765432", Meta: meta}, nodeid.None, "not a Trellis node ID"},
		{"no metadata", ml.Node{Name: id.String()}, id, "shorter"},
		{"version 1 metadata", ml.Node{Name: id.String(), Meta: metaV1(uint64(id), 1, time.Unix(1, 0), "n1", "x:1", nil)}, id, "version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, in, err := identify(&tc.node)
			if got != tc.wantID {
				t.Errorf("ID %v, want %v", got, tc.wantID)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want == "" && in.name != "n1":
				t.Errorf("decoded %+v", in)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
			// memberlist asks the Node whether to admit the node at all.
			if aerr := (*hooks)(nil).NotifyAlive(&tc.node); (aerr == nil) != (tc.want == "") {
				t.Errorf("NotifyAlive: %v", aerr)
			}
		})
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := encodeMeta(info{inc: 1, join: time.Unix(1, 0), name: "n1", addr: "x:1", meta: []byte("m")})
	f.Add(good)
	f.Add([]byte{})
	f.Add(metaV1(5, 1, time.Unix(1, 0), "n1", "x:1", []byte("m")))
	f.Add([]byte{metaVersion, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x80, 0x00, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes (the encoding is canonical).
		out, err := encodeMeta(in)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", in, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoded %x, input %x", out, b)
		}
	})
}

func TestDeriveKey(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, 16)
	a, err := DeriveKey(k1, "trellis")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 {
		t.Fatalf("derived %d bytes, want 32 (AES-256)", len(a))
	}
	if b, _ := DeriveKey(k1, "trellis"); !bytes.Equal(a, b) {
		t.Error("derivation is not deterministic")
	}
	if b, _ := DeriveKey(k1, "other"); bytes.Equal(a, b) {
		t.Error("the label does not change the key")
	}
	if bytes.Equal(a[:16], k1) {
		t.Error("the derived key is the cluster key")
	}
	if _, err := DeriveKey(make([]byte, 15), "trellis"); err == nil {
		t.Error("a 15-byte cluster key was accepted")
	}
}

func TestRekey(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	kr, err := newKeyring([][]byte{k1}, "l")
	if err != nil {
		t.Fatal(err)
	}
	if err := rekey(kr, [][]byte{k2, k1}, "l"); err != nil {
		t.Fatal(err)
	}
	d1, _ := DeriveKey(k1, "l")
	d2, _ := DeriveKey(k2, "l")
	if !bytes.Equal(kr.GetPrimaryKey(), d2) || len(kr.GetKeys()) != 2 {
		t.Fatalf("after rotation: primary %x, %d keys", kr.GetPrimaryKey(), len(kr.GetKeys()))
	}
	if err := rekey(kr, [][]byte{k2}, "l"); err != nil {
		t.Fatal(err)
	}
	for _, k := range kr.GetKeys() {
		if bytes.Equal(k, d1) {
			t.Error("the retired key is still in the ring")
		}
	}
}

// pushPullScale stretches the interval as memberlist does (its
// pushPullScale): ×1 up to 32 members, then one more per doubling.
func TestPushPullScale(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, time.Minute}, {32, time.Minute}, {33, 2 * time.Minute}, {64, 2 * time.Minute}, {65, 3 * time.Minute}, {256, 4 * time.Minute}, {1000, 6 * time.Minute}} {
		if got := pushPullScale(time.Minute, tc.n); got != tc.want {
			t.Errorf("pushPullScale(1m, %d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

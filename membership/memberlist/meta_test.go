package memberlist

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
)

func TestMetaRoundTrip(t *testing.T) {
	join := time.Unix(0, 1_700_000_000_123_456_789)
	for _, tc := range []struct {
		name string
		in   info
	}{
		{"empty fields", info{id: 1, inc: 1, join: join}},
		{"all fields", info{id: 0xfedcba9876543210, inc: 42, join: join, name: "node1", addr: "10.0.0.1:7001", meta: []byte("services=kv,http")}},
		{"leaving", info{id: 7, inc: 3, join: join, name: "n", addr: "a", leaving: true}},
		{"longest name and addr", info{id: 9, inc: 9, join: join, name: strings.Repeat("n", membership.MaxNameLen), addr: strings.Repeat("a", membership.MaxAddrLen),
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
			if got.id != tc.in.id || got.inc != tc.in.inc || !got.join.Equal(tc.in.join) || got.name != tc.in.name ||
				got.addr != tc.in.addr || !bytes.Equal(got.meta, tc.in.meta) || got.leaving != tc.in.leaving {
				t.Errorf("decoded %+v, want %+v", got, tc.in)
			}
		})
	}
}

func TestMetaOverflow(t *testing.T) {
	name, addr := "node-with-a-name", "10.0.0.1:7001"
	room := MaxUserMeta(len(name), len(addr))
	if _, err := encodeMeta(info{id: 1, name: name, addr: addr, meta: make([]byte, room)}); err != nil {
		t.Fatalf("meta of exactly %d bytes refused: %v", room, err)
	}
	_, err := encodeMeta(info{id: 1, name: name, addr: addr, meta: make([]byte, room+1)})
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("meta of %d bytes: err %v, want ErrMetaTooLarge", room+1, err)
	}
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

func TestMetaDecodeRejects(t *testing.T) {
	good, err := encodeMeta(info{id: 5, inc: 1, join: time.Unix(1, 0), name: "n1", addr: "x:1", meta: []byte("m")})
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"short header", good[:metaHeaderLen-1]},
		{"bad version", mut(func(b []byte) []byte { b[0] = 9; return b })},
		{"unknown flag", mut(func(b []byte) []byte { b[1] = 0x80; return b })},
		{"no id", mut(func(b []byte) []byte { clear(b[2:10]); return b })},
		{"name past the end", mut(func(b []byte) []byte { b[metaHeaderLen] = 60; return b })},
		{"name over the limit", mut(func(b []byte) []byte { b[metaHeaderLen] = 0x80; b[metaHeaderLen+1] = 0x01; return b })},
		{"truncated addr", good[:metaHeaderLen+1+2+1]},
		{"too long", make([]byte, MaxNodeMeta+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if in, err := decodeMeta(tc.b); err == nil {
				t.Errorf("decoded %+v, want an error", in)
			}
		})
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := encodeMeta(info{id: 5, inc: 1, join: time.Unix(1, 0), name: "n1", addr: "x:1", meta: []byte("m")})
	f.Add(good)
	f.Add([]byte{})
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

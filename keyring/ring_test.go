package keyring_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/trellisrpc/trellis/keyring"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestNewChecksKeys(t *testing.T) {
	tests := []struct {
		name string
		keys [][]byte
		err  string // "" for success
	}{
		{name: "one key", keys: [][]byte{key(1)}},
		{name: "shortest key", keys: [][]byte{make([]byte, keyring.MinKeyLen)}},
		{name: "no key", err: "no key"},
		{name: "short key", keys: [][]byte{key(1), make([]byte, keyring.MinKeyLen-1)}, err: "key 1 is 15 bytes"},
		{name: "too many", keys: make([][]byte, keyring.MaxKeys+1), err: "at most 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := keyring.New(tt.keys...)
			if tt.err == "" {
				if err != nil || r.Len() != len(tt.keys) {
					t.Fatalf("New: %v, %d keys", err, r.Len())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.err)
			}
		})
	}
	if _, err := keyring.New(); !errors.Is(err, keyring.ErrNoKeys) {
		t.Fatalf("New(): %v, want ErrNoKeys", err)
	}
}

// TestRotation walks the three steps of a rotation between two nodes that
// move one at a time: at every step each verifies what the other proves.
func TestRotation(t *testing.T) {
	old, new := key(1), key(2)
	a, _ := keyring.New(old)
	b, _ := keyring.New(old)
	msg := []byte("hello")
	steps := []struct {
		name string
		keys [][]byte
	}{
		{"add the new key second", [][]byte{old, new}},
		{"move it first", [][]byte{new, old}},
		{"drop the old key", [][]byte{new}},
	}
	for _, s := range steps {
		if err := a.Set(s.keys...); err != nil {
			t.Fatal(err)
		}
		if !b.Verify(a.Sum(msg), msg) || !a.Verify(b.Sum(msg), msg) {
			t.Fatalf("%s: a moved, b did not: they no longer verify each other", s.name)
		}
		b.Set(s.keys...)
		if !b.Verify(a.Sum(msg), msg) || !a.Verify(b.Sum(msg), msg) {
			t.Fatalf("%s: both moved: they no longer verify each other", s.name)
		}
	}
	stale, _ := keyring.New(old)
	if a.Verify(stale.Sum(msg), msg) {
		t.Fatal("a tag made with a dropped key verifies")
	}
}

func TestVerify(t *testing.T) {
	r, _ := keyring.New(key(1), key(2))
	other, _ := keyring.New(key(3))
	tag := r.Sum([]byte("ab"), []byte("c"))
	tests := []struct {
		name  string
		tag   []byte
		parts [][]byte
		want  bool
	}{
		{"same parts", tag, [][]byte{[]byte("ab"), []byte("c")}, true},
		{"parts split elsewhere", tag, [][]byte{[]byte("a"), []byte("bc")}, true},
		{"truncated to 16", tag[:16], [][]byte{[]byte("abc")}, true},
		{"truncated to 15", tag[:15], [][]byte{[]byte("abc")}, false},
		{"other message", tag, [][]byte{[]byte("abd")}, false},
		{"other ring", other.Sum([]byte("abc")), [][]byte{[]byte("abc")}, false},
		{"too long", append(tag, 0), [][]byte{[]byte("abc")}, false},
		{"empty", nil, [][]byte{[]byte("abc")}, false},
	}
	for _, tt := range tests {
		if got := r.Verify(tt.tag, tt.parts...); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestKeysAreCopies(t *testing.T) {
	k := key(1)
	r, _ := keyring.New(k)
	gen := r.Generation()
	tag := r.Sum([]byte("m"))
	k[0] = 9
	got, g := r.Keys()
	got[0][1] = 9
	if !r.Verify(tag, []byte("m")) || g != gen {
		t.Fatal("changing the caller's key or a returned copy changed the ring")
	}
	if r.Set() == nil || r.Generation() != gen {
		t.Fatal("a refused Set changed the ring")
	}
	r.Set(key(2))
	if r.Generation() == gen {
		t.Fatal("Set did not advance the generation")
	}
}

// TestConcurrentUse rotates while others prove and verify (run with -race).
func TestConcurrentUse(t *testing.T) {
	r, _ := keyring.New(key(1))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				if i == 0 {
					r.Set(key(byte(j)), key(byte(j+1)))
					continue
				}
				msg := []byte{byte(i), byte(j)}
				r.Verify(r.Sum(msg), msg)
				r.Keys()
			}
		}()
	}
	wg.Wait()
}

package membership

import (
	"bytes"
	"errors"
	"testing"
)

func TestKeyringVerify(t *testing.T) {
	k1 := []byte("key-one-0123456789")
	k2 := []byte("key-two-0123456789")
	msg := []byte("a membership packet body")
	signer, err := newKeyring("prod", [][]byte{k1})
	if err != nil {
		t.Fatal(err)
	}
	pkt := signer.sign(bytes.Clone(msg))
	for _, tc := range []struct {
		name  string
		label string
		keys  [][]byte
		want  bool
	}{
		{"same key", "prod", [][]byte{k1}, true},
		{"rotating: new key first, old still accepted", "prod", [][]byte{k2, k1}, true},
		{"other key only", "prod", [][]byte{k2}, false},
		{"other cluster label", "staging", [][]byte{k1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := newKeyring(tc.label, tc.keys)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.verify(pkt); got != tc.want {
				t.Fatalf("verify = %v, want %v", got, tc.want)
			}
		})
	}
	// Any flipped bit is refused.
	v, _ := newKeyring("prod", [][]byte{k1})
	for i := range pkt {
		bad := bytes.Clone(pkt)
		bad[i] ^= 1
		if v.verify(bad) {
			t.Fatalf("bit flip at byte %d accepted", i)
		}
	}
	if v.verify(pkt[:tagLen-1]) {
		t.Fatal("short packet accepted")
	}
}

func TestKeyringRejectsBadKeys(t *testing.T) {
	if _, err := newKeyring("x", nil); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("no keys: %v", err)
	}
	if _, err := newKeyring("x", [][]byte{make([]byte, MinKeyLen-1)}); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestClusterTagDiffers(t *testing.T) {
	if clusterTag("a") == clusterTag("b") {
		t.Fatal("two labels share a tag")
	}
}

func TestReplayWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint64
		want []bool
	}{
		{"in order", []uint64{1, 2, 3}, []bool{true, true, true}},
		{"duplicate", []uint64{5, 5}, []bool{true, false}},
		{"reordered within window", []uint64{10, 8, 9, 8}, []bool{true, true, true, false}},
		{"too old", []uint64{100, 100 - replayWindowSize, 100 - replayWindowSize + 1}, []bool{true, false, true}},
		{"big jump clears", []uint64{1, 1000, 999, 1}, []bool{true, true, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w replayWindow
			for i, s := range tc.seqs {
				if got := w.accept(s); got != tc.want[i] {
					t.Fatalf("accept(%d) #%d = %v, want %v", s, i, got, tc.want[i])
				}
			}
		})
	}
}

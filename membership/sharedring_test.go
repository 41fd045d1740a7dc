package membership

import (
	"bytes"
	"strings"
	"testing"

	clusterkeys "github.com/trellisrpc/trellis/keyring"
)

// A keyring made on a shared ring follows rotations made through the ring
// by its other users (the RPC transport), at the next packet.
func TestKeyringFollowsSharedRing(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	ring, err := clusterkeys.New(k1)
	if err != nil {
		t.Fatal(err)
	}
	shared := keyringOn("prod", ring)
	onlyK1, _ := newKeyring("prod", [][]byte{k1})
	onlyK2, _ := newKeyring("prod", [][]byte{k2})
	msg := []byte("a membership packet body")
	if pkt := shared.sign(bytes.Clone(msg)); !onlyK1.verify(pkt) || onlyK2.verify(pkt) {
		t.Fatal("before rotation: the packet is not signed with k1")
	}
	ring.Set(k2, k1)
	if pkt := shared.sign(bytes.Clone(msg)); !onlyK2.verify(pkt) {
		t.Fatal("after the ring's rotation: the packet is not signed with k2")
	}
	if !shared.verify(onlyK1.sign(bytes.Clone(msg))) {
		t.Fatal("after the ring's rotation: k1 no longer verifies")
	}
	if err := shared.setKeys([][]byte{k2}); err != nil {
		t.Fatal(err)
	}
	if got, _ := ring.Keys(); len(got) != 1 || !bytes.Equal(got[0], k2) {
		t.Fatalf("SetKeys did not rotate the shared ring: %d keys", len(got))
	}
}

func TestConfigKeyringOrKeys(t *testing.T) {
	ring, _ := clusterkeys.New(bytes.Repeat([]byte{1}, 32))
	tests := []struct {
		name string
		cfg  Config
		err  string // "" for success
	}{
		{name: "keyring", cfg: Config{Keyring: ring}},
		{name: "keys", cfg: Config{Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}}},
		{name: "both", cfg: Config{Keyring: ring, Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}}, err: "both Keyring and Keys"},
		{name: "empty ring", cfg: Config{Keyring: &clusterkeys.Ring{}}, err: "no key"},
		{name: "neither", cfg: Config{}, err: "no key"},
	}
	for _, tt := range tests {
		_, err := tt.cfg.normalize()
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: normalize: %v, want %q", tt.name, err, tt.err)
		}
	}
}

package membership

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"sync"

	clusterkeys "github.com/trellisrpc/trellis/keyring"
)

// MinKeyLen is the shortest cluster key accepted, in bytes (keyring.MinKeyLen).
const MinKeyLen = clusterkeys.MinKeyLen

// ErrNoKeys is returned when a configuration or a key rotation has no key. It
// is keyring.ErrNoKeys, so errors.Is matches either name.
var ErrNoKeys = clusterkeys.ErrNoKeys

// keyring authenticates packets with HMAC-SHA256 bound to the cluster label,
// with the keys of a shared *keyring.Ring. The first key signs; every key
// verifies, so keys rotate without downtime: add the new key second
// everywhere, then move it first everywhere, then drop the old one. The
// keyed hashes are derived from the ring once per generation, so a rotation
// made through the ring (by another layer sharing it) takes effect at the
// next packet.
type keyring struct {
	ring    *clusterkeys.Ring
	mu      sync.Mutex
	label   []byte
	tag     uint32
	gen     uint64 // the ring's generation macs were made from
	macs    []hash.Hash
	scratch [sha256.Size]byte
}

// clusterTag is the 4-byte cluster tag written in every packet header. It lets a
// receiver tell a foreign cluster's packet from a forged one; the label itself is
// authenticated by the MAC.
func clusterTag(label string) uint32 {
	sum := sha256.Sum256([]byte("trellis-membership/" + label))
	return binary.BigEndian.Uint32(sum[:4])
}

// newKeyring returns a keyring over a new ring holding keys.
func newKeyring(label string, keys [][]byte) (*keyring, error) {
	ring, err := clusterkeys.New(keys...)
	if err != nil {
		return nil, err
	}
	return keyringOn(label, ring), nil
}

// keyringOn returns a keyring over ring, which it shares with its other users.
func keyringOn(label string, ring *clusterkeys.Ring) *keyring {
	return &keyring{ring: ring, label: []byte(label), tag: clusterTag(label)}
}

// setKeys replaces the ring's keys (for every user of the ring).
func (k *keyring) setKeys(keys [][]byte) error { return k.ring.Set(keys...) }

// refresh rebuilds the keyed hashes if the ring changed. k.mu must be held.
func (k *keyring) refresh() {
	if k.macs != nil && k.ring.Generation() == k.gen {
		return
	}
	keys, gen := k.ring.Keys()
	macs := make([]hash.Hash, len(keys))
	for i, key := range keys {
		macs[i] = hmac.New(sha256.New, key)
	}
	k.macs, k.gen = macs, gen
}

// sum computes the truncated MAC of msg with mac into k.scratch. k.mu must be held.
func (k *keyring) sum(mac hash.Hash, msg []byte) []byte {
	mac.Reset()
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(k.label)))
	mac.Write(l[:])
	mac.Write(k.label)
	mac.Write(msg)
	return mac.Sum(k.scratch[:0])[:tagLen]
}

// sign appends the authentication tag of pkt (made with the first key) to pkt.
func (k *keyring) sign(pkt []byte) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refresh()
	return append(pkt, k.sum(k.macs[0], pkt)...)
}

// verify reports whether the last tagLen bytes of pkt authenticate the rest with
// any key of the ring.
func (k *keyring) verify(pkt []byte) bool {
	if len(pkt) < tagLen {
		return false
	}
	msg, tag := pkt[:len(pkt)-tagLen], pkt[len(pkt)-tagLen:]
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refresh()
	ok := 0
	for _, mac := range k.macs {
		ok |= subtle.ConstantTimeCompare(k.sum(mac, msg), tag)
	}
	return ok == 1
}

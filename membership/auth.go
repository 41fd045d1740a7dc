package membership

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// MinKeyLen is the shortest cluster key accepted, in bytes.
const MinKeyLen = 16

// ErrNoKeys is returned when a configuration or a key rotation has no key.
var ErrNoKeys = errors.New("membership: keyring is empty")

// keyring authenticates packets with HMAC-SHA256 bound to the cluster label. The
// first key signs; every key verifies, so keys rotate without downtime: add the
// new key second everywhere, then move it first everywhere, then drop the old one.
type keyring struct {
	mu      sync.Mutex
	label   []byte
	tag     uint32
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

func newKeyring(label string, keys [][]byte) (*keyring, error) {
	k := &keyring{label: []byte(label), tag: clusterTag(label)}
	if err := k.setKeys(keys); err != nil {
		return nil, err
	}
	return k, nil
}

func checkKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return ErrNoKeys
	}
	for i, key := range keys {
		if len(key) < MinKeyLen {
			return fmt.Errorf("membership: key %d is %d bytes, want at least %d", i, len(key), MinKeyLen)
		}
	}
	return nil
}

func (k *keyring) setKeys(keys [][]byte) error {
	if err := checkKeys(keys); err != nil {
		return err
	}
	macs := make([]hash.Hash, len(keys))
	for i, key := range keys {
		macs[i] = hmac.New(sha256.New, append([]byte(nil), key...))
	}
	k.mu.Lock()
	k.macs = macs
	k.mu.Unlock()
	return nil
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
	ok := 0
	for _, mac := range k.macs {
		ok |= subtle.ConstantTimeCompare(k.sum(mac, msg), tag)
	}
	return ok == 1
}

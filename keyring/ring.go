package keyring

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
)

// MinKeyLen is the length of the shortest key a Ring accepts, in bytes.
const MinKeyLen = 16

// MaxKeys is the most keys a Ring holds at once. Rotation needs two; the
// cap bounds the work of verifying a tag that no key made.
const MaxKeys = 8

// ErrNoKeys is returned by New and Set when given no key.
var ErrNoKeys = errors.New("keyring: no key")

// A Ring holds the cluster's shared keys: the first proves, every key
// verifies. The zero Ring holds no key and is not usable; make one with New.
type Ring struct {
	mu   sync.RWMutex
	keys [][]byte // never modified in place: Set replaces the slice
	gen  atomic.Uint64
}

// New returns a ring holding copies of keys, the first of which proves.
// Each key must be at least MinKeyLen bytes; at most MaxKeys keys.
func New(keys ...[]byte) (*Ring, error) {
	r := &Ring{}
	if err := r.Set(keys...); err != nil {
		return nil, err
	}
	return r, nil
}

// Check reports whether keys would be accepted by New or Set.
func Check(keys ...[]byte) error {
	if len(keys) == 0 {
		return ErrNoKeys
	}
	if len(keys) > MaxKeys {
		return fmt.Errorf("keyring: %d keys, at most %d", len(keys), MaxKeys)
	}
	for i, k := range keys {
		if len(k) < MinKeyLen {
			return fmt.Errorf("keyring: key %d is %d bytes, want at least %d", i, len(k), MinKeyLen)
		}
	}
	return nil
}

// Set replaces the keys with copies of keys; the first proves from now on.
// On error the ring is left unchanged.
func (r *Ring) Set(keys ...[]byte) error {
	if err := Check(keys...); err != nil {
		return err
	}
	cp := make([][]byte, len(keys))
	for i, k := range keys {
		cp[i] = append([]byte(nil), k...)
	}
	r.mu.Lock()
	r.keys = cp
	r.gen.Add(1)
	r.mu.Unlock()
	return nil
}

// Generation counts the calls to Set (New's included). A user that derives
// state from the keys (keyed hashes, say) rebuilds it when this changes.
func (r *Ring) Generation() uint64 { return r.gen.Load() }

// Keys returns copies of the keys, the proving key first, and the
// generation they belong to.
func (r *Ring) Keys() (keys [][]byte, generation uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	keys = make([][]byte, len(r.keys))
	for i, k := range r.keys {
		keys[i] = append([]byte(nil), k...)
	}
	return keys, r.gen.Load()
}

// Len returns how many keys the ring holds.
func (r *Ring) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.keys)
}

// snapshot returns the current keys (shared: never modified in place).
func (r *Ring) snapshot() [][]byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys
}

// Sum returns HMAC-SHA256 of the concatenation of parts under the proving
// key. It panics on a zero Ring.
func (r *Ring) Sum(parts ...[]byte) []byte {
	keys := r.snapshot()
	if len(keys) == 0 {
		panic("keyring: Sum on a Ring with no key (use keyring.New)")
	}
	return sum(hmac.New(sha256.New, keys[0]), parts)
}

// Verify reports whether tag is HMAC-SHA256 of the concatenation of parts
// under any key of the ring. Every key is tried, in constant time for a
// given number of keys. A tag shorter than 16 bytes never verifies; a
// longer one is compared with as many leading bytes of the HMAC.
func (r *Ring) Verify(tag []byte, parts ...[]byte) bool {
	if len(tag) < 16 || len(tag) > sha256.Size {
		return false
	}
	ok := 0
	for _, k := range r.snapshot() {
		ok |= subtle.ConstantTimeCompare(sum(hmac.New(sha256.New, k), parts)[:len(tag)], tag)
	}
	return ok == 1
}

func sum(mac hash.Hash, parts [][]byte) []byte {
	for _, p := range parts {
		mac.Write(p)
	}
	return mac.Sum(nil)
}

// KeyLen is the length of the keys NewKey makes: 32 bytes, HMAC-SHA256's
// output size.
const KeyLen = 32

// NewKey returns a fresh random key of KeyLen bytes, for a new cluster.
// Every node of the cluster must hold it: distribute it as any secret.
func NewKey() []byte {
	k := make([]byte, KeyLen)
	rand.Read(k) // never fails (crypto/rand, Go 1.24+)
	return k
}

package memberlist

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/membership"
)

// keyInfo is the HKDF info string of the derivation; the cluster label follows
// it, so two clusters sharing a key still use different memberlist keys.
const keyInfo = "trellis membership/memberlist AES-256-GCM v1 "

// DeriveKey returns the memberlist encryption key for a cluster key: 32 bytes
// (AES-256) of HKDF-SHA256 with the cluster key as input keying material, no
// salt, and keyInfo followed by the cluster label as info. memberlist wants raw
// 16-, 24- or 32-byte AES keys; the cluster key may have any length from
// membership.MinKeyLen, and the memberlist key derived from it is not the key
// itself, which also authenticates heartbeats and RPC connections elsewhere.
func DeriveKey(clusterKey []byte, label string) ([]byte, error) {
	if len(clusterKey) < membership.MinKeyLen {
		return nil, fmt.Errorf("memberlist: cluster key is %d bytes, need at least %d", len(clusterKey), membership.MinKeyLen)
	}
	k, err := hkdf.Key(sha256.New, clusterKey, nil, keyInfo+label, 32)
	if err != nil {
		return nil, fmt.Errorf("memberlist: deriving the memberlist key: %w", err)
	}
	return k, nil
}

// deriveKeys derives every key of a cluster keyring (the first is primary).
func deriveKeys(keys [][]byte, label string) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, membership.ErrNoKeys
	}
	out := make([][]byte, 0, len(keys))
	for i, k := range keys {
		d, err := DeriveKey(k, label)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// newKeyring returns a memberlist keyring of the keys derived from a cluster
// keyring, the first primary.
func newKeyring(keys [][]byte, label string) (*ml.Keyring, error) {
	d, err := deriveKeys(keys, label)
	if err != nil {
		return nil, err
	}
	kr, err := ml.NewKeyring(d, d[0])
	if err != nil {
		return nil, fmt.Errorf("memberlist: keyring: %w", err)
	}
	return kr, nil
}

// rekey makes kr hold exactly the keys derived from keys, the first primary:
// new keys are added, the primary switched, then old keys removed, so that
// packets under either keyring are accepted throughout.
func rekey(kr *ml.Keyring, keys [][]byte, label string) error {
	d, err := deriveKeys(keys, label)
	if err != nil {
		return err
	}
	for _, k := range d {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("memberlist: adding a key: %w", err)
		}
	}
	if err := kr.UseKey(d[0]); err != nil {
		return fmt.Errorf("memberlist: using the primary key: %w", err)
	}
	keep := make(map[string]bool, len(d))
	for _, k := range d {
		keep[string(k)] = true
	}
	for _, k := range kr.GetKeys() {
		if !keep[string(k)] {
			if err := kr.RemoveKey(k); err != nil {
				return fmt.Errorf("memberlist: removing an old key: %w", err)
			}
		}
	}
	return nil
}

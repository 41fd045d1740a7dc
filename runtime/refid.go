package runtime

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
)

// refIDs makes the IDs of exported objects: unguessable (so that a peer
// cannot name an object it was not sent) and never reused within the
// node's life (so that a stale reference never designates a newer
// object). Each is a counter enciphered by a 64-bit block cipher with a
// random key: a four-round Feistel network whose round function is AES,
// which makes a pseudo-random permutation of the 64-bit integers, so
// distinct counters give distinct IDs that look random.
type refIDs struct {
	block cipher.Block
	count uint64
}

func newRefIDs() refIDs {
	var key [16]byte
	rand.Read(key[:]) // never fails (crypto/rand)
	b, err := aes.NewCipher(key[:])
	if err != nil {
		panic("trellis: AES with a 16-byte key: " + err.Error()) // cannot happen
	}
	return refIDs{block: b}
}

// next returns a new ID, never 0 (which designates a node's services).
func (r *refIDs) next() uint64 {
	for {
		r.count++
		if id := r.permute(r.count); id != 0 {
			return id
		}
	}
}

// permute enciphers x.
func (r *refIDs) permute(x uint64) uint64 {
	var in, out [16]byte
	left, right := uint32(x>>32), uint32(x)
	for round := range 4 {
		in[0] = byte(round)
		binary.BigEndian.PutUint32(in[1:], right)
		r.block.Encrypt(out[:], in[:])
		left, right = right, left^binary.BigEndian.Uint32(out[:])
	}
	return uint64(left)<<32 | uint64(right)
}

// Package nodeid defines the identity of a Trellis node.
//
// Every layer names nodes with an ID: the transport handshake carries both
// ends' IDs, membership heartbeats carry the sender's, topology edges join two
// of them and the runtime routes calls to one. The package is a leaf so that
// all of them can share the type without importing each other.
package nodeid

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
)

// ID identifies a node for the lifetime of its process. IDs are compared as
// numbers: where two nodes must agree on who acts (who dials an edge, which of
// two equally old members leads), the smaller ID acts.
type ID uint64

// None is the zero ID; no node has it.
const None ID = 0

// New returns a random, non-zero ID.
func New() ID {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			// crypto/rand.Read never fails on supported platforms (Go 1.24+).
			panic(fmt.Sprintf("nodeid: reading random bytes: %v", err))
		}
		if id := ID(binary.BigEndian.Uint64(b[:])); id != None {
			return id
		}
	}
}

// String returns the ID as 16 lower-case hexadecimal digits.
func (id ID) String() string {
	var b [16]byte
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = digits[id&0xf]
		id >>= 4
	}
	return string(b[:])
}

// Parse parses the form printed by String (1 to 16 hexadecimal digits).
func Parse(s string) (ID, error) {
	if len(s) == 0 || len(s) > 16 {
		return None, fmt.Errorf("nodeid: parse %q: want 1 to 16 hexadecimal digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return None, fmt.Errorf("nodeid: parse %q: %w", s, err)
	}
	return ID(v), nil
}

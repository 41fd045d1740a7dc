// Package keyring holds a cluster's shared secret keys, with rotation.
//
// One Ring is given to every layer that authenticates with the cluster key:
// membership signs its heartbeats with it and the transport proves, in each
// connection's handshake, that both ends hold it. Because they share the
// Ring, one call to Set rotates the keys of both.
//
// The first key proves (signs); every key verifies. Keys therefore rotate
// without downtime in three steps, each done on every node before the next
// starts:
//
//  1. add the new key second: Set(old, new) — everyone still signs with old
//     and already accepts new;
//  2. move it first: Set(new, old) — everyone signs with new, still accepts
//     old from nodes that have not moved yet;
//  3. drop the old key: Set(new).
//
// Keys are at least MinKeyLen bytes; use 32 random bytes (New makes a copy,
// so the caller may wipe its own). A Ring is safe for concurrent use.
package keyring

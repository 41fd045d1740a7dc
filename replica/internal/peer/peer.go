// Package peer holds the protocol between the replica stores of a cluster:
// the Peer service, its wire types, and proxygen's output for them.
package peer

import (
	"context"

	"github.com/trellisrpc/trellis/nodeid"
)

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Peer

// Peer is the service that the stores of a cluster serve one another.
type Peer interface {
	// Replicate stores copies sent by their owner, or by a node that took
	// them over. Each copy is kept only if its version is above the copy
	// held; the result says, per entry in order, the version and owner now
	// held (values left out).
	Replicate(ctx context.Context, entries []Entry) ([]Entry, error)
	// Drop forgets the copies of the given keys held for owner.
	Drop(ctx context.Context, owner nodeid.ID, keys []string) error
	// Lookup returns what the node knows of key: the entry if it owns it
	// or holds a copy, with Owner naming the owner. Values are left out
	// unless withValue is set.
	Lookup(ctx context.Context, key string, withValue bool) (Entry, error)
	// Apply runs an operation at the entry's owner.
	Apply(ctx context.Context, op Op) (Entry, error)
	// Held returns the copies the node holds for owner, values left out
	// unless withValues is set.
	Held(ctx context.Context, owner nodeid.ID, withValues bool) ([]Entry, error)
	// Adopt makes the node the owner of the entries, which the caller
	// owned (handoff on leave, migration): the node applies them with a
	// higher version and replicates them before it returns.
	Adopt(ctx context.Context, entries []Entry) error
}

// An Entry is one replicated value with its bookkeeping.
type Entry struct {
	// Key names the entry.
	Key string
	// Value is the entry's value; nil for a deleted entry.
	Value []byte
	// Version grows by one with every write and every change of owner.
	Version uint64
	// Owner is the node that applies writes to the entry.
	Owner nodeid.ID
	// Expires is when the entry expires, in Unix nanoseconds (0: never).
	Expires int64
	// TTL is the entry's sliding time to live in nanoseconds (0: none):
	// every access at the owner moves Expires to now + TTL.
	TTL int64
	// Deleted marks a tombstone: the entry was deleted at Version.
	Deleted bool
}

// OpKind says what an [Op] does.
type OpKind uint8

// The operations a non-owner proxies to an owner.
const (
	// OpGet reads the entry (and slides its expiry).
	OpGet OpKind = iota + 1
	// OpPut writes Value, if the entry's version is IfVersion (when set).
	OpPut
	// OpDelete deletes the entry, if its version is IfVersion (when set).
	OpDelete
	// OpMigrate makes the caller the owner; the result is the entry as
	// the caller must adopt it.
	OpMigrate
)

// An Op is an operation proxied to an entry's owner.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
	// IfVersion, when not zero, makes a put or delete conditional: it
	// fails with ErrConflict unless the entry's version is IfVersion.
	// IfAbsent makes a put fail with ErrConflict if the entry exists.
	IfVersion uint64
	IfAbsent  bool
	// TTL is the sliding time to live a put sets, in nanoseconds.
	TTL int64
}

// NotOwnerError is returned by a node asked to apply an operation to an
// entry it does not own; Owner is the owner it knows of (zero if none).
type NotOwnerError struct {
	Owner nodeid.ID
}

func (e *NotOwnerError) Error() string {
	if e.Owner == nodeid.None {
		return "replica: not the owner of the entry"
	}
	return "replica: not the owner of the entry; owner is " + e.Owner.String()
}

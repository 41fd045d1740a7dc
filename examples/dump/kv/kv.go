// Package kv is the service of the dump example: a key/value Store whose
// whole state can be pulled from another node as a stream (Dump) and pushed
// to it the same way (Load).
//
// An io.Reader parameter or result crosses as a stream: the receiver gets
// an io.Reader whose bytes the sender pushes as the receiver reads them,
// under credit-based flow control, so neither side holds the whole state
// in a message.
package kv

import (
	"context"
	"io"
)

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Store

// Store is a key/value store that can be copied between nodes.
type Store interface {
	// Dump returns the whole state as lines "key\tvalue\n", sorted by
	// key. The reader is a stream: the caller pulls it lazily, and
	// closing it early stops the sender.
	Dump(ctx context.Context) (io.Reader, error)
	// Load reads lines "key\tvalue\n" from r (a stream pulled from the
	// caller) to its end, puts them into the store and returns how many
	// entries it read.
	Load(ctx context.Context, r io.Reader) (int64, error)
	// Sum describes the store's state: two stores with the same Summary
	// hold the same entries.
	Sum(ctx context.Context) (Summary, error)
}

// A Summary describes a store's state.
type Summary struct {
	Entries int
	Bytes   int64  // length of the state as lines
	SHA256  string // hex SHA-256 of the state as lines, sorted by key
}

// Package kv is the representative service of proxygen's golden test: it
// has every shape of method that proxygen supports.
package kv

import (
	"context"
	"io"
	"time"

	"github.com/trellisrpc/trellis/internal/gen/testdata/kv/shared"
)

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Store,Watcher

// Entry is a value in the store.
type Entry struct {
	Value   []byte
	Version int64
	Labels  map[string]string
	Owner   *shared.User
	Expires time.Time
}

// Pinger is embedded in Store.
type Pinger interface {
	// Ping has only a context and only an error.
	Ping(ctx context.Context) error
}

// Store is served by every node.
type Store interface {
	Pinger
	// Get returns the entry of key.
	//
	//trellis:idempotent
	Get(ctx context.Context, key string) (Entry, error)
	Put(ctx context.Context, key string, e Entry) error
	Stat(context.Context, string, bool) (int64, time.Duration, error)
	Tag(ctx context.Context, key string, tags ...shared.Tag) error
	Dump(ctx context.Context) (io.Reader, error)
	Load(ctx context.Context, r io.Reader) (int64, error)
	Watch(ctx context.Context, prefix string, w Watcher) error
	Open(ctx context.Context, name string) (Watcher, error)
	Peers(ctx context.Context, in []shared.Region) (map[shared.Region][]shared.User, error)
}

// Watcher is implemented by callers and passed by reference.
type Watcher interface {
	Changed(ctx context.Context, key string, e Entry) error
}

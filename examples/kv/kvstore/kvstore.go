// Package kvstore is the service of the kv example: a key–value store
// sharded by key over the members of a cluster.
package kvstore

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Store

import (
	"context"
	"errors"
	"sync"
)

// ErrNotFound is returned by Get for a key the serving member does not
// hold. Register it on every node (runtime.RegisterError) so that callers
// can test for it with errors.Is.
var ErrNotFound = errors.New("kvstore: not found")

// Entry is a stored value and the member that stored it.
type Entry struct {
	Value string
	Node  string
}

// Store is a key–value store; each member holds the keys a by-key cluster
// proxy sends it.
type Store interface {
	// Get returns the entry of key, or ErrNotFound.
	//
	//trellis:idempotent
	Get(ctx context.Context, key string) (Entry, error)
	// Put sets the value of key. It is not declared idempotent: a Put
	// that may have run is never repeated by a cluster proxy.
	Put(ctx context.Context, key, value string) error
}

// Memory is a Store held in memory by the member called Node.
type Memory struct {
	Node string
	mu   sync.Mutex
	m    map[string]string
}

// Get implements Store.
func (s *Memory) Get(ctx context.Context, key string) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return Entry{}, ErrNotFound
	}
	return Entry{Value: v, Node: s.Node}, nil
}

// Put implements Store.
func (s *Memory) Put(ctx context.Context, key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]string)
	}
	s.m[key] = value
	return nil
}

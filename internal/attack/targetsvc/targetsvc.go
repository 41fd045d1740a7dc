// Package targetsvc is the service that the attack target serves (see package
// attack): cheap calls for the legitimate caller, calls whose replies or
// arguments are as large as asked, a decoder workload, and an object exported
// by reference.
package targetsvc

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Target,Counter -output targetsvc_trellis.go

import (
	"context"
	"sync"
)

// Target is served by the attacked node.
type Target interface {
	// Echo returns s: the legitimate caller's call.
	Echo(ctx context.Context, s string) (string, error)
	// Blob returns n zero bytes.
	Blob(ctx context.Context, n int) ([]byte, error)
	// Put takes b and returns its length.
	Put(ctx context.Context, b []byte) (int, error)
	// Strings returns how many strings ss holds.
	Strings(ctx context.Context, ss [][]string) (int, error)
	// NewCounter returns a Counter, by reference, starting at start.
	NewCounter(ctx context.Context, start int) (Counter, error)
}

// Counter is passed by reference.
type Counter interface {
	// Add adds d and returns the new value.
	Add(ctx context.Context, d int) (int, error)
}

// Impl implements Target.
type Impl struct{}

// Echo implements Target.
func (Impl) Echo(ctx context.Context, s string) (string, error) { return s, nil }

// Blob implements Target.
func (Impl) Blob(ctx context.Context, n int) ([]byte, error) {
	if n < 0 {
		n = 0
	}
	return make([]byte, n), nil
}

// Put implements Target.
func (Impl) Put(ctx context.Context, b []byte) (int, error) { return len(b), nil }

// Strings implements Target.
func (Impl) Strings(ctx context.Context, ss [][]string) (int, error) {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	return n, nil
}

// NewCounter implements Target.
func (Impl) NewCounter(ctx context.Context, start int) (Counter, error) {
	return &counter{n: start}, nil
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) Add(ctx context.Context, d int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += d
	return c.n, nil
}

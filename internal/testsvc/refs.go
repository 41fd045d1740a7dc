package testsvc

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Registry,Callback,Counter -output refs_trellis.go

import (
	"context"
	"sync"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
)

// Callback is implemented by callers and passed by reference.
type Callback interface {
	// Notify receives msg and returns a number.
	Notify(ctx context.Context, msg string) (int, error)
}

// Counter is returned by reference.
type Counter interface {
	// Add adds d and returns the new value.
	Add(ctx context.Context, d int) (int, error)
}

// Registry takes and returns references.
type Registry interface {
	// Subscribe calls cb.Notify(msg) and returns its result; it keeps cb
	// for Fire when keep is set.
	Subscribe(ctx context.Context, cb Callback, msg string, keep bool) (int, error)
	// Fire notifies the kept callbacks and returns the sum of their results.
	Fire(ctx context.Context, msg string) (int, error)
	// Drop releases the kept callbacks.
	Drop(ctx context.Context) error
	// NewCounter returns a new Counter starting at start.
	NewCounter(ctx context.Context, start int) (Counter, error)
	// IsLocal reports whether c arrived as this node's own object.
	IsLocal(ctx context.Context, c Counter) (bool, error)
	// Relay passes cb to the Registry of node to, which notifies it.
	Relay(ctx context.Context, to nodeid.ID, cb Callback, msg string) (int, error)
	// Ignore receives cb and drops it (the cost of passing a reference).
	Ignore(ctx context.Context, cb Callback) error
}

// RegistryImpl implements Registry on a node.
type RegistryImpl struct {
	Node *runtime.Node
	mu   sync.Mutex
	kept []Callback
}

// Subscribe implements Registry.
func (r *RegistryImpl) Subscribe(ctx context.Context, cb Callback, msg string, keep bool) (int, error) {
	n, err := cb.Notify(ctx, msg)
	if err != nil {
		return 0, err
	}
	if keep {
		r.mu.Lock()
		r.kept = append(r.kept, cb)
		r.mu.Unlock()
	}
	return n, nil
}

// Fire implements Registry.
func (r *RegistryImpl) Fire(ctx context.Context, msg string) (int, error) {
	r.mu.Lock()
	kept := append([]Callback(nil), r.kept...)
	r.mu.Unlock()
	total := 0
	for _, cb := range kept {
		n, err := cb.Notify(ctx, msg)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// Drop implements Registry.
func (r *RegistryImpl) Drop(ctx context.Context) error {
	r.mu.Lock()
	kept := r.kept
	r.kept = nil
	r.mu.Unlock()
	for _, cb := range kept {
		if err := runtime.Release(cb); err != nil {
			return err
		}
	}
	return nil
}

// NewCounter implements Registry.
func (r *RegistryImpl) NewCounter(ctx context.Context, start int) (Counter, error) {
	return &CounterImpl{n: start}, nil
}

// IsLocal implements Registry.
func (r *RegistryImpl) IsLocal(ctx context.Context, c Counter) (bool, error) {
	_, ok := c.(*CounterImpl)
	return ok, nil
}

// Relay implements Registry.
func (r *RegistryImpl) Relay(ctx context.Context, to nodeid.ID, cb Callback, msg string) (int, error) {
	return NewRegistryProxy(r.Node, to).Subscribe(ctx, cb, msg, false)
}

// Ignore implements Registry.
func (r *RegistryImpl) Ignore(ctx context.Context, cb Callback) error { return nil }

// CounterImpl implements Counter.
type CounterImpl struct {
	mu sync.Mutex
	n  int
}

// Add implements Counter.
func (c *CounterImpl) Add(ctx context.Context, d int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += d
	return c.n, nil
}

// CallbackFunc implements Callback with a function.
type CallbackFunc func(ctx context.Context, msg string) (int, error)

// Notify implements Callback.
func (f CallbackFunc) Notify(ctx context.Context, msg string) (int, error) { return f(ctx, msg) }

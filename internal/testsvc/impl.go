package testsvc

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Impl implements Kitchen and Control.
type Impl struct {
	mu      sync.Mutex
	blocked map[string]chan string   // tag → why Block ended
	started map[string]chan struct{} // tag → closed when Block started
}

// NewImpl returns a ready Impl.
func NewImpl() *Impl {
	return &Impl{blocked: make(map[string]chan string), started: make(map[string]chan struct{})}
}

func (k *Impl) slot(tag string) chan string {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.blocked[tag]
	if !ok {
		c = make(chan string, 1)
		k.blocked[tag] = c
	}
	return c
}

func (k *Impl) startedSlot(tag string) chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.started[tag]
	if !ok {
		c = make(chan struct{})
		k.started[tag] = c
	}
	return c
}

// RoundTrip implements Kitchen.
func (k *Impl) RoundTrip(ctx context.Context, e Everything) (Everything, error) { return e, nil }

// Echo implements Kitchen.
func (k *Impl) Echo(ctx context.Context, s string, n int) (string, int, error) { return s, n, nil }

// Sum implements Kitchen.
func (k *Impl) Sum(ctx context.Context, xs ...int) (int, error) {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t, nil
}

// Block implements Kitchen.
func (k *Impl) Block(ctx context.Context, tag string) error {
	close(k.startedSlot(tag))
	<-ctx.Done()
	_, hasDeadline := ctx.Deadline()
	k.slot(tag) <- fmt.Sprintf("%v (deadline set: %v)", ctx.Err(), hasDeadline)
	return ctx.Err()
}

// Sleep implements Kitchen.
func (k *Impl) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Panic implements Kitchen.
func (k *Impl) Panic(ctx context.Context, msg string) error { panic(msg) }

// Fail implements Kitchen.
func (k *Impl) Fail(ctx context.Context, kind string) error {
	switch kind {
	case "notfound":
		return fmt.Errorf("looking up key: %w", ErrNotFound)
	case "conflict":
		return fmt.Errorf("writing: %w", &ConflictError{Key: "k", Version: 7})
	}
	return fmt.Errorf("plain failure %q", kind)
}

// Nothing implements Kitchen.
func (k *Impl) Nothing(ctx context.Context) error { return nil }

// RoundTripPlain implements Kitchen.
func (k *Impl) RoundTripPlain(ctx context.Context, p Plain, ps []*Plain, m map[Name]Plain) (Plain, []*Plain, map[Name]Plain, error) {
	return p, ps, m, nil
}

// EchoReq implements Kitchen.
func (k *Impl) EchoReq(ctx context.Context, r Req) (Req, error) { return r, nil }

// Started implements Control.
func (k *Impl) Started(ctx context.Context, tag string) error {
	select {
	case <-k.startedSlot(tag):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Mallocs implements Control.
func (k *Impl) Mallocs(ctx context.Context) (uint64, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs, nil
}

// Blocked implements Control.
func (k *Impl) Blocked(ctx context.Context, tag string) (string, error) {
	select {
	case why := <-k.slot(tag):
		return why, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

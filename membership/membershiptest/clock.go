// Package membershiptest provides a fake clock and an in-memory network for testing
// code built on package membership: nodes run on Network endpoints instead of UDP
// sockets, with loss, delay, duplication, reordering and partitions under the
// test's control and a seeded random source, so that runs are reproducible.
package membershiptest

import (
	"sync"
	"time"

	"github.com/trellisrpc/trellis/membership"
)

// FakeClock is a membership.Clock whose time moves only when told to.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

var _ membership.Clock = (*FakeClock)(nil)

// NewFakeClock returns a clock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d, firing due tickers.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	t := c.now.Add(d)
	c.mu.Unlock()
	c.Set(t)
}

// Set moves the clock to t (never backwards), firing due tickers. Like a
// time.Ticker, a fake ticker whose receiver is slow drops ticks.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.After(c.now) {
		return
	}
	c.now = t
	live := c.tickers[:0]
	for _, tk := range c.tickers {
		if tk.stopped {
			continue
		}
		live = append(live, tk)
		if !tk.next.After(t) {
			select {
			case tk.ch <- t:
			default:
			}
			for !tk.next.After(t) {
				tk.next = tk.next.Add(tk.d)
			}
		}
	}
	c.tickers = live
}

// NewTicker returns a ticker firing every d of fake time.
func (c *FakeClock) NewTicker(d time.Duration) membership.Ticker {
	if d <= 0 {
		panic("membershiptest: non-positive ticker period")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tk := &fakeTicker{clock: c, d: d, next: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.tickers = append(c.tickers, tk)
	return tk
}

type fakeTicker struct {
	clock   *FakeClock
	d       time.Duration
	next    time.Time
	ch      chan time.Time
	stopped bool
}

func (t *fakeTicker) C() <-chan time.Time { return t.ch }

func (t *fakeTicker) Stop() {
	t.clock.mu.Lock()
	t.stopped = true
	t.clock.mu.Unlock()
}

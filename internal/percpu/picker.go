// Package percpu hands out stripe indexes with processor affinity, for
// counters that every call updates: kept in one stripe per processor and
// summed when read, they stay in their processor's cache, where counters
// shared by all calls would bounce their cache line between the processors
// at every update.
package percpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A Picker hands out the indexes of N stripes, one per processor (rounded
// up to a power of two) as GOMAXPROCS was when it was made.
type Picker struct {
	n    int
	next atomic.Uint64
	pool sync.Pool // *int
}

// NewPicker returns a Picker for the processors there are now.
func NewPicker() *Picker {
	n := 1
	for n < runtime.GOMAXPROCS(0) {
		n *= 2
	}
	p := &Picker{n: n}
	p.pool.New = func() any {
		i := int(p.next.Add(1)-1) & (p.n - 1)
		return &i
	}
	return p
}

// N returns the number of stripes, a power of two.
func (p *Picker) N() int { return p.n }

// Pick returns the index of the stripe the calling goroutine's processor
// uses, in [0, N). The pool keeps the index it last handed out on each
// processor, so the same processor gets the same index back; after a
// garbage collection empties the pool, indexes are handed out anew in
// turn. Two processors sharing a stripe for a while cost some speed, not
// correctness: the counters are updated with atomic operations.
func (p *Picker) Pick() int {
	ip := p.pool.Get().(*int)
	i := *ip
	p.pool.Put(ip)
	return i
}

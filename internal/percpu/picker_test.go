package percpu

import (
	"runtime"
	"sync"
	"testing"
)

// TestPick checks that N is a power of two covering the processors, and
// that Pick stays in [0, N) from many goroutines.
func TestPick(t *testing.T) {
	p := NewPicker()
	n := p.N()
	if n < runtime.GOMAXPROCS(0) || n&(n-1) != 0 {
		t.Fatalf("N = %d for GOMAXPROCS %d, want a power of two at least as large", n, runtime.GOMAXPROCS(0))
	}
	var wg sync.WaitGroup
	bad := make(chan int, 1)
	for range 16 {
		wg.Go(func() {
			for range 1000 {
				if i := p.Pick(); i < 0 || i >= n {
					select {
					case bad <- i:
					default:
					}
				}
			}
		})
	}
	wg.Wait()
	select {
	case i := <-bad:
		t.Fatalf("Pick = %d, want in [0, %d)", i, n)
	default:
	}
}

package transport

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// arrivals is a Handler that only signals each message.
type arrivals chan struct{}

func (a arrivals) HandleMessage(Kind, uint64, []byte) error { a <- struct{}{}; return nil }
func (a arrivals) HandleGoAway()                            {}
func (a arrivals) HandleClosed(error)                       {}

// heapAfterGC returns the bytes of live heap objects once what the pools
// hold has been freed too (sync.Pool keeps them over one collection).
func heapAfterGC() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// A connection that has received large messages keeps none of their
// buffers once idle: a peer that sends one large message on each of many
// connections would otherwise make the node hold a buffer that size for
// each (outside the Budget) as long as they stay open.
func TestIdleConnectionsHoldNoMessageBuffers(t *testing.T) {
	checkLeaks(t)
	const conns, size = 8, 2<<20 - 1
	l := listen(t, testConfig(1, nil))
	var frames bytes.Buffer
	for off := 0; off < size; off += MaxFramePayload {
		n := min(MaxFramePayload, size-off)
		flags := FlagMore
		if off+n == size {
			flags = 0
		}
		frames.Write(frameBytes(1, flags, 1, make([]byte, n)))
	}
	frames.Write(frameBytes(1, 0, 2, make([]byte, MaxFramePayload))) // a full-size frame
	frames.Write(frameBytes(1, 0, 3, []byte("small")))
	got := make(arrivals, 3*conns)
	before := heapAfterGC()
	for i := range conns {
		raw := rawDial(t, l.Addr().String(), nodeid.ID(100+i), "test-cluster")
		c := accept(t, l)
		closeAtEnd(t, c)
		c.Start(got)
		go raw.Write(frames.Bytes())
	}
	for range 3 * conns {
		select {
		case <-got:
		case <-time.After(waitLimit):
			t.Fatal("the messages did not all arrive")
		}
	}
	// Each connection holds its read and write buffers (128 KiB), and no
	// more than a small message's.
	if grown := heapAfterGC() - before; grown > conns*(256<<10) {
		t.Errorf("%d idle connections that each received a %d KiB message hold %d KiB, want at most %d KiB",
			conns, size>>10, grown>>10, conns*256)
	}
}

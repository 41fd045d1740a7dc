package transport

import (
	"context"
	"sync/atomic"
	"testing"
)

// echoHandler sends every message back to the peer on its connection.
type echoHandler struct{ c *Conn }

func (h *echoHandler) HandleMessage(kind Kind, id uint64, payload []byte) error {
	buf := GetBuffer()
	buf.Write(payload)
	return h.c.Send(context.Background(), kind, id, buf)
}
func (h *echoHandler) HandleGoAway()      {}
func (h *echoHandler) HandleClosed(error) {}

// signalHandler signals each message it receives on a channel.
type signalHandler struct {
	got   chan struct{}
	bytes atomic.Int64
}

func (h *signalHandler) HandleMessage(_ Kind, _ uint64, payload []byte) error {
	h.bytes.Add(int64(len(payload)))
	h.got <- struct{}{}
	return nil
}
func (h *signalHandler) HandleGoAway()      {}
func (h *signalHandler) HandleClosed(error) {}

// BenchmarkRoundTrip measures a small message sent and echoed back over
// loopback, one at a time: the latency of the write batching and of the
// reader, and the allocations of both ends together.
func BenchmarkRoundTrip(b *testing.B) {
	d, a := pair(b, testConfig(1, nil), testConfig(2, nil))
	sh := &signalHandler{got: make(chan struct{}, 1)}
	d.Start(sh)
	a.Start(&echoHandler{c: a})
	payload := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		buf := GetBuffer()
		buf.Write(payload)
		if err := d.Send(ctx, 1, uint64(i), buf); err != nil {
			b.Fatal(err)
		}
		<-sh.got
	}
}

// BenchmarkThroughput measures 64 KiB messages streamed one way over
// loopback, with the sender kept ahead by the write queue.
func BenchmarkThroughput(b *testing.B) {
	const size = 64 << 10
	d, a := pair(b, testConfig(1, nil), testConfig(2, nil))
	sh := &signalHandler{got: make(chan struct{}, 1024)}
	d.Start(&signalHandler{got: make(chan struct{}, 1)})
	a.Start(sh)
	payload := make([]byte, size)
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		for range b.N {
			<-sh.got
		}
		close(done)
	}()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		buf := GetBuffer()
		buf.Write(payload)
		if err := d.Send(ctx, 1, uint64(i), buf); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	if got := sh.bytes.Load(); got != int64(b.N)*size {
		b.Fatalf("received %d bytes, want %d", got, int64(b.N)*size)
	}
}

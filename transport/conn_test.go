package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// payloadFor returns a payload that encodes its id, so the receiver can
// check that each message arrived intact and under its own id.
func payloadFor(id uint64) []byte {
	n := int(id%97) * 13
	p := make([]byte, 8+n)
	binary.BigEndian.PutUint64(p, id)
	for i := range n {
		p[8+i] = byte(id) ^ byte(i)
	}
	return p
}

func TestConcurrentSends(t *testing.T) {
	checkLeaks(t)
	const senders, perSender = 1000, 3
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	dr, ar := newRecorder(senders*perSender), newRecorder(senders*perSender)
	d.Start(dr)
	a.Start(ar)
	var wg sync.WaitGroup
	errs := make(chan error, 2*senders)
	for i := range senders {
		wg.Add(2)
		for _, c := range []*Conn{d, a} {
			go func() {
				defer wg.Done()
				for j := range perSender {
					id := uint64(i*perSender + j)
					if err := c.Send(ctxT(t), Kind(1+id%3), id, bufferOf(payloadFor(id))); err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Send: %v", err)
	}
	for _, r := range []*recorder{dr, ar} {
		seen := make(map[uint64]bool)
		for range senders * perSender {
			m := r.next(t)
			if seen[m.id] {
				t.Fatalf("message %d delivered twice", m.id)
			}
			seen[m.id] = true
			if m.kind != Kind(1+m.id%3) || !bytes.Equal(m.payload, payloadFor(m.id)) {
				t.Fatalf("message %d arrived damaged: kind %d, %d bytes", m.id, m.kind, len(m.payload))
			}
		}
	}
}

// TestFragmentation sends messages around the fragment size and checks on
// the wire, with a raw reader, that they are split into frames of at most
// MaxFramePayload with FlagMore on all but the last, and reassemble exactly.
func TestFragmentation(t *testing.T) {
	sizes := []int{0, 1, MaxFramePayload - 1, MaxFramePayload, MaxFramePayload + 1, 3 * MaxFramePayload, 8 << 20}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			checkLeaks(t)
			payload := make([]byte, size)
			rng := rand.NewChaCha8([32]byte{byte(size)})
			rng.Read(payload)
			l := listen(t, testConfig(2, nil))
			nc := rawDial(t, l.Addr().String(), 1, "test-cluster")
			c := accept(t, l)
			closeAtEnd(t, c)
			c.Start(newRecorder(1))
			if err := c.Send(ctxT(t), 5, 99, bufferOf(payload)); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(waitLimit))
			var got []byte
			frames := 0
			for {
				f, err := readRawFrame(nc)
				if err != nil {
					t.Fatalf("after %d frames: %v", frames, err)
				}
				if f.kind > KindMax {
					continue // a keepalive ping
				}
				frames++
				if f.kind != 5 || f.id != 99 {
					t.Fatalf("frame %d: kind %d id %d", frames, f.kind, f.id)
				}
				got = append(got, f.payload...)
				if f.flags&FlagMore == 0 {
					break
				}
				if f.length != MaxFramePayload {
					t.Errorf("frame %d with FlagMore carries %d bytes, want %d", frames, f.length, MaxFramePayload)
				}
			}
			if want := max(1, (size+MaxFramePayload-1)/MaxFramePayload); frames != want {
				t.Errorf("%d bytes went in %d frames, want %d", size, frames, want)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("reassembled %d bytes differ from the %d sent", len(got), size)
			}
		})
	}
}

func TestBigMessageRoundTrip(t *testing.T) {
	checkLeaks(t)
	payload := make([]byte, 8<<20+12345)
	rand.NewChaCha8([32]byte{8}).Read(payload)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	ar := newRecorder(1)
	d.Start(newRecorder(1))
	a.Start(ar)
	if err := d.Send(ctxT(t), 1, 7, bufferOf(payload)); err != nil {
		t.Fatal(err)
	}
	if m := ar.next(t); m.id != 7 || !bytes.Equal(m.payload, payload) {
		t.Errorf("message %d of %d bytes arrived, want the %d bytes sent", m.id, len(m.payload), len(payload))
	}
}

// TestSmallOvertakesBig checks that a small message sent while a 32 MiB one
// is being written arrives before the big one completes. The receiver
// starts reading only after both are queued, so the big one is still being
// written (the socket buffers hold a few MiB) when the small one is sent.
func TestSmallOvertakesBig(t *testing.T) {
	checkLeaks(t)
	big := make([]byte, 32<<20)
	rand.NewChaCha8([32]byte{32}).Read(big)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	ar := newRecorder(2)
	d.Start(newRecorder(1))
	if err := d.Send(ctxT(t), 1, 1, bufferOf(big)); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(ctxT(t), 1, 2, bufferOf([]byte("small"))); err != nil {
		t.Fatal(err)
	}
	a.Start(ar)
	first, second := ar.next(t), ar.next(t)
	if first.id != 2 || string(first.payload) != "small" {
		t.Errorf("first delivery: message %d (%d bytes), want the small message 2", first.id, len(first.payload))
	}
	if second.id != 1 || !bytes.Equal(second.payload, big) {
		t.Errorf("second delivery: message %d (%d bytes), want the big message 1 intact", second.id, len(second.payload))
	}
}

// TestSameKeyKeepsOrder checks that messages with the same kind and id are
// never interleaved, while a message with the same id and another kind may
// overtake them.
func TestSameKeyKeepsOrder(t *testing.T) {
	checkLeaks(t)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	ar := newRecorder(10)
	msgs := []struct {
		kind Kind
		data []byte
	}{
		{1, bytes.Repeat([]byte{'a'}, 5*MaxFramePayload/2)},
		{1, bytes.Repeat([]byte{'b'}, 3*MaxFramePayload/2)},
		{1, []byte("c")},
		{2, bytes.Repeat([]byte{'d'}, 2*MaxFramePayload)},
		{2, []byte("e")},
		{3, []byte("f")},
	}
	for _, m := range msgs {
		if err := d.Send(ctxT(t), m.kind, 42, bufferOf(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	// All are queued before the writer starts, so its first round sees
	// them all.
	d.Start(newRecorder(1))
	a.Start(ar)
	byKind := make(map[Kind][][]byte)
	var order []string
	for range msgs {
		m := ar.next(t)
		if m.id != 42 {
			t.Fatalf("id %d", m.id)
		}
		byKind[m.kind] = append(byKind[m.kind], m.payload)
		order = append(order, fmt.Sprintf("%d:%c", m.kind, m.payload[0]))
	}
	for _, m := range msgs {
		if len(byKind[m.kind]) == 0 || !bytes.Equal(byKind[m.kind][0], m.data) {
			t.Fatalf("kind %d: messages out of order or damaged; delivery order %v", m.kind, order)
		}
		byKind[m.kind] = byKind[m.kind][1:]
	}
	// The small message of kind 3 overtook the big ones.
	if order[0] != "3:f" {
		t.Errorf("delivery order %v: the small message of another kind did not go first", order)
	}
}

// TestSendBackpressure checks that Send blocks when MaxQueuedBytes are
// queued, honours its context while blocked, resumes when the writer frees
// space, and fails with ErrClosed when the connection closes.
func TestSendBackpressure(t *testing.T) {
	const limit = 64 << 10
	cfg := testConfig(1, nil)
	cfg.MaxQueuedBytes = limit
	setup := func(t *testing.T) (d, a *Conn) {
		d, a = pair(t, cfg, testConfig(2, nil))
		// d is not started yet: its writer does not run, so what is sent
		// stays queued.
		for i := range 3 {
			if err := d.Send(ctxT(t), 1, uint64(i), bufferOf(make([]byte, 20<<10))); err != nil {
				t.Fatal(err)
			}
		}
		return d, a
	}
	t.Run("honours ctx", func(t *testing.T) {
		checkLeaks(t)
		d, _ := setup(t)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := d.Send(ctx, 1, 3, bufferOf(make([]byte, 20<<10)))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send over the limit: %v, want context.DeadlineExceeded", err)
		}
		// Messages that fit still go, and a big message counts as half the
		// limit, so it fits beside what is queued.
		if err := d.Send(ctxT(t), 1, 4, bufferOf(make([]byte, 1<<10))); err != nil {
			t.Errorf("a small Send that fits: %v", err)
		}
		d.mu.Lock()
		queued := d.queued
		d.mu.Unlock()
		if queued != 61<<10 {
			t.Errorf("queued = %d bytes, want %d", queued, 61<<10)
		}
	})
	t.Run("big message counts as half", func(t *testing.T) {
		checkLeaks(t)
		d, _ := pair(t, cfg, testConfig(2, nil))
		if err := d.Send(ctxT(t), 1, 1, bufferOf(make([]byte, 10<<20))); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := d.Send(ctx, 1, 2, bufferOf(make([]byte, 30<<10))); err != nil {
			t.Errorf("a small Send behind a big one blocked: %v", err)
		}
	})
	t.Run("resumes", func(t *testing.T) {
		checkLeaks(t)
		d, a := setup(t)
		ar := newRecorder(4)
		a.Start(ar)
		res := make(chan error, 1)
		go func() { res <- d.Send(ctxT(t), 1, 3, bufferOf(make([]byte, 20<<10))) }()
		waitBlocked(t, d, 1)
		d.Start(newRecorder(1)) // the writer drains the queue
		if err := <-res; err != nil {
			t.Fatalf("blocked Send: %v", err)
		}
		for i := range 4 {
			if m := ar.next(t); m.id != uint64(i) {
				t.Errorf("delivery %d: message %d", i, m.id)
			}
		}
	})
	t.Run("fails on close", func(t *testing.T) {
		checkLeaks(t)
		d, _ := setup(t)
		res := make(chan error, 1)
		go func() { res <- d.Send(ctxT(t), 1, 3, bufferOf(make([]byte, 20<<10))) }()
		waitBlocked(t, d, 1)
		d.Abort(errors.New("boom"))
		if err := <-res; err == nil || err.Error() != "boom" {
			t.Errorf("blocked Send after Abort: %v, want boom", err)
		}
	})
}

// waitBlocked waits until n Sends are blocked for queue space on c.
func waitBlocked(t *testing.T, c *Conn, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		c.mu.Lock()
		waiting := c.waiting
		c.mu.Unlock()
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Sends blocked, want %d", waiting, n)
		}
		time.Sleep(time.Millisecond) // no event to await: Send blocks in a select
	}
}

// TestSendBlockedByStalledPeer fills the socket of a peer that reads
// nothing until Send blocks, checks that Send honours its context, then
// lets the peer read and checks that everything arrives.
func TestSendBlockedByStalledPeer(t *testing.T) {
	checkLeaks(t)
	cfg := testConfig(2, nil)
	cfg.MaxQueuedBytes = 256 << 10
	l := listen(t, cfg)
	nc := rawDial(t, l.Addr().String(), 1, "test-cluster")
	c := accept(t, l)
	closeAtEnd(t, c)
	c.Start(newRecorder(1))
	chunk := make([]byte, 32<<10)
	sent := 0
	for ; ; sent++ {
		if sent > 100000 {
			t.Fatal("Send never blocked")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := c.Send(ctx, 1, uint64(sent), bufferOf(chunk))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	nc.SetReadDeadline(time.Now().Add(waitLimit))
	for i := range sent {
		f, err := readRawFrame(nc)
		for err == nil && f.kind > KindMax {
			f, err = readRawFrame(nc)
		}
		if err != nil {
			t.Fatalf("frame %d of %d: %v", i, sent, err)
		}
		if f.id != uint64(i) || len(f.payload) != len(chunk) {
			t.Fatalf("frame %d: id %d, %d bytes", i, f.id, len(f.payload))
		}
	}
}

func TestSendRefused(t *testing.T) {
	checkLeaks(t)
	cfg := testConfig(1, nil)
	cfg.MaxMessageSize = 1000
	d, a := pair(t, cfg, testConfig(2, nil))
	ar := newRecorder(1)
	d.Start(newRecorder(1))
	a.Start(ar)
	tests := []struct {
		name string
		kind Kind
		size int
		err  string
	}{
		{"kind zero", 0, 1, "invalid message kind 0"},
		{"control kind", framePing, 1, "invalid message kind 240"},
		{"over MaxMessageSize", 1, 1001, "transport: message exceeds MaxMessageSize: 1001 bytes, the cap is 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Send(ctxT(t), tt.kind, 1, bufferOf(make([]byte, tt.size)))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Send: %v, want %q", err, tt.err)
			}
			if tooLarge := tt.size > 1000; errors.Is(err, ErrTooLarge) != tooLarge {
				t.Errorf("Send: %v; errors.Is ErrTooLarge is %v, want %v", err, !tooLarge, tooLarge)
			}
		})
	}
	// The connection is still usable, up to the cap included.
	if err := d.Send(ctxT(t), 1, 2, bufferOf(make([]byte, 1000))); err != nil {
		t.Fatal(err)
	}
	if m := ar.next(t); m.id != 2 || len(m.payload) != 1000 {
		t.Errorf("got message %d of %d bytes", m.id, len(m.payload))
	}
	if err := d.Send(ctxT(t), 1, 3, nil); err != nil {
		t.Fatalf("Send with a nil buffer: %v", err)
	}
	if m := ar.next(t); m.id != 3 || len(m.payload) != 0 {
		t.Errorf("got message %d of %d bytes", m.id, len(m.payload))
	}
}

// TestStartAfterClose checks that a Handler always hears of the end, even
// when the connection closed before Start.
func TestStartAfterClose(t *testing.T) {
	checkLeaks(t)
	d, _ := pair(t, testConfig(1, nil), testConfig(2, nil))
	if err := d.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d.Wait() // returns at once: nothing was started
	r := newRecorder(1)
	d.Start(r)
	if err := r.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("HandleClosed(%v), want ErrClosed", err)
	}
	d.Start(newRecorder(1)) // later calls do nothing
	if err := d.Send(ctxT(t), 1, 1, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

func TestBufferPool(t *testing.T) {
	b := GetBuffer()
	b.WriteString("x")
	PutBuffer(b)
	if b.Len() != 0 {
		t.Errorf("PutBuffer left %d bytes", b.Len())
	}
	PutBuffer(nil) // allowed
	big := GetBuffer()
	big.Grow(maxPooled + 1)
	big.WriteString("kept")
	PutBuffer(big) // too big: left to the collector, untouched
	if big.String() != "kept" {
		t.Errorf("PutBuffer reset a buffer it does not pool")
	}
}

var _ net.Conn = fakeConn{}

// TestBulkGoesLast checks that bulk messages queued first are written after
// small ones queued later, in their own order, and that SendInline delivers
// a message on an idle connection.
func TestBulkGoesLast(t *testing.T) {
	checkLeaks(t)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	ar := newRecorder(10)
	chunk := bytes.Repeat([]byte{'x'}, MaxFramePayload-16)
	for i := range 3 {
		if err := d.SendBulk(ctxT(t), 1, uint64(10+i), bufferOf(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if err := d.Send(ctxT(t), 2, uint64(20+i), bufferOf([]byte("small"))); err != nil {
			t.Fatal(err)
		}
	}
	d.Start(newRecorder(1))
	a.Start(ar)
	var order []uint64
	for range 5 {
		order = append(order, ar.next(t).id)
	}
	if want := []uint64{20, 21, 10, 11, 12}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("delivery order %v, want %v (small first, bulk in order)", order, want)
	}
	if err := d.SendInline(ctxT(t), 3, 30, bufferOf([]byte("inline"))); err != nil {
		t.Fatal(err)
	}
	if m := ar.next(t); m.id != 30 || string(m.payload) != "inline" {
		t.Fatalf("inline message: %d %q", m.id, m.payload)
	}
}

// SendBulkInline writes bulk messages itself while the connection is idle
// and queues them behind the others while it is not: bulk messages keep
// their order, small ones sent meanwhile all arrive, and a message of
// several frames goes through the queue.
func TestSendBulkInline(t *testing.T) {
	checkLeaks(t)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	const bulks, smalls = 40, 200
	ar := newRecorder(bulks + smalls + 1)
	d.Start(newRecorder(1))
	a.Start(ar)
	chunk := bytes.Repeat([]byte{'b'}, MaxFramePayload)
	smallDone := make(chan error, 1)
	go func() {
		for i := range smalls {
			if err := d.SendInline(ctxT(t), 2, uint64(i), bufferOf([]byte("small"))); err != nil {
				smallDone <- err
				return
			}
		}
		smallDone <- nil
	}()
	for i := range bulks {
		chunk[0] = byte(i)
		if err := d.SendBulkInline(ctxT(t), 1, 7, bufferOf(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	huge := bytes.Repeat([]byte("0123456789abcdef"), MaxFramePayload/8) // two frames
	if err := d.SendBulkInline(ctxT(t), 3, 8, bufferOf(huge)); err != nil {
		t.Fatal(err)
	}
	if err := <-smallDone; err != nil {
		t.Fatal(err)
	}
	next, small := 0, 0
	for range bulks + smalls + 1 {
		m := ar.next(t)
		switch m.kind {
		case 1:
			if len(m.payload) != MaxFramePayload || int(m.payload[0]) != next {
				t.Fatalf("bulk message %d of %d bytes, want %d of %d", m.payload[0], len(m.payload), next, MaxFramePayload)
			}
			next++
		case 2:
			small++
		case 3:
			if !bytes.Equal(m.payload, huge) {
				t.Fatalf("the message of two frames arrived as %d other bytes", len(m.payload))
			}
		}
	}
	if next != bulks || small != smalls {
		t.Fatalf("%d bulk and %d small messages arrived, want %d and %d", next, small, bulks, smalls)
	}
}

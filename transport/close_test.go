package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestGracefulClose queues messages, some big, on a connection whose peer
// is not reading yet (so the writer is blocked on the socket), closes it,
// and checks that the peer receives every message intact, then HandleClosed
// last, having seen the GoAway; and that Close waits for all of it.
func TestGracefulClose(t *testing.T) {
	checkLeaks(t)
	const small = 50
	big := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{'g'}).Read(big)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	dr, ar := newRecorder(1), newRecorder(small+1)
	d.Start(dr)
	if err := d.Send(ctxT(t), 1, 1000, bufferOf(big)); err != nil {
		t.Fatal(err)
	}
	for i := range small {
		if err := d.Send(ctxT(t), 2, uint64(i), bufferOf(payloadFor(uint64(i)))); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close(ctxT(t)) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the peer read anything", err)
	case <-time.After(50 * time.Millisecond): // Close must be waiting for the drain
	}
	if err := d.Send(ctxT(t), 1, 1, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send during Close: %v, want ErrClosed", err)
	}
	a.Start(ar)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
	// Close waited for the Handler's last call.
	select {
	case <-dr.closed:
	default:
		t.Error("Close returned before HandleClosed")
	}
	if err := dr.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("closer's HandleClosed(%v), want ErrClosed", err)
	}
	if err := ar.waitClosed(t); !errors.Is(err, ErrPeerGone) {
		t.Errorf("peer's HandleClosed(%v), want ErrPeerGone", err)
	}
	got := make(map[uint64][]byte)
	for range small + 1 {
		m := ar.next(t)
		got[m.id] = m.payload
	}
	if !bytes.Equal(got[1000], big) {
		t.Errorf("the big message arrived with %d bytes", len(got[1000]))
	}
	for i := range uint64(small) {
		if !bytes.Equal(got[i], payloadFor(i)) {
			t.Errorf("message %d arrived as %d bytes", i, len(got[i]))
		}
	}
	events := ar.eventLog()
	if len(events) != small+3 || events[len(events)-1] != "closed" || !slices.Contains(events, "goaway") {
		t.Errorf("peer events %v: want %d messages, a goaway, then closed", events, small+1)
	}
	if !a.GoneAway() {
		t.Error("the peer's GoneAway() is false")
	}
	d.Wait()
	a.Wait()
}

// stalledPair returns a started connection whose peer never reads, with
// more queued than the socket buffers hold, so its writer is blocked.
func stalledPair(t *testing.T) (*Conn, *recorder) {
	t.Helper()
	d, _ := pair(t, testConfig(1, nil), testConfig(2, nil))
	r := newRecorder(1)
	d.Start(r)
	if err := d.Send(ctxT(t), 1, 1, bufferOf(make([]byte, 32<<20))); err != nil {
		t.Fatal(err)
	}
	return d, r
}

// TestCloseCutShort checks that Close returns promptly, with the context's
// error, when its context ends before the queue has drained.
func TestCloseCutShort(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"already cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			d, r := stalledPair(t)
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			err := d.Close(ctx)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Close took %v", elapsed)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Close: %v, want %v", err, tt.want)
			}
			select {
			case <-r.closed:
			default:
				t.Error("Close returned before HandleClosed")
			}
			if err := r.waitClosed(t); !errors.Is(err, ErrClosed) {
				t.Errorf("HandleClosed(%v), want ErrClosed", err)
			}
		})
	}
}

// TestCloseWakesBlockedSend checks that a Send blocked for queue space
// fails with ErrClosed as soon as Close is called, not when the drain ends.
func TestCloseWakesBlockedSend(t *testing.T) {
	checkLeaks(t)
	cfg := testConfig(1, nil)
	cfg.MaxQueuedBytes = 1 << 20
	d, _ := pair(t, cfg, testConfig(2, nil))
	d.Start(newRecorder(1))
	res := make(chan error, 1)
	go func() {
		for i := uint64(0); ; i++ {
			if err := d.Send(context.Background(), 1, i, bufferOf(make([]byte, 256<<10))); err != nil {
				res <- err
				return
			}
		}
	}()
	waitBlocked(t, d, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	go d.Close(ctx)
	select {
	case err := <-res:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("blocked Send: %v, want ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the blocked Send was not woken by Close")
	}
	d.Wait()
}

func TestAbort(t *testing.T) {
	checkLeaks(t)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	dr, ar := newRecorder(1), newRecorder(1)
	d.Start(dr)
	a.Start(ar)
	boom := errors.New("boom")
	d.Abort(boom)
	d.Abort(errors.New("second reason: ignored"))
	if err := dr.waitClosed(t); err != boom {
		t.Errorf("HandleClosed(%v), want boom", err)
	}
	if err := ar.waitClosed(t); !errors.Is(err, ErrPeerGone) {
		t.Errorf("peer's HandleClosed(%v), want ErrPeerGone", err)
	}
	if err := d.Send(ctxT(t), 1, 1, nil); err != boom {
		t.Errorf("Send after Abort: %v, want boom", err)
	}
	if err := d.Close(ctxT(t)); err != nil {
		t.Errorf("Close after Abort: %v", err)
	}
	d.Wait()
	select {
	case <-d.Done():
	default:
		t.Error("Done not closed")
	}
	if dr.closeCount() != 1 {
		t.Errorf("HandleClosed called %d times", dr.closeCount())
	}
}

// TestAbortFromHandler checks that a Handler may abort its connection.
func TestAbortFromHandler(t *testing.T) {
	checkLeaks(t)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	ar := newRecorder(1)
	stop := errors.New("handler stopped it")
	ar.onMsg = func(message) error { a.Abort(stop); return nil }
	d.Start(newRecorder(1))
	a.Start(ar)
	d.Send(ctxT(t), 1, 1, nil)
	if err := ar.waitClosed(t); err != stop {
		t.Errorf("HandleClosed(%v), want the handler's reason", err)
	}
}

// TestConcurrentClose closes both ends at once, several times each.
func TestConcurrentClose(t *testing.T) {
	checkLeaks(t)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	dr, ar := newRecorder(1), newRecorder(1)
	d.Start(dr)
	a.Start(ar)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		c := d
		if i%2 == 1 {
			c = a
		}
		wg.Go(func() { errs <- c.Close(ctxT(t)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	for _, r := range []*recorder{dr, ar} {
		err := r.waitClosed(t)
		if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrPeerGone) {
			t.Errorf("HandleClosed(%v)", err)
		}
		if r.closeCount() != 1 {
			t.Errorf("HandleClosed called %d times", r.closeCount())
		}
	}
}

// TestCloseWithSilentPeer closes a connection whose peer reads everything
// but never closes its side: the closer writes what was queued and a
// GoAway, waits KeepaliveInterval for the peer, then closes anyway.
func TestCloseWithSilentPeer(t *testing.T) {
	checkLeaks(t)
	const grace = 200 * time.Millisecond
	cfg := testConfig(2, nil)
	cfg.KeepaliveInterval, cfg.KeepaliveTimeout = grace, 10*time.Second
	l := listen(t, cfg)
	nc := rawDial(t, l.Addr().String(), 1, "test-cluster")
	c := accept(t, l)
	r := newRecorder(1)
	c.Start(r)
	for i := range 3 {
		if err := c.Send(ctxT(t), 1, uint64(i), bufferOf([]byte(fmt.Sprint(i)))); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < grace-20*time.Millisecond || elapsed > grace+2*time.Second {
		t.Errorf("Close took %v, want about the grace period of %v", elapsed, grace)
	}
	nc.SetReadDeadline(time.Now().Add(waitLimit))
	// The GoAway goes out as soon as the writer sees it, possibly between
	// messages queued before; the messages keep their order.
	var got []string
	goAways := 0
	for {
		f, err := readRawFrame(nc)
		if err != nil {
			break
		}
		switch f.kind {
		case frameGoAway:
			goAways++
		case 1:
			got = append(got, string(f.payload))
		}
	}
	if fmt.Sprint(got) != "[0 1 2]" || goAways != 1 {
		t.Errorf("the peer read messages %v and %d goaways, want [0 1 2] and 1", got, goAways)
	}
	if err := r.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("HandleClosed(%v), want ErrClosed", err)
	}
}

// TestCloseNeverStarted checks Close on a connection never started.
func TestCloseNeverStarted(t *testing.T) {
	checkLeaks(t)
	l := listen(t, testConfig(2, nil))
	nc := rawDial(t, l.Addr().String(), 1, "test-cluster")
	c := accept(t, l)
	done := make(chan error, 1)
	go func() { done <- c.Close(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close of an unstarted connection blocked")
	}
	c.Wait()
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v", c.Err())
	}
	waitEOF(t, nc)
}

package transport

import (
	"bytes"
	"testing"
	"time"
)

// blocker is a Handler whose first message blocks until released, after
// moving reading to another goroutine (from a goroutine of its own, as a
// watchdog would).
type blocker struct {
	*recorder
	conn    *Conn
	release chan struct{}
	late    ReadToken // the token of a message whose method has returned
}

func (h *blocker) HandleMessage(kind Kind, id uint64, payload []byte) error {
	if err := h.recorder.HandleMessage(kind, id, payload); err != nil {
		return err
	}
	switch id {
	case 1:
		t := h.conn.ReadToken()
		done := make(chan struct{})
		go func() { h.conn.ReadOn(t); h.conn.ReadOn(t); close(done) }() // twice: the second does nothing
		<-done
		<-h.release
	case 2:
		h.late = h.conn.ReadToken()
	}
	return nil
}

func TestReadOnKeepsReadingWhileAHandlerBlocks(t *testing.T) {
	checkLeaks(t)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	h := &blocker{recorder: newRecorder(16), conn: a, release: make(chan struct{})}
	a.Start(h)
	d.Start(newRecorder(1))
	for id := uint64(1); id <= 4; id++ {
		if err := d.Send(ctxT(t), 1, id, bufferOf(bytes.Repeat([]byte{byte(id)}, 10))); err != nil {
			t.Fatal(err)
		}
	}
	// Message 1's method blocks; 2 to 4 arrive all the same.
	for want := uint64(1); want <= 4; want++ {
		if m := h.next(t); m.id != want {
			t.Fatalf("message %d arrived, want %d", m.id, want)
		}
	}
	// A token whose method has returned moves nothing: message 5 is read
	// by the one reader left, and arrives once.
	a.ReadOn(h.late)
	close(h.release)
	if err := d.Send(ctxT(t), 1, 5, bufferOf([]byte("five"))); err != nil {
		t.Fatal(err)
	}
	if m := h.next(t); m.id != 5 {
		t.Fatalf("message %d arrived, want 5", m.id)
	}
	select {
	case m := <-h.msgs:
		t.Fatalf("unexpected message %d", m.id)
	case <-time.After(50 * time.Millisecond): // a duplicate reader would deliver by now (not synchronisation)
	}
	d.Abort(nil)
	if err := h.waitClosed(t); err == nil {
		t.Fatal("HandleClosed with no error after the peer aborted")
	}
	if n := h.closeCount(); n != 1 {
		t.Errorf("HandleClosed called %d times, want once", n)
	}
}

package transport

import (
	"errors"
	"testing"
	"time"
)

// TestStalledPeerDisconnected has a peer that completed the handshake and
// then reads nothing: a Send blocked on the full queue fails with
// ErrPeerStalled after StallTimeout, the connection closes and frees what
// it held, instead of waiting for ever.
func TestStalledPeerDisconnected(t *testing.T) {
	checkLeaks(t)
	cfg := testConfig(2, nil)
	cfg.StallTimeout = 300 * time.Millisecond
	cfg.MaxQueuedBytes = 1 << 20
	cfg.KeepaliveTimeout = time.Minute // the stall, not the keepalive, must end it
	cfg.KeepaliveInterval = 10 * time.Second
	l := listen(t, cfg)
	nc := rawDial(t, l.Addr().String(), 1, "test-cluster") // never reads after this
	a := accept(t, l)
	closeAtEnd(t, a)
	rec := newRecorder(1)
	a.Start(rec)
	start := time.Now()
	var err error
	for i := range uint64(1000) { // more than the socket buffers and the queue hold
		if err = a.Send(ctxT(t), 1, i, bufferOf(make([]byte, 256<<10))); err != nil {
			break
		}
	}
	elapsed := time.Since(start)
	if !errors.Is(err, ErrPeerStalled) {
		t.Fatalf("Send: %v, want ErrPeerStalled", err)
	}
	if elapsed > waitLimit {
		t.Errorf("the stall was detected after %v", elapsed)
	}
	if got := rec.waitClosed(t); !errors.Is(got, ErrPeerStalled) {
		t.Errorf("HandleClosed(%v), want ErrPeerStalled", got)
	}
	nc.Close()
}

package transport

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// replier answers each message at once with a reply of size bytes, and
// counts them.
type replier struct {
	*recorder
	c       *Conn
	size    int
	handled atomic.Int64
	refused atomic.Int64
}

func (r *replier) HandleMessage(kind Kind, id uint64, payload []byte) error {
	r.handled.Add(1)
	err := r.c.SendReply(context.Background(), kind, id, bufferOf(make([]byte, r.size)))
	if errors.Is(err, ErrOverBudget) {
		r.refused.Add(1)
	}
	return nil
}

// TestReplyBackpressure has a peer send many requests and read none of
// the replies: the connection stops reading it once it owes a bounded
// amount (so only a bounded number of requests is handled), the replies
// never hold more than the node's budget, the pause does not count as the
// peer's silence (the keepalive does not end it), and when nothing can be
// written for StallTimeout the connection fails with ErrPeerStalled and
// gives everything back.
func TestReplyBackpressure(t *testing.T) {
	checkLeaks(t)
	const (
		limit    = 8 << 20
		size     = 256 << 10
		requests = 400 // 100 MiB of replies
	)
	cfg := testConfig(2, nil)
	cfg.Budget = NewBudget(limit)
	cfg.MaxQueuedBytes = 64 << 20 // the replies never wait for queue space: the pause (at limit/4) must stop them
	cfg.StallTimeout = 3 * time.Second
	cfg.KeepaliveInterval = 500 * time.Millisecond // would end the connection first if it counted the pause
	cfg.KeepaliveTimeout = 1500 * time.Millisecond
	l := listen(t, cfg)
	nc := rawDial(t, l.Addr().String(), 1, "test-cluster") // writes, never reads
	a := accept(t, l)
	closeAtEnd(t, a)
	// The requests are all there when reading starts, so that a busy
	// machine cannot make the peer look silent before the pause.
	var frames []byte
	for i := range uint64(requests) {
		frames = append(frames, frameBytes(1, 0, i+1, []byte("call"))...)
	}
	nc.SetWriteDeadline(time.Now().Add(waitLimit))
	if _, err := nc.Write(frames); err != nil {
		t.Fatal(err)
	}
	r := &replier{recorder: newRecorder(0), c: a, size: size}
	a.Start(r)
	deadline := time.Now().Add(waitLimit)
	for !a.Paused() {
		if time.Now().After(deadline) {
			t.Fatalf("the connection never stopped reading; %d of %d requests handled (%d replies refused)", r.handled.Load(), requests, r.refused.Load())
		}
		time.Sleep(time.Millisecond) // polling a state: no event to await
	}
	if used := cfg.Budget.Used(); used > limit/2 {
		t.Errorf("the replies hold %d bytes of the budget, over the half (%d) one peer may owe", used, limit/2)
	}
	err := r.waitClosed(t)
	if !errors.Is(err, ErrPeerStalled) {
		t.Errorf("closed with %v, want ErrPeerStalled", err)
	}
	handled := r.handled.Load()
	// What the budget lets it owe, what the socket buffers took, and one
	// request read before the pause took effect.
	if handled > requests/2 {
		t.Errorf("%d of %d requests handled for a peer that reads nothing", handled, requests)
	}
	for cfg.Budget.Used() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the budget still held after the connection closed", cfg.Budget.Used())
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("%d of %d requests handled, %d replies refused", handled, requests, r.refused.Load())
}

// TestChargeAndOwe checks what a connection may hold for its peer: a
// small charge or reply is never refused, a large one is refused when the
// node's budget is held by others or when the peer is owed half of it, and
// what is given back is freed in the budget.
func TestChargeAndOwe(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name       string
		othersHold int64 // bytes of the budget held by other connections
		owed       int   // bytes of replies this connection owes already
		reply      int   // the reply to charge; 0: a Charge of charge bytes
		charge     int
		want       bool
	}{
		{"small charge, budget full", limit, 0, 0, smallReply, true},
		{"large charge, budget full", limit, 0, 0, smallReply + 1, false},
		{"large charge, budget free", 0, 0, 0, limit / 4, true},
		{"small reply, budget full", limit, 0, smallReply, 0, true},
		{"large reply, budget full", limit, 0, smallReply + 1, 0, false},
		{"first reply of half the budget", 0, 0, limit / 2, 0, true},
		{"reply beyond half the budget", 0, limit / 2, smallReply + 1, 0, false},
		{"reply within half the budget", 0, limit / 4, limit / 8, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(1, nil)
			cfg.Budget = NewBudget(limit)
			cfg = cfg.withDefaults()
			c := newConn(fakeConn{}, &cfg, 2)
			cfg.Budget.force(tt.othersHold)
			if tt.owed > 0 {
				f := outFrame{buf: bufferOf(make([]byte, tt.owed))}
				if err := c.owe(&f); err != nil {
					t.Fatalf("owing %d bytes first: %v", tt.owed, err)
				}
				defer c.drop(&f)
			}
			before := cfg.Budget.Used()
			var got bool
			if tt.reply > 0 {
				f := outFrame{buf: bufferOf(make([]byte, tt.reply))}
				err := c.owe(&f)
				if got = err == nil; got {
					c.drop(&f)
				} else if !errors.Is(err, ErrOverBudget) {
					t.Fatalf("owe: %v, want ErrOverBudget", err)
				}
			} else if got = c.Charge(tt.charge); got {
				c.Uncharge(tt.charge)
			}
			if got != tt.want {
				t.Errorf("allowed %v, want %v", got, tt.want)
			}
			if used := cfg.Budget.Used(); used != before {
				t.Errorf("the budget holds %d bytes after the charge was given back, want %d", used, before)
			}
		})
	}
}

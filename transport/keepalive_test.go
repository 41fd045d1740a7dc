package transport

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// rawAcceptor answers one valid handshake by hand as node self, then runs
// after on the raw socket.
func rawAcceptor(t *testing.T, self nodeid.ID, after func(nc net.Conn)) string {
	return rawServer(t, func(nc net.Conn) {
		if _, err := rawAccept(nc, self); err != nil {
			t.Errorf("raw acceptor: %v", err)
			return
		}
		nc.SetDeadline(time.Time{})
		after(nc)
	})
}

// TestKeepaliveDetectsDeadPeer checks that a peer that completed the
// handshake and then answers nothing is detected within KeepaliveTimeout,
// whichever side dialed.
func TestKeepaliveDetectsDeadPeer(t *testing.T) {
	const interval, timeout = 50 * time.Millisecond, 300 * time.Millisecond
	keepalive := func(c *Config) { c.KeepaliveInterval, c.KeepaliveTimeout = interval, timeout }
	tests := []struct {
		name  string
		dial  bool // our side dials the raw peer
		reads bool // the raw peer reads (and counts pings) but answers nothing
	}{
		{"accepted, peer reads nothing", false, false},
		{"accepted, peer answers nothing", false, true},
		{"dialed, peer reads nothing", true, false},
		{"dialed, peer answers nothing", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			logs := newLogRecorder()
			cfg := testConfig(2, logs)
			keepalive(&cfg)
			pings := make(chan int, 1)
			stop := make(chan struct{})
			silent := func(nc net.Conn) {
				if !tt.reads {
					<-stop // read nothing until the timeout has been detected
					nc.SetReadDeadline(time.Now().Add(waitLimit))
					_, err := io.Copy(io.Discard, nc) // then see the socket closed
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Error("the raw peer's socket was not closed")
					}
					pings <- -1
					return
				}
				n := 0
				for {
					f, err := readRawFrame(nc)
					if err != nil {
						break
					}
					if f.kind == framePing {
						n++
					}
				}
				pings <- n
			}
			var c *Conn
			if tt.dial {
				addr := rawAcceptor(t, 1, silent)
				var err error
				if c, err = Dial(ctxT(t), addr, cfg, 1); err != nil {
					t.Fatal(err)
				}
				closeAtEnd(t, c)
			} else {
				l := listen(t, cfg)
				nc := rawDial(t, l.Addr().String(), 1, "test-cluster")
				go silent(nc)
				c = accept(t, l)
				closeAtEnd(t, c)
			}
			r := newRecorder(1)
			start := time.Now()
			c.Start(r)
			err := r.waitClosed(t)
			elapsed := time.Since(start)
			close(stop)
			if !errors.Is(err, ErrPeerTimeout) {
				t.Fatalf("HandleClosed(%v), want ErrPeerTimeout", err)
			}
			if elapsed < timeout || elapsed > timeout+time.Second {
				t.Errorf("detected after %v, want just after %v", elapsed, timeout)
			}
			logs.waitFor(t, "connection closed", "peer timed out")
			select {
			case n := <-pings:
				// Pings every interval from the first silent one: about
				// timeout/interval - 1 of them.
				if tt.reads && (n < 2 || n > int(timeout/interval)+1) {
					t.Errorf("the peer received %d pings in %v, want about %d", n, timeout, timeout/interval-1)
				}
			case <-time.After(waitLimit):
				t.Fatal("the raw peer's socket was not closed")
			}
		})
	}
}

// TestKeepaliveHealthyIdle checks that an idle connection between two live
// peers stays up across many keepalive intervals, kept alive by pings and
// pongs alone.
func TestKeepaliveHealthyIdle(t *testing.T) {
	checkLeaks(t)
	// The timeout is many intervals and long enough that a loaded machine
	// descheduling either end does not starve the pings for that long.
	const interval, timeout = 30 * time.Millisecond, 1500 * time.Millisecond
	cfg := func(self nodeid.ID) Config {
		c := testConfig(self, nil)
		c.KeepaliveInterval, c.KeepaliveTimeout = interval, timeout
		return c
	}
	d, a := pair(t, cfg(1), cfg(2))
	dr, ar := newRecorder(1), newRecorder(1)
	d.Start(dr)
	a.Start(ar)
	// The property is about time passing: the connection must survive
	// several timeouts' worth (150 intervals) of idleness.
	idle := time.NewTimer(3 * timeout)
	select {
	case <-d.Done():
		t.Fatalf("dialer closed while idle: %v", d.Err())
	case <-a.Done():
		t.Fatalf("acceptor closed while idle: %v", a.Err())
	case <-idle.C:
	}
	for _, c := range []*Conn{d, a} {
		if err := c.Err(); err != nil {
			t.Errorf("Err() = %v after idling", err)
		}
		// Frames (pings or pongs) arrived recently, though no message was sent.
		if last := time.Duration(c.lastRecv.Load()); time.Since(c.start)-last > timeout {
			t.Errorf("nothing received for %v", time.Since(c.start)-last)
		}
	}
	if err := d.Send(ctxT(t), 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if m := ar.next(t); m.id != 1 {
		t.Errorf("got message %d", m.id)
	}
}

// TestPingAnswered checks that pings are answered with the last nonce, and
// that a flood of pings from a peer that does not read coalesces into
// pongs rather than queueing one per ping.
func TestPingAnswered(t *testing.T) {
	checkLeaks(t)
	h := newHostileConn(t, nil)
	const pings = 20000
	var flood []byte
	for i := range pings {
		flood = append(flood, frameBytes(framePing, 0, uint64(i+1), nil)...)
	}
	flood = append(flood, frameBytes(1, 0, 77, nil)...)
	if _, err := h.raw.Write(flood); err != nil {
		t.Fatal(err)
	}
	if m := h.rec.next(t); m.id != 77 {
		t.Fatalf("got message %d", m.id)
	}
	// Every ping has been read; the pong for the last one is due, and at
	// most one pong is ever pending.
	h.conn.mu.Lock()
	queued := len(h.conn.queue)
	h.conn.mu.Unlock()
	if queued != 0 {
		t.Errorf("%d frames queued after a ping flood", queued)
	}
	h.raw.SetReadDeadline(time.Now().Add(waitLimit))
	pongs := 0
	for {
		f, err := readRawFrame(h.raw)
		if err != nil {
			t.Fatalf("after %d pongs: %v", pongs, err)
		}
		if f.kind != framePong {
			continue
		}
		pongs++
		if f.id == pings {
			break
		}
	}
	if pongs > pings {
		t.Errorf("%d pongs for %d pings", pongs, pings)
	}
	if err := h.conn.Err(); err != nil {
		t.Errorf("the connection closed: %v", err)
	}
}

package memberlisttest_test

import (
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/trellisrpc/trellis/membership/memberlist/memberlisttest"
)

// TestDelay checks, on a synctest bubble's clock, that a packet arrives
// exactly the network's one-way delay after it is sent (or at once without a
// delay), that a dial takes a round trip, and that the counters see both.
func TestDelay(t *testing.T) {
	for _, delay := range []time.Duration{0, 300 * time.Microsecond} {
		t.Run(delay.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				nw := memberlisttest.NewNetwork()
				nw.SetDelay(delay)
				a, b := nw.NewTransport(), nw.NewTransport()
				defer a.Shutdown()
				defer b.Shutdown()

				sent, err := a.WriteTo([]byte("ping"), b.Addr())
				if err != nil {
					t.Fatal(err)
				}
				p := <-b.PacketCh()
				if got := p.Timestamp.Sub(sent); got != delay {
					t.Errorf("packet took %v, want %v", got, delay)
				}
				if string(p.Buf) != "ping" || p.From.String() != a.Addr() {
					t.Errorf("got %q from %v, want \"ping\" from %s", p.Buf, p.From, a.Addr())
				}

				start := time.Now()
				accepted := make(chan error, 1)
				go func() {
					c := <-b.StreamCh()
					defer c.Close()
					buf := make([]byte, 5)
					_, err := io.ReadFull(c, buf)
					accepted <- err
				}()
				c, err := a.DialTimeout(b.Addr(), time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if got := time.Since(start); got != 2*delay {
					t.Errorf("dial took %v, want %v", got, 2*delay)
				}
				if _, err := c.Write([]byte("hello")); err != nil {
					t.Fatal(err)
				}
				if err := <-accepted; err != nil {
					t.Fatal(err)
				}
				c.Close()

				sa, sb := a.Stats(), b.Stats()
				if sa.PacketsSent != 1 || sa.BytesSent != 4 || sb.PacketsReceived != 1 || sb.BytesReceived != 4 {
					t.Errorf("packet counters: sender %+v, receiver %+v", sa, sb)
				}
				if sa.StreamsOpened != 1 || sa.StreamBytesSent != 5 || sb.StreamBytesReceived != 5 {
					t.Errorf("stream counters: sender %+v, receiver %+v", sa, sb)
				}
			})
		})
	}
}

// TestPartitionAndShutdown checks that a partition and a shut-down endpoint
// lose packets and refuse streams, and that healing restores them.
func TestPartitionAndShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := memberlisttest.NewNetwork()
		nw.SetDelay(100 * time.Microsecond)
		a, b := nw.NewTransport(), nw.NewTransport()
		defer a.Shutdown()
		if err := nw.Partition([]string{a.Addr()}, []string{b.Addr()}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.WriteTo([]byte("x"), b.Addr()); err != nil {
			t.Fatal(err)
		}
		if _, err := a.DialTimeout(b.Addr(), time.Second); !errors.Is(err, memberlisttest.ErrUnreachable) {
			t.Errorf("dial across a partition: %v, want ErrUnreachable", err)
		}
		time.Sleep(time.Millisecond)
		select {
		case p := <-b.PacketCh():
			t.Errorf("packet %q crossed the partition", p.Buf)
		default:
		}
		nw.Heal()
		if _, err := a.WriteTo([]byte("y"), b.Addr()); err != nil {
			t.Fatal(err)
		}
		if p := <-b.PacketCh(); string(p.Buf) != "y" {
			t.Errorf("after heal got %q, want \"y\"", p.Buf)
		}
		b.Shutdown()
		if _, err := b.WriteTo([]byte("z"), a.Addr()); err == nil {
			t.Error("a shut-down transport sent a packet")
		}
		if _, err := a.DialTimeout(b.Addr(), time.Second); !errors.Is(err, memberlisttest.ErrUnreachable) {
			t.Errorf("dial to a shut-down transport: %v, want ErrUnreachable", err)
		}
	})
}

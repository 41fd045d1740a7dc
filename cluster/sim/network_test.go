package sim

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// pair returns a connection from host 0 to host 1 and its accepted end.
func pair(t *testing.T, nw *Network) (client, server net.Conn) {
	t.Helper()
	ln, err := nw.Listen(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	client, err = nw.Dialer(0)(context.Background(), nw.StreamAddr(1))
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// readWithin reads what arrives on c within d (simulated).
func readWithin(c net.Conn, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func TestStreamAcrossFaults(t *testing.T) {
	cases := []struct {
		name  string
		fault func(nw *Network)
		// what the server reads within a second of the fault, and after a
		// heal
		during, after string
		duringErr     error
	}{
		{"whole", func(*Network) {}, "a", "", nil},
		{"cut both ways: held, then delivered in order", func(nw *Network) { nw.Partition([]int{0}, []int{1}) }, "", "a", os.ErrDeadlineExceeded},
		{"cut the other way: delivered", func(nw *Network) { nw.Cut(1, 0) }, "a", "", nil},
		{"sender crashed: silence", func(nw *Network) { nw.Crash(0) }, "", "", os.ErrDeadlineExceeded},
		{"sender exited: EOF", func(nw *Network) { nw.Exit(0) }, "", "", io.EOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				nw := NewNetwork(1, 2, LinkConditions{Delay: time.Millisecond})
				client, server := pair(t, nw)
				tc.fault(nw)
				client.Write([]byte("a"))
				got, err := readWithin(server, time.Second)
				if got != tc.during || !errors.Is(err, tc.duringErr) {
					t.Fatalf("during the fault: read %q, %v; want %q, %v", got, err, tc.during, tc.duringErr)
				}
				if tc.after == "" {
					return
				}
				nw.Heal()
				if got, err := readWithin(server, time.Second); got != tc.after || err != nil {
					t.Fatalf("after the heal: read %q, %v; want %q", got, err, tc.after)
				}
			})
		})
	}
}

func TestStreamStaysInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewNetwork(7, 2, LinkConditions{Delay: time.Millisecond, Jitter: 5 * time.Millisecond})
		client, server := pair(t, nw)
		want := make([]byte, 200)
		for i := range want {
			want[i] = byte(i)
			client.Write(want[i : i+1])
		}
		client.Close()
		got, err := io.ReadAll(server)
		if err != nil || string(got) != string(want) {
			t.Fatalf("read %v, %v; want the 200 bytes in order", got, err)
		}
	})
}

func TestDial(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(nw *Network)
		listen bool
		want   string // "" for success
	}{
		{"listening", func(*Network) {}, true, ""},
		{"not listening: refused", func(*Network) {}, false, "connection refused"},
		{"cut: unanswered", func(nw *Network) { nw.Cut(1, 0) }, true, "deadline exceeded"},
		{"crashed: unanswered", func(nw *Network) { nw.Crash(1) }, true, "deadline exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				nw := NewNetwork(1, 2, LinkConditions{Delay: time.Millisecond})
				if tc.listen {
					ln, err := nw.Listen(1)
					if err != nil {
						t.Fatal(err)
					}
					defer ln.Close()
				}
				tc.setup(nw)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				c, err := nw.Dialer(0)(ctx, nw.StreamAddr(1))
				if c != nil {
					c.Close()
				}
				switch {
				case tc.want == "" && err != nil:
					t.Fatalf("dial: %v", err)
				case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
					t.Fatalf("dial: %v, want an error saying %q", err, tc.want)
				}
			})
		})
	}
}

// TestDialThroughHealedCut checks that a dial over a cut link connects
// once the link is whole again, when the SYN is sent again (after 1 s, then
// 2 s more), as a kernel's dial would, instead of waiting for its deadline.
func TestDialThroughHealedCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := NewNetwork(1, 2, LinkConditions{Delay: time.Millisecond})
		ln, err := nw.Listen(1)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		nw.Cut(1, 0)
		time.AfterFunc(1500*time.Millisecond, nw.Heal)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		c, err := nw.Dialer(0)(ctx, nw.StreamAddr(1))
		if err != nil {
			t.Fatalf("dial through a cut healed after 1.5 s: %v", err)
		}
		c.Close()
		if took := time.Since(start); took < 3*time.Second || took > 3100*time.Millisecond {
			t.Fatalf("connected after %v, want at the third SYN, 3 s after the first", took)
		}
	})
}

// received sends 200 datagrams from host 0 to host 1 on a lossy network
// and returns which arrived.
func received(t *testing.T, seed uint64) []byte {
	var got []byte
	synctest.Test(t, func(t *testing.T) {
		nw := NewNetwork(seed, 2, LinkConditions{Delay: time.Millisecond, Jitter: time.Millisecond, Loss: 0.5})
		a, _ := nw.ListenPacket(0)
		b, _ := nw.ListenPacket(1)
		defer a.Close()
		defer b.Close()
		for i := range 200 {
			a.WriteTo([]byte{byte(i)}, nw.PacketAddr(1))
		}
		time.Sleep(10 * time.Millisecond)
		buf := make([]byte, 8)
		for len(b.inbox) > 0 {
			n, from, err := b.ReadFrom(buf)
			if err != nil || n != 1 || from != nw.PacketAddr(0) {
				t.Fatalf("read %d bytes from %v: %v", n, from, err)
			}
			got = append(got, buf[0])
		}
	})
	return got
}

func TestDatagramsFollowTheSeed(t *testing.T) {
	a, b, c := received(t, 1), received(t, 1), received(t, 2)
	if len(a) < 60 || len(a) > 140 {
		t.Fatalf("%d of 200 datagrams arrived with 50%% loss", len(a))
	}
	if string(a) != string(b) {
		t.Fatalf("the same seed delivered %v, then %v", a, b)
	}
	if string(a) == string(c) {
		t.Fatalf("seeds 1 and 2 delivered the same datagrams")
	}
}

func TestScheduleFollowsTheSeed(t *testing.T) {
	for seed := uint64(1); seed < 50; seed++ {
		a, b := Generate(seed), Generate(seed)
		if a.String() != b.String() {
			t.Fatalf("seed %d gave two schedules:\n%v\n%v", seed, a, b)
		}
		dead := 0
		for _, st := range a.Steps {
			switch st.Kind {
			case Crash, Exit:
				dead++
			case Restart:
				dead--
			}
			if 2*dead >= a.Nodes {
				t.Fatalf("seed %d: %d of %d nodes down at %v", seed, dead, a.Nodes, st.At)
			}
		}
		if last := a.Steps[len(a.Steps)-1]; last.Kind != Heal || last.At != a.Quiet {
			t.Fatalf("seed %d: the schedule ends with %v, not a heal at Quiet", seed, last)
		}
	}
}

package membership_test

import (
	"context"
	"math"
	"net"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

// Over real UDP on 127.0.0.1: a member holding the key forges a heartbeat with
// another member's ID. Incarnation 2^64−1 is refused by everyone; a plausible
// forgery is refuted by the real member within a second, which keeps its address
// and its leadership.
func TestNodeUDPImpersonationRefuted(t *testing.T) {
	checkGoroutines(t)
	mk := func(name string, seeds ...string) *liveNode {
		n, err := membership.New(membership.Config{Name: name, Addr: name + ":9000", Keys: [][]byte{testKey},
			DisableMulticast: true, BindAddr: "127.0.0.1:0", Seeds: seeds, Interval: fastInterval})
		if err != nil {
			t.Fatal(err)
		}
		ln := &liveNode{Node: n, sub: n.Subscribe(0)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return ln
	}
	victim := mk("victim", "127.0.0.1:1")
	seed := victim.Local().PacketAddr.String()
	time.Sleep(time.Millisecond) // the victim must be the oldest by its join time
	observers := []*liveNode{mk("o1", seed), mk("o2", seed)}
	for _, o := range observers {
		o.await(t, "the victim joined", is(membership.Joined, victim.ID()))
		for len(o.Members()) != 3 {
			o.await(t, "a join", func(ev membership.Event) bool { return ev.Kind == membership.Joined })
		}
		if l, _ := o.Leader(); l.ID != victim.ID() {
			t.Fatalf("%s: leader %v, want the victim", o.Local().Name, l)
		}
	}

	forger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	send := func(f membership.Forgery, to ...*liveNode) {
		b := f.Encode(membership.DefaultClusterLabel, testKey)
		for _, n := range to {
			if _, err := forger.WriteToUDPAddrPort(b, n.Local().PacketAddr); err != nil {
				t.Fatal(err)
			}
		}
	}
	self := victim.Local()
	forge := func(inc uint64) membership.Forgery {
		return membership.Forgery{ID: self.ID, Inc: inc, Seq: 1 << 20, Start: self.JoinTime, Name: self.Name, Addr: evilAddr}
	}

	// Incarnation 2^64−1: implausible, refused by every observer.
	before := []uint64{observers[0].Stats().Implausible, observers[1].Stats().Implausible}
	send(forge(math.MaxUint64), observers[0], observers[1], victim)
	deadline := time.Now().Add(5 * time.Second)
	for i, o := range observers {
		for o.Stats().Implausible == before[i] { // a counter: no event to await
			if time.Now().After(deadline) {
				t.Fatalf("%s never refused the forgery", o.Local().Name)
			}
			time.Sleep(time.Millisecond)
		}
		m, ok := find(o.Members(), self.ID)
		if !ok || m.Addr != self.Addr || m.Incarnation != self.Incarnation {
			t.Fatalf("%s sees the victim as %+v after a 2^64-1 forgery", o.Local().Name, m)
		}
	}

	// A plausible forgery, to the observers only: refuted within a second.
	forged := self.Incarnation + 1
	start := time.Now()
	send(forge(forged), observers...)
	for _, o := range observers {
		o.await(t, "the real victim back", func(ev membership.Event) bool {
			return ev.Member.ID == self.ID && ev.Member.Incarnation > forged && ev.Member.Addr == self.Addr &&
				(ev.Kind == membership.Joined || ev.Kind == membership.Updated)
		})
	}
	took := time.Since(start)
	t.Logf("refuted in %v; victim: %d impersonations refuted", took, victim.Stats().Impersonations)
	if took > time.Second {
		t.Errorf("refutation took %v, want at most 1s", took)
	}
	for _, o := range observers {
		for {
			ev, ok := o.sub.TryNext()
			if !ok {
				break
			}
			o.pending = append(o.pending, ev)
		}
		for _, ev := range o.pending {
			if ev.Member.ID == self.ID && (ev.Kind == membership.Failed || ev.Kind == membership.Left || ev.Member.Addr != self.Addr) {
				t.Errorf("%s: event %v during the attack", o.Local().Name, ev)
			}
		}
		l, _ := o.Leader()
		if l.ID != self.ID || l.Addr != self.Addr || !l.JoinTime.Equal(self.JoinTime) {
			t.Errorf("%s: leader %+v, want the real victim", o.Local().Name, l)
		}
	}
	if victim.Stats().Impersonations == 0 {
		t.Error("the victim counted no impersonation")
	}
}

// A real restart on a new port (a new life from another address) is accepted
// once the previous life has fallen silent, however quickly it restarts.
func TestNodeUDPRestartOnNewPort(t *testing.T) {
	checkGoroutines(t)
	mk := func(name string, id nodeid.ID, seeds ...string) *liveNode {
		n, err := membership.New(membership.Config{ID: id, Name: name, Addr: name + ":9000", Keys: [][]byte{testKey},
			DisableMulticast: true, BindAddr: "127.0.0.1:0", Seeds: seeds, Interval: fastInterval})
		if err != nil {
			t.Fatal(err)
		}
		ln := &liveNode{Node: n, sub: n.Subscribe(0)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return ln
	}
	obs := mk("observer", 0, "127.0.0.1:1")
	seed := obs.Local().PacketAddr.String()
	const id = nodeid.ID(0xfeed)
	first := mk("restarter", id, seed)
	obs.await(t, "the first life joined", is(membership.Joined, id))
	first.Close()
	second := mk("restarter", id, seed) // at once, on a new port
	if second.Local().PacketAddr == first.Local().PacketAddr {
		t.Skip("the new life got the same port")
	}
	start := time.Now()
	ev := obs.await(t, "the second life joined", is(membership.Joined, id))
	if ev.Member.Incarnation != second.Local().Incarnation {
		t.Fatalf("joined incarnation %d, want the second life's %d", ev.Member.Incarnation, second.Local().Incarnation)
	}
	t.Logf("second life accepted %v after its start", time.Since(start))
}

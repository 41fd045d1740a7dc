package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
)

// startRing starts n members that join one after the other and agree on a
// ring: ms[i] is a neighbour of ms[i-1] and ms[i+1].
func startRing(t *testing.T, n int) []*member {
	t.Helper()
	seeds := []string{freeUDPAddr(t)}
	ms := []*member{startMember(t, "N0", seeds[0], seeds...)}
	for i := 1; i < n; i++ {
		ms = append(ms, startMember(t, fmt.Sprintf("N%d", i), "", seeds...))
		seeds = append(seeds, ms[i].disc.Local().PacketAddr.String())
		agree(t, ms, 5*time.Second) // join order is ring order
	}
	return ms
}

// freeze silences m's membership (the others will declare it failed) while
// its node keeps its connections open and keeps serving, as a host that is
// cut off or hung but not crashed would.
func (m *member) freeze() {
	m.cl.Close()
	m.disc.Close()
}

// verdicts records when a member's membership declares others failed.
type verdicts struct {
	ch chan membership.Event
}

func watchVerdicts(t *testing.T, m *member) *verdicts {
	v := &verdicts{ch: make(chan membership.Event, 64)}
	sub := m.disc.Subscribe(64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); sub.Close(); <-done })
	go func() {
		defer close(done)
		for {
			e, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if e.Kind == membership.Failed {
				v.ch <- e
			}
		}
	}()
	return v
}

// failed waits for the verdict on id and returns when it was given.
func (v *verdicts) failed(t *testing.T, id nodeid.ID, within time.Duration) time.Time {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case e := <-v.ch:
			if e.Member.ID == id {
				return e.Time
			}
		case <-deadline:
			t.Fatalf("no Failed verdict on %s within %v", id, within)
		}
	}
}

// TestFailedVerdictFailsCallsThroughTheMember checks that calls in flight to
// a member that hangs (its connections stay open, it answers nothing) fail
// with a typed error as soon as the membership declares it failed, both a
// direct call and a call relayed by a neighbour, instead of hanging until
// the transport's keepalive or the drain of the removed edge gives up.
func TestFailedVerdictFailsCallsThroughTheMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 5 nodes and waits for failure detection")
	}
	ms := startRing(t, 5)
	victim := ms[3]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	type inflight struct {
		name  string
		from  *member
		relay *member // the node whose verdict must end the call
		done  chan error
		ended time.Time
	}
	calls := []*inflight{
		{name: "direct", from: ms[4], relay: ms[4]},
		{name: "relayed", from: ms[1], relay: ms[2]}, // N1 -> N2 -> N3
	}
	for _, c := range calls {
		if path := c.from.cl.Route(victim.node.ID()); len(path) != map[string]int{"direct": 2, "relayed": 3}[c.name] {
			t.Fatalf("%s: route %v", c.name, path)
		}
		c.done = make(chan error, 1)
		go func() {
			err := testsvc.NewKitchenProxy(c.from.node, victim.node.ID()).Block(ctx, c.name)
			c.ended = time.Now()
			c.done <- err
		}()
		if err := testsvc.NewControlProxy(c.from.node, victim.node.ID()).Started(ctx, c.name); err != nil {
			t.Fatal(err)
		}
	}
	watch := map[*member]*verdicts{}
	for _, c := range calls {
		watch[c.relay] = watchVerdicts(t, c.relay)
	}
	victim.freeze()
	for _, c := range calls {
		verdict := watch[c.relay].failed(t, victim.node.ID(), 5*time.Second)
		select {
		case err := <-c.done:
			if !errors.Is(err, runtime.ErrUnreachable) {
				t.Errorf("%s call: %v, want ErrUnreachable", c.name, err)
			}
			lag := c.ended.Sub(verdict)
			t.Logf("%s call failed %v after %s's verdict: %v", c.name, lag.Round(time.Millisecond), c.relay.name, err)
			if lag > 500*time.Millisecond { // the target is 100 ms; the margin is for a loaded machine
				t.Errorf("%s call failed %v after the verdict", c.name, lag)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s call still hangs 3 s after %s declared %s failed", c.name, c.relay.name, victim.name)
		}
	}
}

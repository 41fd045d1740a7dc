package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/topology"
)

// joined is a set of members started with cluster.Join on loopback.
type joined struct {
	t    *testing.T
	seed string
	cs   []*cluster.Cluster
}

// joinN starts n members named M0..M(n-1), M0 on the seed address.
func joinN(t *testing.T, n int, tune ...func(*cluster.Options)) *joined {
	t.Helper()
	j := &joined{t: t, seed: freeUDPAddr(t)}
	for i := range n {
		j.join(fmt.Sprintf("M%d", i), tune...)
	}
	return j
}

// join starts one more member.
func (j *joined) join(name string, tune ...func(*cluster.Options)) *cluster.Cluster {
	j.t.Helper()
	gossip := "127.0.0.1:0"
	if len(j.cs) == 0 {
		gossip = j.seed
	}
	o := cluster.Options{
		Name: name, Addr: "127.0.0.1:0", Key: testKey,
		GossipAddr: gossip, Seeds: []string{j.seed},
	}
	for _, f := range tune {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := cluster.Join(ctx, o)
	if err != nil {
		j.t.Fatalf("join %s: %v", name, err)
	}
	j.t.Cleanup(c.Close)
	j.cs = append(j.cs, c)
	return c
}

// waitMembers waits until every cluster in cs has committed a topology of
// exactly n members, and returns the first one's.
func waitMembers(t *testing.T, n int, cs ...*cluster.Cluster) topology.Topology {
	t.Helper()
	var top topology.Topology
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		tp, err := c.Wait(ctx, func(tp topology.Topology) bool { return len(tp.Members) == n })
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.Node().Name(), err)
		}
		if top.Epoch == 0 {
			top = tp
		}
	}
	return top
}

func TestJoinLeave(t *testing.T) {
	j := joinN(t, 3)
	waitMembers(t, 3, j.cs...)
	if got := len(j.cs[0].Neighbours()); got != 2 {
		t.Fatalf("a member of a ring of 3 has %d neighbours, want 2", got)
	}

	// A graceful leave: the others commit a topology without the member
	// well before failure detection could have declared it failed.
	leaver := j.cs[2]
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := leaver.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	top := waitMembers(t, 2, j.cs[:2]...)
	if top.Contains(leaver.ID()) {
		t.Fatalf("the topology after the leave still holds the leaver: %v", top)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the cluster took %v to move on after a graceful leave", d)
	}
	if n := len(leaver.Node().Peers()); n != 0 {
		t.Errorf("the leaver still has %d connections", n)
	}
	if _, err := leaver.Subscribe(1).Next(ctx); !errors.Is(err, cluster.ErrSubscriptionClosed) {
		t.Errorf("subscribing to a cluster that left: %v, want ErrSubscriptionClosed", err)
	}
}

func TestJoinOptionsRefused(t *testing.T) {
	tests := []struct {
		name string
		o    cluster.Options
	}{
		{"no key", cluster.Options{Addr: "127.0.0.1:0", Seeds: []string{"127.0.0.1:1"}}},
		{"short key", cluster.Options{Addr: "127.0.0.1:0", Key: []byte("short"), Seeds: []string{"127.0.0.1:1"}}},
		{"bad address", cluster.Options{Addr: "127.0.0.1:x", Key: testKey, Seeds: []string{"127.0.0.1:1"}}},
		{"key and keys", cluster.Options{Addr: "127.0.0.1:0", Key: testKey, Keys: [][]byte{testKey}, Seeds: []string{"127.0.0.1:1"}}},
		{"key and keyring", cluster.Options{Addr: "127.0.0.1:0", Key: testKey, Keyring: testRing(t), Seeds: []string{"127.0.0.1:1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cluster.Join(context.Background(), tc.o)
			if err == nil {
				c.Close()
				t.Fatal("Join accepted the options")
			}
		})
	}
}

func testRing(t *testing.T) *keyring.Ring {
	t.Helper()
	r, err := keyring.New(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestJoinNilContext: Join refuses a nil context with an error, where it
// panicked half-way, leaving the node it had started running.
func TestJoinNilContext(t *testing.T) {
	before := runtime.NumGoroutine()
	//lint:ignore SA1012 the nil context is what is tested
	c, err := cluster.Join(nil, cluster.Options{Addr: "127.0.0.1:0", Key: testKey, GossipAddr: "127.0.0.1:0", Seeds: []string{"127.0.0.1:1"}})
	if err == nil {
		c.Close()
		t.Fatal("Join accepted a nil context")
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the refused Join, %d before", n, before)
	}
}

// TestWaitEndsWhenClosed: Wait returns ErrSubscriptionClosed once the
// cluster is closed, rather than waiting for its context, since no topology
// can be committed any more.
func TestWaitEndsWhenClosed(t *testing.T) {
	j := joinN(t, 1)
	c := j.cs[0]
	done := make(chan error, 1)
	go func() {
		_, err := c.Wait(context.Background(), func(t topology.Topology) bool { return len(t.Members) == 5 })
		done <- err
	}()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, cluster.ErrSubscriptionClosed) {
			t.Fatalf("Wait on a closed cluster: %v, want ErrSubscriptionClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return when the cluster was closed")
	}
	if _, err := c.Wait(context.Background(), func(t topology.Topology) bool { return false }); !errors.Is(err, cluster.ErrSubscriptionClosed) {
		t.Fatalf("Wait after Close: %v, want ErrSubscriptionClosed", err)
	}
}

// commitLog records the epochs a member logs as committed.
type commitLog struct {
	mu     sync.Mutex
	epochs []uint64
}

func (l *commitLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *commitLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *commitLog) WithGroup(string) slog.Handler            { return l }
func (l *commitLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "cluster: topology committed" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "epoch" {
			l.mu.Lock()
			l.epochs = append(l.epochs, a.Value.Uint64())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func TestSubscriptionSeesEveryCommit(t *testing.T) {
	log := &commitLog{}
	j := &joined{t: t, seed: freeUDPAddr(t)}
	first := j.join("M0", func(o *cluster.Options) { o.Logger = slog.New(log) })
	sub := first.Subscribe(0)
	slow := first.Subscribe(1) // never read until the end: must not hold anything up
	var got []cluster.Change
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ch, err := sub.Next(context.Background())
			if err != nil {
				return
			}
			got = append(got, ch)
		}
	}()
	for i := 1; i < 4; i++ {
		j.join(fmt.Sprintf("M%d", i))
		waitMembers(t, i+1, j.cs...) // one epoch per join
	}
	j.cs[3].Close() // a crash
	waitMembers(t, 3, j.cs[:3]...)
	first.Close()
	<-done

	log.mu.Lock()
	want := log.epochs
	log.mu.Unlock()
	var epochs []uint64
	for _, ch := range got {
		epochs = append(epochs, ch.Epoch)
		if ch.Skipped != 0 {
			t.Errorf("a subscriber that keeps up got a folded change: %v", ch)
		}
	}
	if len(want) < 4 || !slices.Equal(epochs, want) {
		t.Fatalf("the subscription delivered epochs %v; the member committed %v", epochs, want)
	}
	var last cluster.Change
	for {
		ch, err := slow.Next(context.Background())
		if err != nil {
			break
		}
		last = ch
	}
	if last.Epoch != want[len(want)-1] {
		t.Fatalf("the slow subscriber ended at epoch %d, the last commit was %d", last.Epoch, want[len(want)-1])
	}
}

// TestJoinStateFile checks that a member joined with a state file and no ID
// rejoins, after a restart, as the same member, with the epoch it had
// committed remembered; and that the file refuses another ID.
func TestJoinStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trellis.state")
	j := &joined{t: t, seed: freeUDPAddr(t)}
	first := j.join("M0", func(o *cluster.Options) { o.StateFile = path })
	top := waitMembers(t, 1, first)
	first.Close()
	saved, err := cluster.FileState(path).Load()
	if err != nil || saved.ID != first.ID() || saved.Committed.Epoch != top.Epoch {
		t.Fatalf("saved %+v, %v; want member %s at epoch %d", saved, err, first.ID(), top.Epoch)
	}
	again := j.join("M0", func(o *cluster.Options) { o.StateFile = path; o.GossipAddr = "127.0.0.1:0" })
	if again.ID() != first.ID() {
		t.Errorf("restarted as %s, was %s", again.ID(), first.ID())
	}
	if top2 := waitMembers(t, 1, again); top2.Epoch <= top.Epoch {
		t.Errorf("after the restart, epoch %d committed again (the first life committed %d)", top2.Epoch, top.Epoch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := cluster.Join(ctx, cluster.Options{Key: testKey, ID: 42, StateFile: path, Addr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0"}); err == nil {
		c.Close()
		t.Fatal("a member joined with another member's state file")
	}
}

// TestJoinListener checks that a member serves RPC on the listener it is
// given (the others connect to it there), that the listener is closed with
// the member, and that Join refuses a listener beside an address, closing it.
func TestJoinListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	j := &joined{t: t, seed: freeUDPAddr(t)}
	first := j.join("M0")
	second := j.join("M1", func(o *cluster.Options) { o.Addr, o.Listener = "", ln })
	waitMembers(t, 2, j.cs...)
	if got := second.Node().Addr(); got == nil || got.String() != ln.Addr().String() {
		t.Fatalf("the member listens on %v, want the listener given, %v", got, ln.Addr())
	}
	deadline := time.Now().Add(10 * time.Second)
	for !first.Node().Connected(second.ID()) {
		if time.Now().After(deadline) {
			t.Fatal("the neighbour never connected to the member serving the listener given")
		}
		time.Sleep(10 * time.Millisecond)
	}
	second.Close()
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Close")
	}

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Join(context.Background(), cluster.Options{Addr: "127.0.0.1:0", Listener: ln2, Key: testKey, Seeds: []string{j.seed}})
	if err == nil {
		c.Close()
		t.Fatal("Join accepted both Addr and Listener")
	}
	ln2.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second))
	if _, aerr := ln2.Accept(); !errors.Is(aerr, net.ErrClosed) {
		t.Fatalf("accepting on the listener of a refused Join: %v, want net.ErrClosed", aerr)
	}
}

// waitConnected waits until every cluster in cs holds exactly the
// connections of its committed topology's edges.
func waitConnected(t *testing.T, cs ...*cluster.Cluster) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range cs {
		for {
			want := c.Topology().Neighbours(c.ID())
			got := c.Node().Peers()
			slices.Sort(want)
			slices.Sort(got)
			if slices.Equal(want, got) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is connected to %v, its neighbours are %v", c.Node().Name(), got, want)
			}
			time.Sleep(10 * time.Millisecond) // connections come and go without events
		}
	}
}

// TestLeaveOneByOne: members leave gracefully one by one down to the last,
// which commits a topology of its own. (The last of two stayed on the
// topology of two for good, not ready: the member that had left still
// counted in the majority.) Each Leave returns only once its neighbours
// have moved to a topology without it, as it says.
func TestLeaveOneByOne(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		order []int // the members that leave, in turn
	}{
		{"of 2 the leader leaves", 2, []int{0}},
		{"of 2 the other leaves", 2, []int{1}},
		{"3 down to 1", 3, []int{0, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := joinN(t, tc.n)
			waitMembers(t, tc.n, j.cs...)
			live := slices.Clone(j.cs)
			for _, i := range tc.order {
				leaver := j.cs[i]
				live = slices.DeleteFunc(live, func(c *cluster.Cluster) bool { return c == leaver })
				waitConnected(t, leaver)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := leaver.Leave(ctx)
				cancel()
				if err != nil {
					t.Fatalf("%s leaves: %v", leaver.Node().Name(), err)
				}
				for _, c := range live {
					if top := c.Topology(); top.Contains(leaver.ID()) {
						t.Errorf("%s's Leave returned while %s still holds it (epoch %d)", leaver.Node().Name(), c.Node().Name(), top.Epoch)
					}
				}
				waitMembers(t, len(live), live...)
			}
			last := live[0]
			top := last.Topology()
			if len(top.Members) != 1 || !top.Contains(last.ID()) {
				t.Fatalf("the last member holds %v, want itself alone", top)
			}
			waitConnected(t, last)
		})
	}
}

// TestKilledOfTwoKeepsTheTopology: of two members, one is killed (no
// goodbye): the other keeps their topology of two, as the majority policy
// wants (it cannot tell a dead member from a partition), where a member
// that left gracefully lets it move on (TestLeaveOneByOne).
func TestKilledOfTwoKeepsTheTopology(t *testing.T) {
	j := joinN(t, 2)
	before := waitMembers(t, 2, j.cs...)
	survivor, victim := j.cs[0], j.cs[1]
	sub := survivor.Discovery().Subscribe(0)
	defer sub.Close()
	victim.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("the membership never declared the killed member failed: %v", err)
		}
		if e.Member.ID == victim.ID() && e.Kind == membership.Failed {
			break
		}
	}
	// The leader plans on every membership event and every Interval
	// (100 ms): it commits nothing in five of them.
	wctx, wcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer wcancel()
	if top, err := survivor.Wait(wctx, func(top topology.Topology) bool { return top.Epoch != before.Epoch }); err == nil {
		t.Fatalf("after its peer was killed the survivor committed epoch %d with %d members, want to keep epoch %d", top.Epoch, len(top.Members), before.Epoch)
	}
}

// TestLeaveTogether: members that all leave at once do not wait for each
// other to close their connections (nobody is left to cascade a topology
// without them, so none would): their Leaves end well within the bound of
// the wait (ten Intervals), made long here so that only the early end can
// explain the result.
func TestLeaveTogether(t *testing.T) {
	const interval = time.Second // Leave waits 10 s at most
	j := joinN(t, 3, func(o *cluster.Options) {
		o.Cluster = func(c *cluster.Config) { c.Interval = interval }
	})
	waitMembers(t, 3, j.cs...)
	waitConnected(t, j.cs...)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	took := make([]time.Duration, len(j.cs))
	for i, c := range j.cs {
		wg.Go(func() {
			if err := c.Leave(ctx); err != nil {
				t.Errorf("%s leaves: %v", c.Node().Name(), err)
			}
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	t.Logf("the members left in %v", took)
	if bound := 10 * interval / 2; slices.Max(took) >= bound {
		t.Errorf("leaving together took %v, want less than %v (the wait's bound is %v)", slices.Max(took), bound, 10*interval)
	}
}

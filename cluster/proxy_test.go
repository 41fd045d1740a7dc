package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// shardCluster starts a caller C (serving nothing) and members serving
// Shard (names given), plus a member X that serves only Kitchen, and waits
// until C sees every Shard member advertise it.
func shardCluster(t *testing.T, names ...string) (*cluster.Cluster, map[string]*testsvc.ShardImpl, map[string]*cluster.Cluster) {
	t.Helper()
	j := &joined{t: t, seed: freeUDPAddr(t)}
	caller := j.join("C")
	impls := map[string]*testsvc.ShardImpl{}
	members := map[string]*cluster.Cluster{}
	for _, n := range names {
		c := j.join(n)
		impls[n] = &testsvc.ShardImpl{Name: n, Started: make(chan string, 4)}
		if err := testsvc.RegisterShard(c.Node(), impls[n]); err != nil {
			t.Fatal(err)
		}
		members[n] = c
	}
	x := j.join("X")
	if err := testsvc.RegisterKitchen(x.Node(), testsvc.NewImpl()); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, len(names)+2, j.cs...)
	waitServing(t, caller, testsvc.ShardService, len(names))
	waitServing(t, caller, testsvc.KitchenService, 1)
	return caller, impls, members
}

// waitServing waits until c sees n members advertise svc.
func waitServing(t *testing.T, c *cluster.Cluster, svc *codegen.ServiceDesc, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		for _, m := range c.Members() {
			if m.Serves(svc) {
				got++
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d members advertise %s, want %d: %+v", got, svc.Name, n, c.Members())
		}
		time.Sleep(20 * time.Millisecond) // advertisements travel in heartbeats: nothing to await
	}
}

func TestMembersAdvertiseServices(t *testing.T) {
	caller, _, members := shardCluster(t, "A")
	a := members["A"]
	if err := a.Node().Unregister(testsvc.ShardService.Name); err != nil {
		t.Fatal(err)
	}
	waitServing(t, caller, testsvc.ShardService, 0)
	if err := testsvc.RegisterShard(a.Node(), &testsvc.ShardImpl{Name: "A"}); err != nil {
		t.Fatal(err)
	}
	waitServing(t, caller, testsvc.ShardService, 1)
	for _, m := range caller.Members() {
		want := map[string][]string{
			"C": nil,
			"A": {testsvc.ShardService.Name},
			"X": {testsvc.KitchenService.Name},
		}[m.Name]
		var got []string
		for _, s := range m.Services {
			got = append(got, s.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("member %s advertises %v, want %v", m.Name, got, want)
		}
	}
}

func TestClusterProxySendsOnlyToServingMembers(t *testing.T) {
	caller, impls, _ := shardCluster(t, "A", "B")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	noRetry := cluster.WithRetry(cluster.Retry{Attempts: 1}) // a call sent to X would fail
	for _, tc := range []struct {
		policy string
		opt    cluster.ProxyOption
	}{
		{cluster.Nearest.String(), cluster.WithPolicy(cluster.Nearest)},
		{cluster.RoundRobin.String(), cluster.WithPolicy(cluster.RoundRobin)},
		{cluster.LocalFirst.String(), cluster.WithPolicy(cluster.LocalFirst)},
		{"by key", cluster.ByKey(nil)},
	} {
		p := testsvc.NewShardClusterProxy(caller, tc.opt, noRetry)
		seen := map[string]int{}
		for i := range 60 {
			who, err := p.Hit(ctx, fmt.Sprint("k", i))
			if err != nil {
				t.Fatalf("%s: call %d: %v", tc.policy, i, err)
			}
			seen[who]++
		}
		if seen["A"]+seen["B"] != 60 {
			t.Errorf("%s: calls answered by %v, want A and B only", tc.policy, seen)
		}
	}
	if got := impls["A"].Runs.Load() + impls["B"].Runs.Load(); got != 240 {
		t.Errorf("%d executions for 240 calls", got)
	}

	// By key: the same key always goes to the same member, the one
	// KeyOwner names.
	p := testsvc.NewShardClusterProxy(caller, cluster.ByKey(nil))
	for i := range 20 {
		key := fmt.Sprint("key", i)
		owner, ok := caller.KeyOwner(testsvc.ShardService, key)
		if !ok {
			t.Fatal("KeyOwner: nobody serves Shard")
		}
		for range 3 {
			if who, err := p.Who(ctx, key); err != nil || who != owner.Name {
				t.Fatalf("key %s went to %s (%v), its owner is %s", key, who, err, owner.Name)
			}
		}
	}

	// Nobody serves Control: not sent, typed.
	none := testsvc.NewControlClusterProxy(caller, noRetry)
	if err := none.Started(ctx, "x"); !errors.Is(err, cluster.ErrNoMember) {
		t.Errorf("a call of a service nobody serves: %v, want ErrNoMember", err)
	}
}

// A proxy made while a member served the service stops calling it once
// the member no longer does.
func TestClusterProxyDropsMemberThatStopsServing(t *testing.T) {
	caller, impls, members := shardCluster(t, "A", "B")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := testsvc.NewShardClusterProxy(caller, cluster.WithPolicy(cluster.RoundRobin), cluster.WithRetry(cluster.Retry{Attempts: 1}))
	for i := range 4 {
		if _, err := p.Hit(ctx, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	if impls["A"].Runs.Load() == 0 || impls["B"].Runs.Load() == 0 {
		t.Fatalf("round robin over A and B: A ran %d calls, B %d", impls["A"].Runs.Load(), impls["B"].Runs.Load())
	}
	if err := members["A"].Node().Unregister(testsvc.ShardService.Name); err != nil {
		t.Fatal(err)
	}
	waitServing(t, caller, testsvc.ShardService, 1)
	for i := range 20 {
		who, err := p.Hit(ctx, fmt.Sprint("k", i))
		if err != nil || who != "B" {
			t.Fatalf("call %d after A stopped serving Shard: answered by %q (%v), want B", i, who, err)
		}
	}
}

// keyOwnedBy returns a key whose owner among the Shard members is name.
func keyOwnedBy(t *testing.T, c *cluster.Cluster, name string) string {
	t.Helper()
	for i := range 1000 {
		k := fmt.Sprint("key", i)
		if m, _ := c.KeyOwner(testsvc.ShardService, k); m.Name == name {
			return k
		}
	}
	t.Fatalf("no key owned by %s", name)
	return ""
}

func TestNotSentCallIsRetriedOnAnotherMember(t *testing.T) {
	caller, impls, members := shardCluster(t, "A", "B")
	key := keyOwnedBy(t, caller, "A")
	// A's node stops while its membership lives on: the caller still sees
	// A serving Shard, tries it first, and cannot send the call.
	closed, cancel := context.WithCancel(context.Background())
	cancel()
	members["A"].Node().Close(closed)
	aID := members["A"].ID()
	// Neither the caller nor B, which could relay the call, may still hold
	// a connection to A: a call relayed through B on a connection A has
	// closed but B has not seen closed yet may have reached A, and is
	// rightly not retried.
	for deadline := time.Now().Add(5 * time.Second); caller.Node().Connected(aID) || members["B"].Node().Connected(aID); {
		if time.Now().After(deadline) {
			t.Fatal("the caller or B keeps its connection to a closed node")
		}
		time.Sleep(10 * time.Millisecond) // the connection's end is seen by its reader: nothing to await here
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := testsvc.NewShardClusterProxy(caller, cluster.ByKey(nil))
	who, err := p.Hit(ctx, key)
	if err != nil || who != "B" {
		t.Fatalf("the call was answered by %q (%v), want B after a retry", who, err)
	}
	if !slices.ContainsFunc(caller.Members(), func(m cluster.Member) bool { return m.Name == "A" && m.Serves(testsvc.ShardService) }) {
		t.Fatal("A left the membership before the call: the call did not have to be retried")
	}
	if a, b := impls["A"].Runs.Load(), impls["B"].Runs.Load(); a != 0 || b != 1 {
		t.Fatalf("executions: A %d, B %d; want 0 and 1", a, b)
	}

	// Without retries, the same call fails, typed as not sent.
	p = testsvc.NewShardClusterProxy(caller, cluster.ByKey(nil), cluster.WithRetry(cluster.Retry{Attempts: 1}))
	if _, err := p.Hit(ctx, key); !runtime.NotSent(err) {
		t.Fatalf("without retries: %v, want an error for which runtime.NotSent holds", err)
	}
}

func TestCallThatMayHaveRunIsNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name       string
		idempotent bool
	}{
		{"Hit", false},
		{"Look (idempotent)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caller, impls, members := shardCluster(t, "A", "B")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			impls["A"].Block.Store(true)
			impls["B"].Block.Store(true)
			p := testsvc.NewShardClusterProxy(caller, cluster.WithPolicy(cluster.RoundRobin))
			type answer struct {
				who string
				err error
			}
			done := make(chan answer, 1)
			go func() {
				call := p.Hit
				if tc.idempotent {
					call = p.Look
				}
				who, err := call(ctx, "k")
				done <- answer{who, err}
			}()
			// The call runs on a member, which then shuts down: the call
			// may have run, and fails in the machinery.
			var where string
			select {
			case where = <-impls["A"].Started:
			case where = <-impls["B"].Started:
			case <-ctx.Done():
				t.Fatal("the call never started")
			}
			other := otherOf(where)
			impls[other].Block.Store(false)
			closed, cancelClose := context.WithCancel(context.Background())
			cancelClose()
			members[where].Node().Close(closed)
			a := <-done
			runs := impls["A"].Runs.Load() + impls["B"].Runs.Load()
			if tc.idempotent {
				if a.err != nil || a.who != other || runs != 2 {
					t.Fatalf("an idempotent call cut off on %s: answered by %q (%v) after %d runs; want a retry on %s", where, a.who, a.err, runs, other)
				}
				return
			}
			if runs != 1 {
				t.Fatalf("a call that may have run was executed %d times", runs)
			}
			if a.err == nil || runtime.NotSent(a.err) ||
				!(errors.Is(a.err, runtime.ErrShuttingDown) || errors.Is(a.err, runtime.ErrUnreachable)) {
				t.Fatalf("the cut call returned %q, %v; want ErrShuttingDown or ErrUnreachable (sent)", a.who, a.err)
			}
		})
	}
}

func otherOf(name string) string {
	if name == "A" {
		return "B"
	}
	return "A"
}

func TestCallAll(t *testing.T) {
	caller, _, _ := shardCluster(t, "A", "B", "D")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := testsvc.NewShardClusterProxy(caller)
	res := cluster.CallAll(ctx, p, func(ctx context.Context, s testsvc.Shard) (string, error) {
		return s.Who(ctx, "x")
	})
	var got []string
	for _, r := range res {
		if r.Err != nil || r.Value != r.Member.Name {
			t.Errorf("member %s: %q, %v", r.Member.Name, r.Value, r.Err)
		}
		got = append(got, r.Value)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"A", "B", "D"}) {
		t.Fatalf("CallAll reached %v, want A, B and D", got)
	}
}

// TestClusterProxyNilContext: a cluster proxy's call with a nil context
// fails, where it panicked when it retried.
func TestClusterProxyNilContext(t *testing.T) {
	caller, _, _ := shardCluster(t, "A")
	//lint:ignore SA1012 the nil context is what is tested
	if _, err := testsvc.NewShardClusterProxy(caller).Who(nil, "x"); err == nil {
		t.Fatal("a call with a nil context succeeded")
	}
}

// TestCallAllNilFunction: a nil function fails each member's call with an
// error, rather than panicking on CallAll's goroutines, where the caller
// cannot recover.
func TestCallAllNilFunction(t *testing.T) {
	caller, _, _ := shardCluster(t, "A", "B")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res := cluster.CallAll[testsvc.Shard, string](ctx, testsvc.NewShardClusterProxy(caller), nil)
	if len(res) != 2 {
		t.Fatalf("CallAll returned %d results, want 2", len(res))
	}
	for _, r := range res {
		if r.Err == nil {
			t.Errorf("member %s: no error for a nil function", r.Member.Name)
		}
	}
}

// TestJustJoinedMemberCallsAtOnce: a member that serves nothing itself can
// call through a cluster proxy as soon as Join returns: the proxy waits for
// the member's first topology rather than failing with ErrNoMember (it did,
// within milliseconds, even with a deadline of seconds).
func TestJustJoinedMemberCallsAtOnce(t *testing.T) {
	j := &joined{t: t, seed: freeUDPAddr(t)}
	for _, n := range []string{"A", "B"} {
		c := j.join(n)
		if err := testsvc.RegisterShard(c.Node(), &testsvc.ShardImpl{Name: n, Started: make(chan string, 4)}); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers(t, 2, j.cs...)
	caller := j.join("C")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// No retries: the first attempt must find a member.
	p := testsvc.NewShardClusterProxy(caller, cluster.WithRetry(cluster.Retry{Attempts: 1}))
	who, err := p.Who(ctx, "x")
	if err != nil {
		t.Fatalf("call right after Join: %v", err)
	}
	if who != "A" && who != "B" {
		t.Fatalf("call right after Join served by %q, want A or B", who)
	}
}

// TestWaitServingAfterJoin follows the README: each member joins, registers
// its service and waits for the members serving it; a cluster proxy made
// then spreads its calls over all of them. (Waiting for the topology was not
// enough: for about 400 ms after Wait had seen all three members, each saw
// only itself serving, and sent every key to itself.)
func TestWaitServingAfterJoin(t *testing.T) {
	j := &joined{t: t, seed: freeUDPAddr(t)}
	names := []string{"A", "B", "C"}
	for _, n := range names {
		c := j.join(n)
		if err := testsvc.RegisterShard(c.Node(), &testsvc.ShardImpl{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range j.cs {
		got, err := c.WaitServing(ctx, testsvc.ShardService, len(names))
		if err != nil {
			t.Fatalf("%s: %v", c.Node().Name(), err)
		}
		if len(got) != len(names) {
			t.Fatalf("%s: WaitServing returned %d members, want %d", c.Node().Name(), len(got), len(names))
		}
	}
	for _, c := range j.cs {
		self := c.Node().Name()
		// ByKey, as KeyOwner predicts it and as calls go.
		byKey := testsvc.NewShardClusterProxy(c, cluster.ByKey(nil))
		owners, reached := map[string]bool{}, map[string]bool{}
		for i := range 60 {
			key := fmt.Sprint("key", i)
			m, ok := c.KeyOwner(testsvc.ShardService, key)
			if !ok {
				t.Fatalf("%s: no owner for %s", self, key)
			}
			owners[m.Name] = true
			who, err := byKey.Who(ctx, key)
			if err != nil {
				t.Fatalf("%s: by key %s: %v", self, key, err)
			}
			if who != m.Name {
				t.Errorf("%s: key %s went to %s, KeyOwner says %s", self, key, who, m.Name)
			}
			reached[who] = true
		}
		if len(owners) != len(names) || len(reached) != len(names) {
			t.Errorf("%s: 60 keys owned by %v and sent to %v, want all of %v", self, owners, reached, names)
		}
		// RoundRobin takes every member in turn.
		rr := testsvc.NewShardClusterProxy(c, cluster.WithPolicy(cluster.RoundRobin))
		reached = map[string]bool{}
		for range 2 * len(names) {
			who, err := rr.Who(ctx, "x")
			if err != nil {
				t.Fatalf("%s: round robin: %v", self, err)
			}
			reached[who] = true
		}
		if len(reached) != len(names) {
			t.Errorf("%s: round robin reached %v, want all of %v", self, reached, names)
		}
		// CallAll answers from every member.
		res := cluster.CallAll(ctx, byKey, func(ctx context.Context, s testsvc.Shard) (string, error) { return s.Who(ctx, "x") })
		if len(res) != len(names) {
			t.Errorf("%s: CallAll answered from %d members, want %d", self, len(res), len(names))
		}
	}
}

// TestWaitServingEnds: WaitServing returns the members serving so far with
// the context's error when it is done first, fails once the cluster is
// closed, and refuses a nil service.
func TestWaitServingEnds(t *testing.T) {
	j := joinN(t, 1)
	c := j.cs[0]
	if err := testsvc.RegisterShard(c.Node(), &testsvc.ShardImpl{Name: "M0"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	got, err := c.WaitServing(ctx, testsvc.ShardService, 2)
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 1 || !got[0].Local {
		t.Errorf("waiting for 2 members where 1 serves: %v, %v; want this member and DeadlineExceeded", got, err)
	}
	if _, err := c.WaitServing(context.Background(), nil, 1); err == nil {
		t.Error("WaitServing accepted a nil service")
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.WaitServing(context.Background(), testsvc.KitchenService, 1)
		done <- err
	}()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, cluster.ErrSubscriptionClosed) {
			t.Errorf("WaitServing on a closed cluster: %v, want ErrSubscriptionClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitServing did not return after Close")
	}
}

// TestServiceAdvertisedAtOnce: a service registered (or unregistered) on a
// member that has joined reaches the others at once, not at the cluster's
// next tick. The interval is made far longer than the bound of the wait, so
// that a tick cannot explain the result.
func TestServiceAdvertisedAtOnce(t *testing.T) {
	const interval = 10 * time.Second
	// The first member leads at once, and cascades to the second when it
	// hears it join: the topology is committed without a tick.
	slow := func(grace time.Duration) func(*cluster.Options) {
		return func(o *cluster.Options) {
			o.Cluster = func(c *cluster.Config) { c.Interval, c.JoinGrace = interval, grace }
		}
	}
	j := &joined{t: t, seed: freeUDPAddr(t)}
	a := j.join("A", slow(time.Millisecond))
	b := j.join("B", slow(interval))
	waitMembers(t, 2, a, b)
	if got := a.Serving(testsvc.ShardService); len(got) != 0 {
		t.Fatalf("before any registration, %d members serve Shard", len(got))
	}

	// Registered, unregistered, registered again: the first may ride on
	// the tail of the commit's own news, not the others.
	bound := interval / 4
	for i, step := range []struct {
		name  string
		do    func() error
		serve int
	}{
		{"registered", func() error { return testsvc.RegisterShard(b.Node(), &testsvc.ShardImpl{Name: "B"}) }, 1},
		{"unregistered", func() error { return b.Node().Unregister(testsvc.ShardService.Name) }, 0},
		{"registered again", func() error { return testsvc.RegisterShard(b.Node(), &testsvc.ShardImpl{Name: "B"}) }, 1},
	} {
		start := time.Now()
		if err := step.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for {
			got := a.Serving(testsvc.ShardService)
			if len(got) == step.serve && (step.serve == 0 || got[0].ID == b.Node().ID()) {
				break
			}
			if time.Since(start) > bound {
				t.Fatalf("a service %s after Join: the other member saw %+v serve it %v later (interval %v)", step.name, got, bound, interval)
			}
			time.Sleep(10 * time.Millisecond) // advertisements travel in heartbeats: nothing to await
		}
		t.Logf("service %s: seen by the other member in %v", step.name, time.Since(start))
	}
}

package replica_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/replica"
	"github.com/trellisrpc/trellis/replica/internal/farmtest"
	"github.com/trellisrpc/trellis/replica/internal/peer"
	"github.com/trellisrpc/trellis/topology"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPutGetFromEveryNode(t *testing.T) {
	f := farmtest.New(t, 4, replica.Config{})
	ctx := ctxT(t, 20*time.Second)
	s0 := f.Servers[0]
	key := s0.Store.NewKey()
	it, err := s0.Store.Put(ctx, key, []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if it.Owner != s0.Node().ID() || it.Version != 1 {
		t.Fatalf("put: owner %s version %d, want %s version 1", it.Owner, it.Version, s0.Node().ID())
	}
	if len(it.Backups) != 2 {
		t.Fatalf("backups %v, want the owner's 2 ring neighbours", it.Backups)
	}
	for _, s := range f.Servers {
		got, err := s.Store.Get(ctx, key)
		if err != nil {
			t.Fatalf("%s: get: %v", s.Name, err)
		}
		if string(got.Value) != "v1" || got.Owner != s0.Node().ID() {
			t.Fatalf("%s: got %q owned by %s", s.Name, got.Value, got.Owner)
		}
	}
	// Copies are on the owner's neighbours and nowhere else.
	for _, s := range f.Servers[1:] {
		st := s.Store.Stats()
		want := 0
		if slices.Contains(it.Backups, s.Node().ID()) {
			want = 1
		}
		if st.Copies != want {
			t.Errorf("%s holds %d copies, want %d", s.Name, st.Copies, want)
		}
	}
	// A write through another node goes to the owner, conditionally.
	if _, err := f.Servers[2].Store.Put(ctx, key, []byte("v2"), replica.IfVersion(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Servers[3].Store.Put(ctx, key, []byte("v3"), replica.IfVersion(1)); !errors.Is(err, replica.ErrConflict) {
		t.Fatalf("stale conditional put: %v, want ErrConflict", err)
	}
	if err := f.Servers[1].Store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.Servers {
		if _, err := s.Store.Get(ctx, key); !errors.Is(err, replica.ErrNotFound) {
			t.Fatalf("%s: get after delete: %v, want ErrNotFound", s.Name, err)
		}
	}
}

// increment adds one to the counter stored under key through s.
func increment(ctx context.Context, s *farmtest.Server, key string) (int, error) {
	var n int
	_, err := s.Store.Update(ctx, key, func(old []byte, exists bool) ([]byte, error) {
		n = 0
		if exists {
			n, _ = strconv.Atoi(string(old))
		}
		n++
		return []byte(strconv.Itoa(n)), nil
	})
	return n, err
}

func TestOwnerKilledNothingLost(t *testing.T) {
	f := farmtest.New(t, 4, replica.Config{})
	ctx := ctxT(t, 30*time.Second)
	owner := f.Servers[1]
	var keys []string
	for i := range 50 {
		k := owner.Store.NewKey()
		keys = append(keys, k)
		for range i%3 + 1 {
			if _, err := increment(ctx, owner, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	owner.Kill()
	f.Agree()
	for i, k := range keys {
		s := f.Live()[i%3]
		got, err := s.Store.Get(ctx, k)
		if err != nil {
			t.Fatalf("%s: get %d after the owner's kill: %v", s.Name, i, err)
		}
		if want := strconv.Itoa(i%3 + 1); string(got.Value) != want {
			t.Fatalf("key %d: %q, want %q", i, got.Value, want)
		}
		if got.Owner == owner.Node().ID() {
			t.Fatalf("key %d still owned by the dead node", i)
		}
	}
	// The new owners keep two copies each again.
	total := 0
	for _, s := range f.Live() {
		total += s.Store.Stats().Copies
	}
	if total != 2*len(keys) {
		t.Fatalf("%d copies in the farm, want %d", total, 2*len(keys))
	}
}

func TestGracefulLeaveHandsEntriesOver(t *testing.T) {
	f := farmtest.New(t, 4, replica.Config{})
	ctx := ctxT(t, 30*time.Second)
	leaving := f.Servers[2]
	var keys []string
	for i := range 40 {
		k := leaving.Store.NewKey()
		keys = append(keys, k)
		if _, err := leaving.Store.Put(ctx, k, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	leaving.Stop(t)
	f.Agree()
	for i, k := range keys {
		got, err := f.Live()[i%3].Store.Get(ctx, k)
		if err != nil || string(got.Value) != fmt.Sprint(i) {
			t.Fatalf("key %d after a graceful leave: %q, %v", i, got.Value, err)
		}
	}
}

// TestLeaveWhileWriting hands entries over while clients keep writing them
// through other nodes: a write may reach the new owner between its taking
// an entry and replicating it, so a backup already holds a newer version
// than the hand-over's. Leave must succeed and no acknowledged write be lost.
func TestLeaveWhileWriting(t *testing.T) {
	f := farmtest.New(t, 4, replica.Config{})
	ctx := ctxT(t, 30*time.Second)
	leaving := f.Servers[1]
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = leaving.Store.NewKey()
		if _, err := increment(ctx, leaving, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	acked := make([]int, len(keys)) // the last value acknowledged per key
	for i := range acked {
		acked[i] = 1
	}
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := range 8 { // each writer owns keys w, w+8, ...: one writer per key
		wg.Add(1)
		go func() {
			defer wg.Done()
			through := f.Servers[[]int{0, 2, 3}[w%3]]
			for round := 0; ; round++ {
				for i := w; i < len(keys); i += 8 {
					select {
					case <-stop:
						return
					default:
					}
					n, err := increment(ctx, through, keys[i])
					if err != nil {
						errs <- fmt.Errorf("writer %d, key %d: %w", w, i, err)
						return
					}
					acked[i] = n
				}
			}
		}()
	}
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	err := leaving.Store.Leave(lctx)
	lcancel()
	close(stop)
	wg.Wait()
	close(errs)
	if err != nil {
		t.Fatalf("leave while writing: %v", err)
	}
	for err := range errs {
		t.Error(err)
	}
	for i, k := range keys {
		got, err := f.Servers[3].Store.Get(ctx, k)
		if err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if want := strconv.Itoa(acked[i]); string(got.Value) != want {
			t.Fatalf("key %d: %q, %s acknowledged last", i, got.Value, want)
		}
	}
}

// TestLostCopiesAreSentAgain has a backup lose its copies without its
// owner knowing (as when it forgot them under a topology the owner never
// saw): the owner's audit finds out and sends them again.
func TestLostCopiesAreSentAgain(t *testing.T) {
	f := farmtest.New(t, 3, replica.Config{})
	ctx := ctxT(t, 30*time.Second)
	owner, backup := f.Servers[0], f.Servers[1]
	var keys []string
	for i := range 20 {
		k := owner.Store.NewKey()
		keys = append(keys, k)
		if _, err := owner.Store.Put(ctx, k, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := peer.NewPeerProxy(owner.Node(), backup.Node().ID()).Drop(ctx, owner.Node().ID(), keys); err != nil {
		t.Fatal(err)
	}
	if n := backup.Store.Stats().Copies; n != 0 {
		t.Fatalf("the backup holds %d copies after dropping them", n)
	}
	for backup.Store.Stats().Copies != len(keys) {
		select {
		case <-ctx.Done():
			t.Fatalf("the backup holds %d copies of %d, 30 s after it lost them", backup.Store.Stats().Copies, len(keys))
		case <-time.After(50 * time.Millisecond): // polling another node's table: no event to await
		}
	}
}

// TestConcurrentUpdatesNoneLost runs increments of one entry at once
// through every node (proxy mode): each is acknowledged and counted.
func TestConcurrentUpdatesNoneLost(t *testing.T) {
	f := farmtest.New(t, 3, replica.Config{})
	ctx := ctxT(t, 20*time.Second)
	k := f.Servers[0].Store.NewKey()
	if _, err := f.Servers[0].Store.Put(ctx, k, []byte("0")); err != nil {
		t.Fatal(err)
	}
	// Each increment writes once, so one loses at most n-1 rounds to the
	// others: fewer than Update tries.
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := f.Servers[i%len(f.Servers)]
			if _, err := increment(ctx, s, k); err != nil {
				errs <- fmt.Errorf("%s: %w", s.Name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := f.Servers[2].Store.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != strconv.Itoa(n) {
		t.Fatalf("counter %q after %d acknowledged increments", got.Value, n)
	}
}

func TestMigrateMode(t *testing.T) {
	f := farmtest.New(t, 3, replica.Config{Mode: replica.ModeMigrate})
	ctx := ctxT(t, 20*time.Second)
	k := f.Servers[0].Store.NewKey()
	if _, err := increment(ctx, f.Servers[0], k); err != nil {
		t.Fatal(err)
	}
	if _, err := increment(ctx, f.Servers[1], k); err != nil {
		t.Fatal(err)
	}
	got, err := f.Servers[2].Store.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "2" || got.Owner != f.Servers[2].Node().ID() {
		t.Fatalf("got %q owned by %s, want 2 owned by the node that served the read", got.Value, got.Owner)
	}
}

// TestConcurrentMigrationsOneOwner has every node take one entry over at
// the same time, over and over (migrate mode): the takeovers resolve to one
// owner at a time, and no increment is lost.
func TestConcurrentMigrationsOneOwner(t *testing.T) {
	f := farmtest.New(t, 4, replica.Config{Mode: replica.ModeMigrate})
	ctx := ctxT(t, 30*time.Second)
	k := f.Servers[0].Store.NewKey()
	if _, err := f.Servers[0].Store.Put(ctx, k, []byte("0")); err != nil {
		t.Fatal(err)
	}
	const per = 15
	var wg sync.WaitGroup
	errs := make(chan error, len(f.Servers))
	for _, s := range f.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if _, err := increment(ctx, s, k); err != nil {
					errs <- fmt.Errorf("%s: %w", s.Name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := f.Servers[1].Store.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(per * len(f.Servers)); string(got.Value) != want {
		t.Fatalf("counter %q after %s acknowledged increments", got.Value, want)
	}
	owners := 0
	for _, s := range f.Servers {
		owners += s.Store.Stats().Owned
	}
	if owners != 1 {
		t.Fatalf("%d nodes own the entry, want 1", owners)
	}
}

func TestAsyncModeReplicatesInTheBackground(t *testing.T) {
	f := farmtest.New(t, 3, replica.Config{Async: true, MaxLag: 4})
	ctx := ctxT(t, 20*time.Second)
	owner := f.Servers[0]
	var keys []string
	for i := range 50 {
		k := owner.Store.NewKey()
		keys = append(keys, k)
		if _, err := owner.Store.Create(ctx, k, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The queues drain: both backups hold every entry, then the owner can
	// die with nothing lost.
	for _, s := range f.Servers[1:] {
		for s.Store.Stats().Copies != len(keys) {
			if ctx.Err() != nil {
				t.Fatalf("%s holds %d copies, want %d", s.Name, s.Store.Stats().Copies, len(keys))
			}
			time.Sleep(10 * time.Millisecond) // polling the store's counters: no event to await
		}
	}
	owner.Kill()
	f.Agree()
	for i, k := range keys {
		got, err := f.Servers[1+i%2].Store.Get(ctx, k)
		if err != nil || string(got.Value) != fmt.Sprint(i) {
			t.Fatalf("key %d after the owner's kill: %q, %v", i, got.Value, err)
		}
	}
}

func TestEntriesExpireAndTombstonesHold(t *testing.T) {
	f := farmtest.New(t, 2, replica.Config{TTL: 2 * time.Second})
	ctx := ctxT(t, 20*time.Second)
	s := f.Servers[0]
	k := s.Store.NewKey()
	if _, err := s.Store.Create(ctx, k, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Reads slide the expiry: read for longer than the TTL.
	for range 5 {
		if _, err := s.Store.Get(ctx, k); err != nil {
			t.Fatalf("read within the sliding TTL: %v", err)
		}
		time.Sleep(500 * time.Millisecond) // the TTL runs on the clock
	}
	// Left alone (a read would slide it), the entry expires: the sweep,
	// every second, turns it into a tombstone.
	deadline := time.Now().Add(15 * time.Second)
	for s.Store.Stats().Tombstones != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no tombstone 15 s after the last read: %+v", s.Store.Stats())
		}
		time.Sleep(100 * time.Millisecond) // the sweep runs on the clock
	}
	if _, err := f.Servers[1].Store.Get(ctx, k); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("read after expiry: %v, want ErrNotFound", err)
	}
	// Its tombstone keeps a conditional write of the old version out.
	if _, err := s.Store.Put(ctx, k, []byte("y"), replica.IfVersion(1)); !errors.Is(err, replica.ErrConflict) {
		t.Fatalf("write of the expired version: %v, want ErrConflict", err)
	}
}

// TestReturningOwnerServesNoStaleValue cuts an owner off until the others
// have taken its entries over and written them, then heals the cut: the
// returning owner, which missed those commits, must not serve its old
// values, through itself or any other node.
//
// With one backup each (an owner's lowest-id neighbour), and the owner the
// highest-id server, the node that takes its entries over never makes the
// returning owner its backup: nothing corrects the owner's records from
// outside, it must check them itself.
func TestReturningOwnerServesNoStaleValue(t *testing.T) {
	f := farmtest.NewPartitionable(t, 4, replica.Config{Backups: 1})
	ctx := ctxT(t, 40*time.Second)
	owner := f.Servers[0]
	for _, s := range f.Servers {
		if s.Node().ID() > owner.Node().ID() {
			owner = s
		}
	}
	var others []*farmtest.Server
	for _, s := range f.Servers {
		if s != owner {
			others = append(others, s)
		}
	}
	keys := make([]string, 8)
	for i := range keys {
		keys[i] = owner.Store.NewKey()
		if _, err := owner.Store.Put(ctx, keys[i], []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	f.Partition([]*farmtest.Server{owner}, others)
	f.AgreeAmong(others...)
	for _, k := range keys {
		if _, err := others[2].Store.Put(ctx, k, []byte("new")); err != nil {
			t.Fatalf("writing %s while its owner is cut off: %v", k, err)
		}
	}
	// Once the owner sees that it is cut off from the majority, it serves
	// none of its entries.
	for len(owner.Discovery().Members()) > 1 {
		select {
		case <-ctx.Done():
			t.Fatalf("the cut-off owner still sees %d members", len(owner.Discovery().Members()))
		case <-time.After(20 * time.Millisecond): // polling the membership: no event to await here
		}
	}
	var err error
	for range 100 { // the store learns of the membership change a little later
		if _, err = owner.Store.Get(ctx, keys[0]); errors.Is(err, replica.ErrMinority) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(err, replica.ErrMinority) {
		t.Fatalf("reading through the cut-off owner: %v, want ErrMinority", err)
	}
	f.Heal()
	top := f.Agree()
	t.Logf("after the heal: %s", topology.Diagram(top))
	for i, k := range keys {
		for _, s := range f.Servers {
			got, err := s.Store.Get(ctx, k)
			if err != nil {
				t.Fatalf("key %d through %s after the heal: %v", i, s.Name, err)
			}
			if string(got.Value) != "new" {
				t.Fatalf("key %d through %s after the heal: %q (version %d, owner %s), want the value written while its owner was cut off",
					i, s.Name, got.Value, got.Version, got.Owner)
			}
		}
	}
	if st := owner.Store.Stats(); st.Owned != 0 {
		t.Fatalf("the returning owner still owns %d entries taken over while it was cut off", st.Owned)
	}
}

package replica_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/replica"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPutGetFromEveryNode(t *testing.T) {
	f := newFarm(t, 4, replica.Config{})
	ctx := ctxT(t, 20*time.Second)
	s0 := f.servers[0]
	key := s0.store.NewKey()
	it, err := s0.store.Put(ctx, key, []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if it.Owner != s0.node.ID() || it.Version != 1 {
		t.Fatalf("put: owner %s version %d, want %s version 1", it.Owner, it.Version, s0.node.ID())
	}
	if len(it.Backups) != 2 {
		t.Fatalf("backups %v, want the owner's 2 ring neighbours", it.Backups)
	}
	for _, s := range f.servers {
		got, err := s.store.Get(ctx, key)
		if err != nil {
			t.Fatalf("%s: get: %v", s.name, err)
		}
		if string(got.Value) != "v1" || got.Owner != s0.node.ID() {
			t.Fatalf("%s: got %q owned by %s", s.name, got.Value, got.Owner)
		}
	}
	// Copies are on the owner's neighbours and nowhere else.
	for _, s := range f.servers[1:] {
		st := s.store.Stats()
		want := 0
		if slices.Contains(it.Backups, s.node.ID()) {
			want = 1
		}
		if st.Copies != want {
			t.Errorf("%s holds %d copies, want %d", s.name, st.Copies, want)
		}
	}
	// A write through another node goes to the owner, conditionally.
	if _, err := f.servers[2].store.Put(ctx, key, []byte("v2"), replica.IfVersion(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.servers[3].store.Put(ctx, key, []byte("v3"), replica.IfVersion(1)); !errors.Is(err, replica.ErrConflict) {
		t.Fatalf("stale conditional put: %v, want ErrConflict", err)
	}
	if err := f.servers[1].store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.servers {
		if _, err := s.store.Get(ctx, key); !errors.Is(err, replica.ErrNotFound) {
			t.Fatalf("%s: get after delete: %v, want ErrNotFound", s.name, err)
		}
	}
}

// increment adds one to the counter stored under key through s.
func increment(ctx context.Context, s *server, key string) (int, error) {
	var n int
	_, err := s.store.Update(ctx, key, func(old []byte, exists bool) ([]byte, error) {
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
	f := newFarm(t, 4, replica.Config{})
	ctx := ctxT(t, 30*time.Second)
	owner := f.servers[1]
	var keys []string
	for i := range 50 {
		k := owner.store.NewKey()
		keys = append(keys, k)
		for range i%3 + 1 {
			if _, err := increment(ctx, owner, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	owner.kill()
	f.agree()
	for i, k := range keys {
		s := f.live()[i%3]
		got, err := s.store.Get(ctx, k)
		if err != nil {
			t.Fatalf("%s: get %d after the owner's kill: %v", s.name, i, err)
		}
		if want := strconv.Itoa(i%3 + 1); string(got.Value) != want {
			t.Fatalf("key %d: %q, want %q", i, got.Value, want)
		}
		if got.Owner == owner.node.ID() {
			t.Fatalf("key %d still owned by the dead node", i)
		}
	}
	// The new owners keep two copies each again.
	total := 0
	for _, s := range f.live() {
		total += s.store.Stats().Copies
	}
	if total != 2*len(keys) {
		t.Fatalf("%d copies in the farm, want %d", total, 2*len(keys))
	}
}

func TestGracefulLeaveHandsEntriesOver(t *testing.T) {
	f := newFarm(t, 4, replica.Config{})
	ctx := ctxT(t, 30*time.Second)
	leaving := f.servers[2]
	var keys []string
	for i := range 40 {
		k := leaving.store.NewKey()
		keys = append(keys, k)
		if _, err := leaving.store.Put(ctx, k, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	leaving.stop(t)
	f.agree()
	for i, k := range keys {
		got, err := f.live()[i%3].store.Get(ctx, k)
		if err != nil || string(got.Value) != fmt.Sprint(i) {
			t.Fatalf("key %d after a graceful leave: %q, %v", i, got.Value, err)
		}
	}
}

func TestMigrateMode(t *testing.T) {
	f := newFarm(t, 3, replica.Config{Mode: replica.ModeMigrate})
	ctx := ctxT(t, 20*time.Second)
	k := f.servers[0].store.NewKey()
	if _, err := increment(ctx, f.servers[0], k); err != nil {
		t.Fatal(err)
	}
	if _, err := increment(ctx, f.servers[1], k); err != nil {
		t.Fatal(err)
	}
	got, err := f.servers[2].store.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "2" || got.Owner != f.servers[2].node.ID() {
		t.Fatalf("got %q owned by %s, want 2 owned by the node that served the read", got.Value, got.Owner)
	}
}

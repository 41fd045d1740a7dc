package replica

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica/internal/peer"
)

func TestOfferKeepsTheNewestVersion(t *testing.T) {
	const a, b nodeid.ID = 1, 2
	now := time.Now()
	tests := []struct {
		name      string
		held      *peer.Entry
		pointer   bool
		offer     peer.Entry
		wantVer   uint64
		wantOwner nodeid.ID
	}{
		{"new copy", nil, false, peer.Entry{Key: "k", Version: 3, Owner: a}, 3, a},
		{"newer version replaces", &peer.Entry{Key: "k", Version: 3, Owner: a}, false, peer.Entry{Key: "k", Version: 4, Owner: a}, 4, a},
		{"stale version never wins", &peer.Entry{Key: "k", Version: 5, Owner: b}, false, peer.Entry{Key: "k", Version: 4, Owner: a}, 5, b},
		{"same version, other owner refused", &peer.Entry{Key: "k", Version: 5, Owner: b}, false, peer.Entry{Key: "k", Version: 5, Owner: a}, 5, b},
		{"retry of the same version accepted", &peer.Entry{Key: "k", Version: 5, Owner: a}, false, peer.Entry{Key: "k", Version: 5, Owner: a}, 5, a},
		{"tombstone keeps a deleted entry dead", &peer.Entry{Key: "k", Version: 7, Owner: a, Deleted: true}, false, peer.Entry{Key: "k", Version: 6, Owner: a, Value: []byte("old")}, 7, a},
		{"a copy replaces a pointer of its version", &peer.Entry{Key: "k", Version: 7, Owner: b}, true, peer.Entry{Key: "k", Version: 7, Owner: b, Value: []byte("v")}, 7, b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTable(1 << 20)
			if tt.held != nil {
				if tt.pointer {
					tab.point(*tt.held, now)
				} else if err := tab.put(*tt.held, now, nil); err != nil {
					t.Fatal(err)
				}
			}
			got := tab.offer(tt.offer, now)
			if got.Version != tt.wantVer || got.Owner != tt.wantOwner {
				t.Fatalf("held version %d owner %s, want version %d owner %s", got.Version, got.Owner, tt.wantVer, tt.wantOwner)
			}
			if tt.pointer {
				if e, _ := tab.get("k"); string(e.Value) != "v" || len(tab.ownedBy(b, false)) != 1 {
					t.Fatalf("the pointer was not replaced by the copy: %+v", e)
				}
			}
		})
	}
}

func TestTableMemoryBound(t *testing.T) {
	tab := newTable(1000)
	big := make([]byte, 600)
	if err := tab.put(peer.Entry{Key: "a", Value: big, Version: 1}, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if err := tab.put(peer.Entry{Key: "b", Value: big, Version: 1}, time.Now(), nil); !errors.Is(err, ErrFull) {
		t.Fatalf("second 600-byte entry in a 1000-byte table: %v, want ErrFull", err)
	}
	if got := tab.offer(peer.Entry{Key: "b", Value: big, Version: 1, Owner: 2}, time.Now()); got.Version != 0 {
		t.Fatalf("a copy beyond the bound was kept (version %d)", got.Version)
	}
	tab.remove("a", nodeid.None)
	if bytes, n := tab.usage(); bytes != 0 || n != 0 {
		t.Fatalf("after removal: %d bytes, %d entries", bytes, n)
	}
	if err := tab.put(peer.Entry{Key: "b", Value: big, Version: 1}, time.Now(), nil); err != nil {
		t.Fatalf("room freed, but: %v", err)
	}
}

func TestKeyLockHonoursContext(t *testing.T) {
	tab := newTable(1 << 20)
	unlock, err := tab.lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := tab.lock(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v, want the context's error", err)
	}
	unlock()
	unlock2, err := tab.lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
	if len(tab.locks) != 0 {
		t.Fatalf("%d key locks left after their users", len(tab.locks))
	}
}

func TestHint(t *testing.T) {
	for _, tt := range []struct {
		key  string
		want nodeid.ID
	}{
		{"00000000000000ff-0123456789abcdef0123456789abcdef", 0xff},
		{"00000000000000fF-0123456789abcdef0123456789abcdef", nodeid.None},
		{"short", nodeid.None},
		{"00000000000000ff+0123456789abcdef0123456789abcdef", nodeid.None},
	} {
		if got := hint(tt.key); got != tt.want {
			t.Errorf("hint(%q) = %s, want %s", tt.key, got, tt.want)
		}
	}
}

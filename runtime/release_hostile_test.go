package runtime

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingHandler is a slog.Handler that counts records, by message.
type countingHandler struct {
	mu    sync.Mutex
	total int
	msgs  map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msgs == nil {
		h.msgs = make(map[string]int)
	}
	h.total++
	h.msgs[r.Message]++
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// count returns the records so far, and those whose message contains s.
func (h *countingHandler) count(s string) (total, matching int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for m, c := range h.msgs {
		if strings.Contains(m, s) {
			matching += c
		}
	}
	return h.total, matching
}

// TestHostileReleaseBounded sends, over a real connection, releases naming
// an object that the node exported to another node: a release of a million
// entries, then many releases of the largest size a node sends. Each is
// handled in bounded time, the other node's holding is untouched, and the
// node logs a bounded number of records, not one per entry.
func TestHostileReleaseBounded(t *testing.T) {
	logs := &countingHandler{}
	server, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close(context.Background())
	if err := server.Register(echoDesc, struct{}{}); err != nil {
		t.Fatal(err)
	}
	obj := &struct{ x int }{1}
	const victim = NodeID(7)
	ref, err := server.exportRef(obj, echoDesc, victim)
	if err != nil {
		t.Fatal(err)
	}
	bogus := func(n int) *releaseArgs {
		a := &releaseArgs{Refs: make([]refCount, n)}
		for i := range a.Refs {
			a.Refs[i] = refCount{Object: ref.Object, Count: 1}
		}
		return a
	}
	attack := func(t *testing.T, args *releaseArgs, times int) {
		attacker, err := NewNode(Config{Name: "attacker", Keyring: testKeyring})
		if err != nil {
			t.Fatal(err)
		}
		defer attacker.Close(context.Background())
		// Bounded, not fast: -race on a busy machine is slow to encode a
		// million entries.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := attacker.Connect(ctx, server.Addr().String()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for range times {
			// Refused or applied, the call must end; what matters is
			// what it did to the node.
			newClient(attacker, server.ID(), refsService).do(ctx, refsReleaseMethod, args, nil)
		}
		if ctx.Err() != nil {
			t.Fatalf("%d releases of %d entries not handled within 30 s", times, len(args.Refs))
		}
		t.Logf("%d releases of %d entries handled in %v", times, len(args.Refs), time.Since(start))
	}
	t.Run("a million entries", func(t *testing.T) {
		attack(t, bogus(1_000_000), 1)
	})
	t.Run("many releases at the cap", func(t *testing.T) {
		attack(t, bogus(maxReleaseEntries), 50)
	})
	if e, _ := server.exported(ref.Object, victim); e == nil || e.holders[victim] != 1 {
		t.Fatal("the attacker's releases changed the holding of another node")
	}
	total, release := logs.count("released")
	if total > 10 || release > 2 {
		t.Fatalf("the node logged %d records (%d about releases) for %d bogus entries; want a few summaries: %v",
			total, release, 1_000_000+50*maxReleaseEntries, logs.msgs)
	}
	t.Logf("%d log records: %v", total, logs.msgs)
}

// TestLogLimiter checks that one record per kind and peer goes through in
// each logEvery, with the count of those held back.
func TestLogLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &logLimiter{now: func() time.Time { return now }}
	steps := []struct {
		advance time.Duration
		what    string
		peer    NodeID
		ok      bool
		held    int
	}{
		{0, "release", 1, true, 0},
		{time.Second, "release", 1, false, 0},
		{time.Second, "release", 1, false, 0},
		{0, "release", 2, true, 0}, // another peer
		{0, "badref", 1, true, 0},  // another kind
		{logEvery, "release", 1, true, 2},
		{0, "release", 1, false, 0},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, held := l.allow(s.what, s.peer)
		if ok != s.ok || held != s.held {
			t.Errorf("step %d (%s from %d): allow = %v, %d; want %v, %d", i, s.what, s.peer, ok, held, s.ok, s.held)
		}
	}
	for p := range NodeID(3 * maxLogSlots) {
		l.allow("flood", p+100)
	}
	if len(l.slots) > maxLogSlots {
		t.Errorf("%d slots, want at most %d", len(l.slots), maxLogSlots)
	}
}

package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica/internal/peer"
	"github.com/trellisrpc/trellis/runtime"
)

// maxBatch bounds the entries of one Replicate, Drop or Adopt message.
const maxBatch = 4096

// server serves peer.Peer for a Store.
type server Store

// caller returns the node that made the call being served.
func caller(ctx context.Context) nodeid.ID {
	if ci, ok := runtime.CallInfoFrom(ctx); ok {
		return ci.Caller
	}
	return nodeid.None
}

// Replicate implements peer.Peer.
func (v *server) Replicate(ctx context.Context, entries []peer.Entry) ([]peer.Entry, error) {
	s := (*Store)(v)
	if len(entries) > maxBatch {
		return nil, fmt.Errorf("replica: %d entries in one message, at most %d", len(entries), maxBatch)
	}
	from := caller(ctx)
	held := make([]peer.Entry, len(entries))
	now := s.now()
	for i, e := range entries {
		// A node replicates only what it owns (or hands over to the
		// caller's own care in a migration, where it names us).
		if e.Owner != from && e.Owner != s.self {
			held[i] = peer.Entry{Key: e.Key}
			if cur, ok := s.tab.get(e.Key); ok {
				held[i] = meta(cur)
			}
			continue
		}
		held[i] = s.tab.offer(e, now)
	}
	return held, nil
}

// Drop implements peer.Peer.
func (v *server) Drop(ctx context.Context, owner nodeid.ID, keys []string) error {
	s := (*Store)(v)
	if len(keys) > maxBatch {
		return fmt.Errorf("replica: %d keys in one message, at most %d", len(keys), maxBatch)
	}
	if owner == s.self {
		return nil // never drop what this node owns on another's word
	}
	for _, k := range keys {
		s.tab.remove(k, owner)
	}
	return nil
}

// Lookup implements peer.Peer.
func (v *server) Lookup(ctx context.Context, key string, withValue bool) (peer.Entry, error) {
	s := (*Store)(v)
	s.awaitAdoptions(ctx)
	e, ok := s.tab.get(key)
	if !ok {
		return peer.Entry{}, ErrNotFound
	}
	if !withValue {
		e = meta(e)
	}
	return e, nil
}

// Apply implements peer.Peer.
func (v *server) Apply(ctx context.Context, op peer.Op) (peer.Entry, error) {
	s := (*Store)(v)
	s.awaitAdoptions(ctx)
	e, ok := s.tab.get(op.Key)
	if !ok && op.Kind != peer.OpPut {
		return peer.Entry{}, &peer.NotOwnerError{}
	}
	if ok && e.Owner != s.self {
		return peer.Entry{}, &peer.NotOwnerError{Owner: e.Owner}
	}
	return s.apply(ctx, caller(ctx), op)
}

// Held implements peer.Peer.
func (v *server) Held(ctx context.Context, owner nodeid.ID, withValues bool) ([]peer.Entry, error) {
	s := (*Store)(v)
	es := s.tab.ownedBy(owner, true)
	if !withValues {
		for i := range es {
			es[i] = meta(es[i])
		}
	}
	return es, nil
}

// Adopt implements peer.Peer. The entries stay locked until their backups
// hold them: an operation that reaches this node meanwhile waits, so the
// caller's hand-over is acknowledged only once it is replicated, and no
// later version overtakes it.
func (v *server) Adopt(ctx context.Context, entries []peer.Entry) error {
	s := (*Store)(v)
	if len(entries) > maxBatch {
		return fmt.Errorf("replica: %d entries in one message, at most %d", len(entries), maxBatch)
	}
	for _, e := range entries {
		if e.Owner != s.self {
			return errors.New("replica: adopt: entry names another owner")
		}
	}
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b peer.Entry) int { return strings.Compare(a.Key, b.Key) })
	entries = slices.CompactFunc(entries, func(a, b peer.Entry) bool { return a.Key == b.Key })
	for _, e := range entries {
		unlock, err := s.tab.lock(ctx, e.Key)
		if err != nil {
			return err
		}
		defer unlock()
		if err := s.takeLocked(e); err != nil {
			return err
		}
	}
	return s.replicateAll(ctx, entries)
}

// take makes e, which names this node as owner, the entry held here unless a
// newer version is held.
func (s *Store) take(ctx context.Context, e peer.Entry) error {
	unlock, err := s.tab.lock(ctx, e.Key)
	if err != nil {
		return err
	}
	defer unlock()
	return s.takeLocked(e)
}

// takeLocked is take for a caller holding e's lock.
func (s *Store) takeLocked(e peer.Entry) error {
	if cur, ok := s.tab.get(e.Key); ok && cur.Version >= e.Version {
		return fmt.Errorf("replica: adopt %q version %d: version %d is held", e.Key, e.Version, cur.Version)
	}
	if err := s.tab.put(e, s.now(), nil); err != nil {
		return err
	}
	// Newer than any copy when it was handed over or collected: no check
	// before it is served.
	s.tab.check(e.Key, e.Version, s.checkFrom.Load())
	return nil
}

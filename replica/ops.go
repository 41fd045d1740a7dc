package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica/internal/peer"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// maxRedirects bounds how many owners an operation follows before it gives
// up (an owner that moved while the operation was on its way).
const maxRedirects = 8

// do runs op wherever the entry's owner is, and returns the entry as the
// owner left it.
func (s *Store) do(ctx context.Context, op peer.Op) (Item, error) {
	if s.ctx.Err() != nil {
		return Item{}, ErrClosed
	}
	if err := s.ready(ctx); err != nil {
		return Item{}, err
	}
	var owner nodeid.ID
	var lastErr error
	// pause is how long an operation waits for a newer topology before it
	// looks for the owner again: short at first (the successor of a dead
	// owner is taking its entries over), longer if it takes longer.
	pause := 10 * time.Millisecond
	backoff := func() {
		s.awaitChange(ctx, pause)
		pause = min(2*pause, 300*time.Millisecond)
	}
	for try := 0; try < maxRedirects; try++ {
		if owner == nodeid.None {
			var err error
			if owner, err = s.locate(ctx, op.Key); err != nil {
				if errors.Is(err, errMoving) && ctx.Err() == nil {
					lastErr = err
					backoff()
					continue
				}
				if errors.Is(err, ErrNotFound) && op.Kind == peer.OpPut {
					owner = s.creator(op.Key)
					if s.cfg.Mode == ModeMigrate {
						owner = s.self
					}
				} else {
					return Item{}, err
				}
			}
		}
		var e peer.Entry
		var err error
		switch {
		case owner == s.self:
			e, err = s.apply(ctx, s.self, op)
		case s.cfg.Mode == ModeMigrate && try == 0:
			// Migrate once; an entry that moved meanwhile is wanted
			// elsewhere at the same time: proxy to its owner instead
			// of chasing it.
			if err = s.migrate(ctx, owner, op.Key); err == nil {
				e, err = s.apply(ctx, s.self, op)
			}
		default:
			cctx, cancel := s.callCtx(ctx)
			e, err = s.peer(owner).Apply(cctx, op)
			cancel()
		}
		var no *peer.NotOwnerError
		switch {
		case err == nil:
			return s.item(e), nil
		case errors.As(err, &no):
			// The entry moved; follow it, or look again from the start.
			owner, lastErr = no.Owner, err
		case (runtime.NotSent(err) || errors.Is(err, errMoving)) && ctx.Err() == nil:
			// The owner is unreachable: wait for the topology to change
			// (its failure or its return), then look again.
			lastErr = err
			backoff()
			owner = nodeid.None
		default:
			return Item{}, err
		}
	}
	return Item{}, fmt.Errorf("replica: %q: no owner found after %d tries: %w", op.Key, maxRedirects, lastErr)
}

// creator returns the node a new entry is created on: the node its key
// names if it is a member, otherwise this node.
func (s *Store) creator(key string) nodeid.ID {
	if h := hint(key); h != nodeid.None && s.topology().Contains(h) {
		return h
	}
	return s.self
}

// awaitChange waits until the store has taken in a newer committed
// topology (its view, which locate and the takeovers go by, not only the
// cluster's), at most d.
func (s *Store) awaitChange(ctx context.Context, d time.Duration) {
	s.mu.Lock()
	changed := s.changed
	s.mu.Unlock()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-changed:
	case <-tm.C:
	case <-ctx.Done():
	}
}

// locate finds the owner of key: from the copy held here, the node the key
// names, the successor of a departed owner, or, failing those, by asking
// every member.
func (s *Store) locate(ctx context.Context, key string) (nodeid.ID, error) {
	cand := hint(key)
	if e, ok := s.tab.get(key); ok {
		cand = e.Owner
	}
	seen := make(map[nodeid.ID]bool)
	for cand != nodeid.None && !seen[cand] && len(seen) < maxRedirects {
		seen[cand] = true
		if cand == s.self {
			if e, ok := s.tab.get(key); ok && e.Owner == s.self {
				if e.Deleted {
					return nodeid.None, ErrNotFound
				}
				return s.self, nil
			}
			break
		}
		t := s.topology()
		if !t.Contains(cand) {
			// The owner left or died: its successor has (or will have)
			// taken the entry over.
			next := s.successor(cand)
			if next == nodeid.None {
				break
			}
			if next == s.self {
				s.awaitAdoption(ctx, cand)
				cand = s.self
				seen[s.self] = false
				if e, ok := s.tab.get(key); !ok || e.Owner != s.self {
					break
				}
				continue
			}
			cand = next
			continue
		}
		cctx, cancel := s.callCtx(ctx)
		e, err := s.peer(cand).Lookup(cctx, key, false)
		cancel()
		switch {
		case errors.Is(err, ErrNotFound):
			// Not even its creator is sure that an entry does not exist
			// (it may have been taken over while the creator was cut
			// off): only asking everyone is.
			cand = nodeid.None
		case err != nil:
			if ctx.Err() != nil {
				return nodeid.None, err
			}
			cand = nodeid.None
		case e.Owner == cand:
			if e.Deleted {
				return nodeid.None, ErrNotFound
			}
			return cand, nil
		default:
			cand = e.Owner
		}
	}
	return s.ask(ctx, key)
}

// ask asks every member for key and returns the owner of the newest copy.
func (s *Store) ask(ctx context.Context, key string) (nodeid.ID, error) {
	t := s.topology()
	var best peer.Entry
	if e, ok := s.tab.get(key); ok {
		best = e
	}
	if e, failed := s.newest(ctx, t, key); failed > 0 {
		// A member that did not answer may hold the newest copy.
		return nodeid.None, fmt.Errorf("%w: %d members did not answer", errMoving, failed)
	} else if e.Version > best.Version {
		best = e
	}
	switch {
	case best.Version == 0 || best.Deleted:
		s.log.Info("no member holds the entry", "key", key, "members", len(t.Members), "epoch", t.Epoch)
		return nodeid.None, ErrNotFound
	case !t.Contains(best.Owner):
		// Its owner is gone and the newest copy is not taken over yet.
		return nodeid.None, fmt.Errorf("%w: owner %s is gone", errMoving, best.Owner)
	}
	return best.Owner, nil
}

// confirm makes sure, before this node serves an entry it owns, that
// nobody took the entry over while this node was out of the cluster: after
// it missed a committed topology (Store.checkFrom), each entry it owns is
// checked against every member's copy once. If another node owns a version
// as new or newer (a takeover always raises the version; this node's own
// is at most an unacknowledged write ahead), this node keeps a pointer to
// it and answers NotOwnerError.
func (s *Store) confirm(ctx context.Context, key string) error {
	from := s.checkFrom.Load()
	if from == 0 {
		return nil
	}
	mine, ok := s.tab.unchecked(key, s.self, from)
	if !ok {
		return nil
	}
	newest, failed := s.newest(ctx, s.topology(), key)
	if newest.Owner != s.self && newest.Version >= mine.Version {
		s.tab.yield(s.self, mine.Version, newest, s.now())
		s.log.Info("an entry was taken over while this node was out of the cluster", "key", key, "owner", newest.Owner, "version", newest.Version)
		return &peer.NotOwnerError{Owner: newest.Owner}
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d members did not answer whether %q was taken over", errMoving, failed, key)
	}
	s.tab.check(key, mine.Version, from)
	return nil
}

// newest asks every member of t but this node for key and returns the
// newest copy they hold (values left out), and how many did not answer.
func (s *Store) newest(ctx context.Context, t topology.Topology, key string) (best peer.Entry, failed int) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, m := range t.Members {
		if m.ID == s.self {
			continue
		}
		wg.Add(1)
		go func(id nodeid.ID) {
			defer wg.Done()
			cctx, cancel := s.callCtx(ctx)
			defer cancel()
			e, err := s.peer(id).Lookup(cctx, key, false)
			if errors.Is(err, ErrNotFound) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			if e.Version > best.Version {
				best = e
			}
		}(m.ID)
	}
	wg.Wait()
	return best, failed
}

// errMoving is the error of an operation on an entry whose owner cannot be
// told yet: a member did not answer, or the entry is being taken over.
// Operations wait for the next topology and look again.
var errMoving = errors.New("replica: entry's owner unknown for now")

// apply runs op on an entry this node owns (or creates), on behalf of
// caller.
func (s *Store) apply(ctx context.Context, caller nodeid.ID, op peer.Op) (peer.Entry, error) {
	if s.minority.Load() {
		if e, ok := s.tab.get(op.Key); !ok || e.Owner == s.self {
			return peer.Entry{}, ErrMinority
		}
	}
	if err := s.confirm(ctx, op.Key); err != nil {
		return peer.Entry{}, err
	}
	if op.Kind == peer.OpGet {
		return s.read(op.Key)
	}
	unlock, err := s.tab.lock(ctx, op.Key)
	if err != nil {
		return peer.Entry{}, err
	}
	defer unlock()
	cur, exists := s.tab.get(op.Key)
	if exists && cur.Owner != s.self {
		return peer.Entry{}, &peer.NotOwnerError{Owner: cur.Owner}
	}
	live := exists && !cur.Deleted
	if live && cur.Expires != 0 && cur.Expires < s.now().UnixNano() {
		live = false
	}
	now := s.now()
	next := peer.Entry{Key: op.Key, Version: cur.Version + 1, Owner: s.self}
	switch op.Kind {
	case peer.OpPut:
		switch {
		case op.IfAbsent && live:
			return peer.Entry{}, ErrConflict
		case op.IfVersion != 0 && (!live || cur.Version != op.IfVersion):
			return peer.Entry{}, ErrConflict
		}
		next.Value, next.TTL = op.Value, op.TTL
		if next.TTL > 0 {
			next.Expires = now.Add(time.Duration(next.TTL)).UnixNano()
		}
	case peer.OpDelete:
		if !live {
			return peer.Entry{}, ErrNotFound
		}
		if op.IfVersion != 0 && cur.Version != op.IfVersion {
			return peer.Entry{}, ErrConflict
		}
		next.Deleted = true
		next.Expires = now.Add(s.cfg.TombstoneTTL).UnixNano()
	case peer.OpMigrate:
		if !live {
			return peer.Entry{}, ErrNotFound
		}
		return s.handOver(ctx, cur, caller)
	default:
		return peer.Entry{}, fmt.Errorf("replica: unknown operation %d", op.Kind)
	}
	if err := s.tab.put(next, now, nil); err != nil {
		return peer.Entry{}, err
	}
	// confirmed above (or new): no check before it is served again
	s.tab.check(op.Key, next.Version, s.checkFrom.Load())
	if s.cfg.Async {
		err = s.enqueue(ctx, next)
	} else {
		err = s.replicate(ctx, next)
	}
	if err != nil {
		return peer.Entry{}, err
	}
	return next, nil
}

// read returns an entry this node owns, sliding its expiry.
func (s *Store) read(key string) (peer.Entry, error) {
	e, ok := s.tab.get(key)
	switch {
	case !ok:
		return peer.Entry{}, ErrNotFound
	case e.Owner != s.self:
		return peer.Entry{}, &peer.NotOwnerError{Owner: e.Owner}
	case e.Deleted, e.Expires != 0 && e.Expires < s.now().UnixNano():
		return peer.Entry{}, ErrNotFound
	}
	if e.TTL > 0 {
		s.tab.slide(key, e.Version, s.now().Add(time.Duration(e.TTL)).UnixNano())
	}
	return e, nil
}

// replicate sends e to the owner's backups and waits until every one of
// them holds it.
func (s *Store) replicate(ctx context.Context, e peer.Entry) error {
	backups := s.backupsOf(s.self, s.topology())
	if len(backups) == 0 {
		return nil
	}
	errs := make([]error, len(backups))
	var wg sync.WaitGroup
	for i, b := range backups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.send(ctx, b, []peer.Entry{e})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %q version %d: %w", ErrNotReplicated, e.Key, e.Version, err)
	}
	s.tab.setBackups(e.Key, e.Version, backups)
	return nil
}

// send replicates es to node b and checks that b now holds each of them.
func (s *Store) send(ctx context.Context, b nodeid.ID, es []peer.Entry) error {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	held, err := s.peer(b).Replicate(cctx, es)
	if err != nil {
		return err
	}
	if len(held) != len(es) {
		return fmt.Errorf("replica: node %s answered %d results for %d entries", b, len(held), len(es))
	}
	for i, h := range held {
		if h.Owner == s.self && h.Version > es[i].Version {
			if cur, ok := s.tab.get(h.Key); ok && cur.Owner == s.self && cur.Version >= h.Version {
				// A version this node wrote after es[i] reached b
				// first (Adopt replicates after it unlocks the
				// entries): b holds more than was asked.
				continue
			}
		}
		if h.Version > es[i].Version && es[i].Owner == s.self {
			// Another node took the entry over while this one was cut
			// off: this node's copy is stale and must not be served.
			s.tab.demote(h)
			s.log.Info("another node took an entry over: this node no longer owns it", "key", h.Key, "owner", h.Owner, "version", h.Version)
		}
		if h.Version != es[i].Version || h.Owner != es[i].Owner {
			return fmt.Errorf("replica: node %s holds %q at version %d owned by %s, not version %d", b, h.Key, h.Version, h.Owner, es[i].Version)
		}
	}
	return nil
}

// migrate makes this node the owner of key, which owner owns.
func (s *Store) migrate(ctx context.Context, owner nodeid.ID, key string) error {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	_, err := s.peer(owner).Apply(cctx, peer.Op{Kind: peer.OpMigrate, Key: key})
	return err
}

// handOver makes to the owner of cur (the caller holds cur's lock): to
// adopts it, and this node keeps a pointer to the new owner, so that
// requests that still arrive here are redirected.
func (s *Store) handOver(ctx context.Context, cur peer.Entry, to nodeid.ID) (peer.Entry, error) {
	next := cur
	next.Version++
	next.Owner = to
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	if err := s.peer(to).Adopt(cctx, []peer.Entry{next}); err != nil {
		return peer.Entry{}, err
	}
	s.tab.point(meta(next), s.now())
	return meta(next), nil
}

// ready waits until this node is a member of a committed topology: before
// that it cannot tell who holds what.
func (s *Store) ready(ctx context.Context) error {
	if s.topology().Contains(s.self) {
		return nil
	}
	_, err := s.cl.Wait(ctx, func(t topology.Topology) bool { return t.Contains(s.self) })
	if err != nil {
		return fmt.Errorf("replica: this node is not in a committed topology yet: %w", err)
	}
	// The store's own view follows the cluster's shortly.
	for !s.topology().Contains(s.self) {
		s.awaitChange(ctx, 10*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

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
	var owner nodeid.ID
	var lastErr error
	for try := 0; try < maxRedirects; try++ {
		if owner == nodeid.None {
			var err error
			if owner, err = s.locate(ctx, op.Key); err != nil {
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
		case s.cfg.Mode == ModeMigrate:
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
			owner, lastErr = no.Owner, err
			if owner == nodeid.None {
				// Nobody claims it any more; look again from the start.
				if _, err := s.locate(ctx, op.Key); errors.Is(err, ErrNotFound) && op.Kind != peer.OpPut {
					return Item{}, err
				}
			}
		case runtime.NotSent(err) && ctx.Err() == nil:
			// The owner is unreachable: wait for the topology to change
			// (its failure or its return), then look again.
			lastErr = err
			s.awaitChange(ctx, 300*time.Millisecond)
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

// awaitChange waits until a newer topology is committed, at most d.
func (s *Store) awaitChange(ctx context.Context, d time.Duration) {
	epoch := s.topology().Epoch
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	s.cl.Wait(wctx, func(t topology.Topology) bool { return t.Epoch > epoch })
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
			if hint(key) == cand {
				return nodeid.None, ErrNotFound
			}
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
	var (
		mu   sync.Mutex
		best peer.Entry
		wg   sync.WaitGroup
	)
	if e, ok := s.tab.get(key); ok {
		best = e
	}
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
			if err != nil {
				return
			}
			mu.Lock()
			if e.Version > best.Version {
				best = e
			}
			mu.Unlock()
		}(m.ID)
	}
	wg.Wait()
	if best.Version == 0 || best.Deleted {
		return nodeid.None, ErrNotFound
	}
	if !t.Contains(best.Owner) {
		if next := s.successor(best.Owner); next != nodeid.None {
			return next, nil
		}
	}
	return best.Owner, nil
}

// apply runs op on an entry this node owns (or creates), on behalf of
// caller.
func (s *Store) apply(ctx context.Context, caller nodeid.ID, op peer.Op) (peer.Entry, error) {
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
	if err := s.replicate(ctx, next); err != nil {
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
// adopts it, and this node keeps a copy naming the new owner, so that
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
	s.tab.offer(next, s.now())
	return meta(next), nil
}

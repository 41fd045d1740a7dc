package replica

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica/internal/peer"
)

// Leave hands every entry this node owns to one of its neighbours, which
// becomes its owner and replicates it before it answers, so that the node
// can then leave the cluster with nothing lost. Entries are spread over the
// neighbours by key. Operations that reach this node afterwards are sent to
// the new owners. Call Leave before leaving the cluster, then Close.
func (s *Store) Leave(ctx context.Context) error {
	t := s.topology()
	targets := t.Neighbours(s.self)
	slices.Sort(targets)
	if len(targets) == 0 {
		if st := s.Stats(); st.Owned > 0 {
			return fmt.Errorf("replica: leave: %d entries and no neighbour to hand them to", st.Owned)
		}
		return nil
	}
	byTarget := make(map[nodeid.ID][]string)
	for _, e := range s.tab.ownedBy(s.self, true) {
		h := fnv.New64a()
		h.Write([]byte(e.Key))
		to := targets[h.Sum64()%uint64(len(targets))]
		byTarget[to] = append(byTarget[to], e.Key)
	}
	var errs []error
	for to, keys := range byTarget {
		for i := 0; i < len(keys); i += maxBatch {
			if err := s.handOff(ctx, to, keys[i:min(i+maxBatch, len(keys))]); err != nil {
				errs = append(errs, fmt.Errorf("replica: leave: handing %d entries to %s: %w", len(keys), to, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// handOff hands the entries of keys that this node still owns to node to.
func (s *Store) handOff(ctx context.Context, to nodeid.ID, keys []string) error {
	var unlocks []func()
	defer func() {
		for _, u := range unlocks {
			u()
		}
	}()
	var batch []peer.Entry
	for _, k := range keys {
		unlock, err := s.tab.lock(ctx, k)
		if err != nil {
			return err
		}
		unlocks = append(unlocks, unlock)
		e, ok := s.tab.get(k)
		if !ok || e.Owner != s.self {
			continue
		}
		e.Version++
		e.Owner = to
		batch = append(batch, e)
	}
	if len(batch) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 4*s.cfg.Timeout)
	defer cancel()
	if err := s.peer(to).Adopt(cctx, batch); err != nil {
		return err
	}
	now := s.now()
	for _, e := range batch {
		s.tab.offer(e, now)
	}
	return nil
}

// sweepEvery is how often a store expires entries and forgets old copies.
const sweepEvery = time.Second

// sweep expires entries: this node's own become tombstones (replicated),
// tombstones and copies past their time are forgotten.
func (s *Store) sweep() {
	defer s.wg.Done()
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		now := s.now().UnixNano()
		var expired []string
		var forget []peer.Entry
		t := s.topology()
		grace := int64(4 * s.cfg.Timeout)
		s.tab.each(func(r *record) {
			e := r.e
			switch {
			case e.Expires == 0:
			case e.Deleted && e.Expires < now:
				forget = append(forget, e)
			case e.Owner == s.self && e.Expires < now:
				expired = append(expired, e.Key)
			case e.Owner != s.self && e.Expires+grace < now && t.Contains(e.Owner):
				forget = append(forget, e)
			}
		})
		for _, e := range forget {
			s.tab.remove(e.Key, e.Owner)
		}
		for _, k := range expired {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
			s.expire(ctx, k)
			cancel()
		}
	}
}

// expire turns this node's expired entry into a tombstone.
func (s *Store) expire(ctx context.Context, key string) {
	unlock, err := s.tab.lock(ctx, key)
	if err != nil {
		return
	}
	defer unlock()
	e, ok := s.tab.get(key)
	if !ok || e.Owner != s.self || e.Deleted || e.Expires == 0 || e.Expires >= s.now().UnixNano() {
		return
	}
	e.Version++
	e.Value, e.Deleted = nil, true
	e.Expires = s.now().Add(s.cfg.TombstoneTTL).UnixNano()
	if s.tab.put(e, s.now(), nil) == nil {
		s.replicate(ctx, e)
	}
}

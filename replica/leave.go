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
	"github.com/trellisrpc/trellis/topology"
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
	holders := make(map[nodeid.ID][]string) // this node's backups, to drop their copies
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
		for _, b := range s.tab.backups(k) {
			if b != to {
				holders[b] = append(holders[b], k)
			}
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
		s.tab.point(e, now)
	}
	// The copies this node's backups hold name it as owner: without them,
	// nobody would take the entries over a second time when it is gone.
	for b, ks := range holders {
		s.drop(cctx, b, s.self, ks)
	}
	return nil
}

// sweepEvery is how often a store expires entries and forgets old copies.
const sweepEvery = time.Second

// sweep expires entries (this node's own become tombstones, replicated;
// tombstones and copies past their time are forgotten) and repairs the
// copies of this node's entries that its backups lack.
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
		settled := s.now().Add(-copyGrace)
		s.tab.each(func(r *record) {
			e := r.e
			switch {
			case r.pointer:
				if r.received.Before(s.now().Add(-s.cfg.TombstoneTTL)) {
					forget = append(forget, e)
				}
			case e.Deleted && e.Expires != 0 && e.Expires < now:
				forget = append(forget, e)
			case e.Owner == s.self:
				if e.Expires != 0 && e.Expires < now {
					expired = append(expired, e.Key)
				}
			case e.Expires != 0 && e.Expires+grace < now && t.Contains(e.Owner):
				forget = append(forget, e)
			case r.received.Before(settled) && !s.needed(e.Owner, t):
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
		// Copies that could not be made when the topology changed (a new
		// neighbour not reachable yet) are made now.
		if t.Contains(s.self) {
			s.rereplicate(t)
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

// copyGrace is how long a copy this node no longer needs to hold is kept:
// its owner may see the topology that makes this node its backup a little
// later than this node does.
const copyGrace = 2 * time.Second

// needed reports whether this node should hold copies of owner's entries
// under t: it backs owner up, or owner is gone and has not been taken over
// by another node.
func (s *Store) needed(owner nodeid.ID, t topology.Topology) bool {
	if t.Contains(owner) {
		return slices.Contains(s.backupsOf(owner, t), s.self)
	}
	succ := s.successor(owner)
	return succ == nodeid.None || succ == s.self
}

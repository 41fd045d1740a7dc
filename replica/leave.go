package replica

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

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

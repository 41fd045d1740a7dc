package replica

import (
	"context"
	"slices"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica/internal/peer"
	"github.com/trellisrpc/trellis/topology"
)

// sweepEvery is how often a store expires entries and forgets old copies.
const sweepEvery = time.Second

// sweep expires entries (this node's own become tombstones, replicated;
// tombstones and copies past their time are forgotten) and repairs the
// copies of this node's entries that its backups lack.
func (s *Store) sweep() {
	defer s.wg.Done()
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	sweeps := 0
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
		// neighbour not reachable yet), or that a backup lost, are made
		// now.
		if t.Contains(s.self) {
			if sweeps++; sweeps%auditEvery == 0 {
				s.audit(t)
			}
			s.rereplicate(t)
		}
	}
}

// auditEvery is how many sweeps apart a store audits its backups.
const auditEvery = 5

// audit asks this node's backups under t which versions of its entries
// they hold, and forgets that a backup holds an entry when it does not: the
// next rereplicate sends it again. A backup may have lost copies the owner
// believes it holds: it forgot them under a topology the owner never saw
// (the owner skipped that commit), or it restarted under the same id.
func (s *Store) audit(t topology.Topology) {
	for _, b := range s.backupsOf(s.self, t) {
		ctx, cancel := s.callCtx(s.ctx)
		held, err := s.peer(b).Held(ctx, s.self, false)
		cancel()
		if err != nil {
			s.log.Debug("auditing a backup", "backup", b, "err", err)
			continue
		}
		versions := make(map[string]uint64, len(held))
		for _, e := range held {
			versions[e.Key] = e.Version
		}
		lost := s.tab.forgetBackup(s.self, b, versions)
		if lost > 0 {
			s.log.Info("a backup lacks copies of entries owned here: sending them again", "backup", b, "entries", lost)
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

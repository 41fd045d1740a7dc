package replica

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica/internal/peer"
	"github.com/trellisrpc/trellis/topology"
)

// watch follows the committed topologies: it takes over the entries of
// departed owners and keeps the copies of this node's entries on its
// current neighbours.
func (s *Store) watch() {
	defer s.wg.Done()
	last := s.topology()
	s.onTopology(last, nil)
	for {
		t, err := s.cl.Wait(s.ctx, func(t topology.Topology) bool { return t.Epoch > last.Epoch })
		if err != nil {
			return
		}
		s.mu.Lock()
		// The takeovers this commit makes this node do are registered
		// before operations see the commit, so that they wait for them.
		adopts := s.adoptionsLocked(last, t)
		s.topo = t
		close(s.changed)
		s.changed = make(chan struct{})
		s.history = append(s.history, t)
		if len(s.history) > historyLen {
			s.history = s.history[len(s.history)-historyLen:]
		}
		s.mu.Unlock()
		if t.Contains(s.self) && last.Epoch > 0 && (t.Epoch > last.Epoch+1 || !last.Contains(s.self)) {
			// This node missed a commit: it may have been cut off while
			// the others took its entries over.
			s.checkFrom.Store(t.Epoch)
			s.log.Info("missed a topology: entries owned here are checked before they are served", "last", last.Epoch, "epoch", t.Epoch)
		}
		s.onTopology(t, adopts)
		last = t
	}
}

// An adoption is a takeover of a departed owner's entries by this node.
type adoption struct {
	owner    nodeid.ID
	prev     topology.Topology // the last topology with the owner
	finished chan struct{}     // closed when the takeover is done
}

// adoptionsLocked registers (in s.adopting) and returns the takeovers the
// commit of t after prev makes this node do. The caller holds s.mu.
func (s *Store) adoptionsLocked(prev, t topology.Topology) []adoption {
	if !t.Contains(s.self) {
		return nil
	}
	var as []adoption
	for _, m := range prev.Members {
		if t.Contains(m.ID) || m.ID == s.self {
			continue
		}
		if s.successorIn(m.ID, prev, t) == s.self {
			a := adoption{owner: m.ID, prev: prev, finished: make(chan struct{})}
			s.adopting[m.ID] = a.finished
			as = append(as, a)
		}
	}
	return as
}

// onTopology reacts to the commit of t: it does the takeovers registered
// for it and brings the copies of this node's entries in line.
func (s *Store) onTopology(t topology.Topology, adopts []adoption) {
	for _, a := range adopts {
		s.adopt(a.owner, a.prev, t)
		s.mu.Lock()
		delete(s.adopting, a.owner)
		s.mu.Unlock()
		close(a.finished)
	}
	if !t.Contains(s.self) {
		return
	}
	s.rereplicate(t)
}

// successor returns the node that takes over the entries of owner, which is
// no longer a member: its lowest-id neighbour, in the last topology that had
// it, that is still a member (or, if none is, the lowest-id member).
func (s *Store) successor(owner nodeid.ID) nodeid.ID {
	s.mu.Lock()
	t := s.topo
	var prev topology.Topology
	for i := len(s.history) - 1; i >= 0; i-- {
		if s.history[i].Contains(owner) {
			prev = s.history[i]
			break
		}
	}
	s.mu.Unlock()
	return s.successorIn(owner, prev, t)
}

func (s *Store) successorIn(owner nodeid.ID, prev, t topology.Topology) nodeid.ID {
	best := nodeid.None
	for _, n := range prev.Neighbours(owner) {
		if t.Contains(n) && (best == nodeid.None || n < best) {
			best = n
		}
	}
	if best != nodeid.None {
		return best
	}
	for _, m := range t.Members {
		if best == nodeid.None || m.ID < best {
			best = m.ID
		}
	}
	return best
}

// adopt takes over the entries of owner, which left t: it collects the
// newest copy of each from the members, owns them with a
// higher version, replicates them and has the other copies dropped.
func (s *Store) adopt(owner nodeid.ID, prev, t topology.Topology) {
	ctx, cancel := context.WithTimeout(s.ctx, 4*s.cfg.Timeout)
	defer cancel()
	// The owner's former neighbours hold its copies, but a copy may also
	// still be on a neighbour of an earlier topology if the owner died
	// while re-replicating: every member is asked.
	var sources []nodeid.ID
	for _, m := range t.Members {
		sources = append(sources, m.ID)
	}
	newest := make(map[string]peer.Entry)
	keep := func(es []peer.Entry) {
		for _, e := range es {
			if e.Owner != owner {
				continue
			}
			if cur, ok := newest[e.Key]; !ok || e.Version > cur.Version {
				newest[e.Key] = e
			}
		}
	}
	keep(s.tab.ownedBy(owner, true))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var asked []nodeid.ID
	for _, src := range sources {
		if src == s.self || !t.Contains(src) {
			continue
		}
		asked = append(asked, src)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := s.callCtx(ctx)
			defer cancel()
			es, err := s.peer(src).Held(cctx, owner, true)
			if err != nil {
				s.log.Warn("collecting a departed owner's copies", "owner", owner, "from", src, "err", err)
				return
			}
			mu.Lock()
			keep(es)
			mu.Unlock()
		}()
	}
	wg.Wait()
	now := s.now()
	var taken []peer.Entry
	var keys []string
	for _, e := range newest {
		e.Version++
		e.Owner = s.self
		if e.TTL > 0 && !e.Deleted {
			e.Expires = now.Add(time.Duration(e.TTL)).UnixNano()
		}
		if err := s.take(ctx, e); err != nil {
			s.log.Warn("taking over an entry", "key", e.Key, "err", err)
			continue
		}
		taken = append(taken, e)
		keys = append(keys, e.Key)
	}
	if err := s.replicateAll(ctx, taken); err != nil {
		s.log.Warn("replicating entries taken over", "owner", owner, "err", err)
	}
	backups := s.backupsOf(s.self, t)
	for _, src := range asked {
		if !slices.Contains(backups, src) {
			s.drop(ctx, src, owner, keys)
		}
	}
	s.log.Info("took over a departed owner's entries", "owner", owner, "entries", len(taken))
}

// awaitAdoption waits until this node has taken over owner's entries, if it
// is doing so.
func (s *Store) awaitAdoption(ctx context.Context, owner nodeid.ID) {
	s.mu.Lock()
	done := s.adopting[owner]
	s.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

// awaitAdoptions waits until every takeover under way here is done.
func (s *Store) awaitAdoptions(ctx context.Context) {
	s.mu.Lock()
	var dones []chan struct{}
	for _, d := range s.adopting {
		dones = append(dones, d)
	}
	s.mu.Unlock()
	for _, d := range dones {
		select {
		case <-d:
		case <-ctx.Done():
			return
		}
	}
}

// replicateAll sends es, which this node owns, to its backups in batches.
func (s *Store) replicateAll(ctx context.Context, es []peer.Entry) error {
	backups := s.backupsOf(s.self, s.topology())
	var errs []error
	for _, b := range backups {
		for i := 0; i < len(es); i += maxBatch {
			batch := es[i:min(i+maxBatch, len(es))]
			if err := s.send(ctx, b, batch); err != nil {
				errs = append(errs, err)
				break
			}
			for _, e := range batch {
				s.tab.addBackup(e.Key, e.Version, b)
			}
		}
	}
	return errors.Join(errs...)
}

// rereplicate brings the copies of this node's entries in line with t: new
// backups receive them, former backups drop them.
func (s *Store) rereplicate(t topology.Topology) {
	ctx, cancel := context.WithTimeout(s.ctx, 4*s.cfg.Timeout)
	defer cancel()
	want := s.backupsOf(s.self, t)
	push := make(map[nodeid.ID][]peer.Entry)
	drops := make(map[nodeid.ID][]string)
	s.tab.each(func(r *record) {
		if r.e.Owner != s.self {
			return
		}
		for _, b := range want {
			if !slices.Contains(r.backups, b) {
				push[b] = append(push[b], r.e)
			}
		}
		for _, b := range r.backups {
			if !slices.Contains(want, b) && t.Contains(b) {
				drops[b] = append(drops[b], r.e.Key)
			}
		}
	})
	for b, es := range push {
		for i := 0; i < len(es); i += maxBatch {
			batch := es[i:min(i+maxBatch, len(es))]
			if err := s.send(ctx, b, batch); err != nil {
				s.log.Warn("replicating to a new backup", "backup", b, "err", err)
				break
			}
			for _, e := range batch {
				s.tab.addBackup(e.Key, e.Version, b)
			}
		}
	}
	for b, keys := range drops {
		s.drop(ctx, b, s.self, keys)
	}
	s.tab.each(func(r *record) {
		if r.e.Owner == s.self {
			r.backups = slices.DeleteFunc(r.backups, func(b nodeid.ID) bool { return !slices.Contains(want, b) })
		}
	})
}

// drop tells node to forget its copies of keys held for owner.
func (s *Store) drop(ctx context.Context, node, owner nodeid.ID, keys []string) {
	for i := 0; i < len(keys); i += maxBatch {
		cctx, cancel := s.callCtx(ctx)
		err := s.peer(node).Drop(cctx, owner, keys[i:min(i+maxBatch, len(keys))])
		cancel()
		if err != nil {
			s.log.Debug("dropping copies", "node", node, "err", err)
			return
		}
	}
}

// watchMembers follows the membership: while this node sees less than a
// majority of its committed topology's members alive, it may be the one
// cut off, and the others may be taking its entries over, so it serves none
// of its own (ErrMinority). The check runs on every membership change and
// every commit.
func (s *Store) watchMembers(d membership.Discovery) {
	defer s.wg.Done()
	sub := d.Subscribe(64)
	defer sub.Close()
	s.mu.Lock()
	changed := s.changed
	s.mu.Unlock()
	next := make(chan struct{}, 1)
	go func() { // events: what Next returns does not matter, Members is read again
		defer close(next)
		for {
			if _, err := sub.Next(s.ctx); err != nil {
				return
			}
			select {
			case next <- struct{}{}:
			default:
			}
		}
	}()
	for {
		t := s.topology()
		alive := 0
		for _, m := range d.Members() {
			if t.Contains(m.ID) {
				alive++
			}
		}
		minority := len(t.Members) > 0 && 2*alive <= len(t.Members)
		if s.minority.Swap(minority) != minority {
			s.log.Info("majority of the cluster in sight", "in_sight", !minority, "alive", alive, "members", len(t.Members), "epoch", t.Epoch)
		}
		select {
		case _, ok := <-next:
			if !ok {
				return
			}
		case <-changed:
			s.mu.Lock()
			changed = s.changed
			s.mu.Unlock()
		case <-s.ctx.Done():
			for range next { // the reader ends with s.ctx
			}
			return
		}
	}
}

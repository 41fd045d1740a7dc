package replica

import (
	"context"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica/internal/peer"
)

// An asyncQueue holds the writes not yet sent to one backup, in
// asynchronous mode: the newest version of each entry, sent in batches.
type asyncQueue struct {
	s      *Store
	backup nodeid.ID

	mu      sync.Mutex
	pending map[string]peer.Entry
	order   []string
	wake    chan struct{} // a write was queued
	room    chan struct{} // closed and replaced when the queue shrinks
}

// enqueue queues e for every backup, waiting while a backup's queue holds
// Config.MaxLag entries.
func (s *Store) enqueue(ctx context.Context, e peer.Entry) error {
	for _, b := range s.backupsOf(s.self, s.topology()) {
		if err := s.queue(b).put(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// queue returns the queue of backup b, starting it if needed.
func (s *Store) queue(b nodeid.ID) *asyncQueue {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[b]
	if q == nil {
		q = &asyncQueue{s: s, backup: b, pending: make(map[string]peer.Entry),
			wake: make(chan struct{}, 1), room: make(chan struct{})}
		s.queues[b] = q
		s.wg.Add(1)
		go q.run()
	}
	return q
}

func (q *asyncQueue) put(ctx context.Context, e peer.Entry) error {
	for {
		q.mu.Lock()
		if _, ok := q.pending[e.Key]; ok || len(q.order) < q.s.cfg.MaxLag {
			if !ok {
				q.order = append(q.order, e.Key)
			}
			q.pending[e.Key] = e
			q.mu.Unlock()
			select {
			case q.wake <- struct{}{}:
			default:
			}
			return nil
		}
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run sends the queue's entries until the store closes; a batch that fails
// is sent again after a pause (entries overwritten meanwhile go in their
// newer version).
func (q *asyncQueue) run() {
	s := q.s
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-q.wake:
		}
		for {
			q.mu.Lock()
			n := min(len(q.order), maxBatch)
			batch := make([]peer.Entry, 0, n)
			for _, k := range q.order[:n] {
				batch = append(batch, q.pending[k])
			}
			q.mu.Unlock()
			if n == 0 {
				break
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
			err := s.send(ctx, q.backup, batch)
			cancel()
			if err != nil {
				s.log.Debug("asynchronous replication", "backup", q.backup, "err", err)
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			q.mu.Lock()
			kept := q.order[:0]
			for _, k := range q.order {
				e, ok := q.pending[k]
				if ok && sent(batch, e) {
					delete(q.pending, k)
					s.tab.addBackup(k, e.Version, q.backup)
					continue
				}
				kept = append(kept, k)
			}
			q.order = kept
			close(q.room)
			q.room = make(chan struct{})
			q.mu.Unlock()
		}
	}
}

// sent reports whether batch carried e's version.
func sent(batch []peer.Entry, e peer.Entry) bool {
	for _, b := range batch {
		if b.Key == e.Key {
			return b.Version == e.Version
		}
	}
	return false
}

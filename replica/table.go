package replica

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica/internal/peer"
)

// recordOverhead is what a record costs besides its key and value: the
// record, its map slot and the entry's fixed fields.
const recordOverhead = 160

// A record is an entry held by this node, as owner or as a copy.
type record struct {
	e peer.Entry
	// received is when a copy last changed here (owners: last write).
	received time.Time
	// backups are the nodes an owner knows to hold the current version.
	backups []nodeid.ID
	// pointer marks a record without a value that only says who owns the
	// entry now (left where the entry was handed over, or where a stale
	// owner learnt that another node took the entry over).
	pointer bool
	// checked is the epoch from which an owner confirmed that nobody
	// took the entry over (see Store.confirm).
	checked uint64
}

func (r *record) size() int64 {
	return int64(len(r.e.Key)+len(r.e.Value)) + recordOverhead
}

// A table holds a node's entries and serialises the writes to each of them.
type table struct {
	mu    sync.Mutex
	m     map[string]*record
	bytes int64
	max   int64
	locks map[string]*keyLock
}

// A keyLock serialises the writes to one key; waiters counts the holders and
// waiters so the lock is freed with its last user.
type keyLock struct {
	ch      chan struct{}
	waiters int
}

func newTable(max int64) *table {
	return &table{m: make(map[string]*record), max: max, locks: make(map[string]*keyLock)}
}

// lock takes the write lock of key, waiting at most until ctx is done.
func (t *table) lock(ctx context.Context, key string) (unlock func(), err error) {
	t.mu.Lock()
	l := t.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		t.locks[key] = l
	}
	l.waiters++
	t.mu.Unlock()
	release := func() {
		t.mu.Lock()
		if l.waiters--; l.waiters == 0 {
			delete(t.locks, key)
		}
		t.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// get returns a copy of key's entry.
func (t *table) get(key string) (peer.Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.m[key]
	if r == nil {
		return peer.Entry{}, false
	}
	return r.e, true
}

// backups returns the nodes known to hold the current version of key.
func (t *table) backups(key string) []nodeid.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[key]; r != nil {
		return append([]nodeid.ID(nil), r.backups...)
	}
	return nil
}

// put stores e, replacing what is held, if the memory bound allows it.
func (t *table) put(e peer.Entry, now time.Time, backups []nodeid.ID) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.putLocked(e, now, backups)
}

func (t *table) putLocked(e peer.Entry, now time.Time, backups []nodeid.ID) error {
	nr := &record{e: e, received: now, backups: backups}
	var old int64
	if r := t.m[e.Key]; r != nil {
		old = r.size()
		if r.e.Owner == e.Owner && !r.pointer {
			nr.checked = r.checked
		}
	}
	if grow := nr.size() - old; grow > 0 && t.bytes+grow > t.max {
		return ErrFull
	}
	t.bytes += nr.size() - old
	t.m[e.Key] = nr
	return nil
}

// setBackups records which nodes hold version v of key.
func (t *table) setBackups(key string, v uint64, backups []nodeid.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[key]; r != nil && r.e.Version == v {
		r.backups = backups
	}
}

// offer stores a copy if it is newer than what is held, and returns what is
// held afterwards (values left out). A copy of the same version and owner is
// accepted again (a retry).
func (t *table) offer(e peer.Entry, now time.Time) peer.Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.m[e.Key]
	switch {
	case cur == nil, e.Version > cur.e.Version, cur.pointer && e.Version >= cur.e.Version:
		if err := t.putLocked(e, now, nil); err != nil {
			if cur == nil {
				return peer.Entry{Key: e.Key}
			}
			return meta(cur.e)
		}
		return meta(e)
	default:
		return meta(cur.e)
	}
}

// remove forgets key if it is held for owner (any owner if owner is None).
func (t *table) remove(key string, owner nodeid.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[key]; r != nil && (owner == nodeid.None || r.e.Owner == owner) {
		t.bytes -= r.size()
		delete(t.m, key)
	}
}

// owned returns the keys of the entries owner owns here.
func (t *table) ownedBy(owner nodeid.ID, withDeleted bool) []peer.Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var es []peer.Entry
	for _, r := range t.m {
		if r.e.Owner == owner && !r.pointer && (withDeleted || !r.e.Deleted) {
			es = append(es, r.e)
		}
	}
	return es
}

// each calls f for every record under the table's lock; f must not block.
func (t *table) each(f func(r *record)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.m {
		f(r)
	}
}

// usage returns the bytes held and the number of entries.
func (t *table) usage() (bytes int64, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bytes, len(t.m)
}

// meta is e without its value.
func meta(e peer.Entry) peer.Entry {
	e.Value = nil
	return e
}

// slide moves the expiry of version v of key.
func (t *table) slide(key string, v uint64, expires int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[key]; r != nil && r.e.Version == v {
		r.e.Expires = expires
	}
}

// addBackup records that b holds version v of key.
func (t *table) addBackup(key string, v uint64, b nodeid.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[key]; r != nil && r.e.Version == v && !slices.Contains(r.backups, b) {
		r.backups = append(r.backups, b)
	}
}

// demote replaces the entry held for key by a pointer to the owner of the
// newer version newer (values left out), if what is held is older.
func (t *table) demote(newer peer.Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[newer.Key]; r != nil && r.e.Version < newer.Version {
		t.pointLocked(newer, r.received)
	}
}

// point replaces what is held for e's key by a pointer to e's owner.
func (t *table) point(e peer.Entry, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pointLocked(e, now)
}

func (t *table) pointLocked(e peer.Entry, now time.Time) {
	if r := t.m[e.Key]; r != nil {
		t.bytes -= r.size()
	}
	r := &record{e: meta(e), received: now, pointer: true}
	t.bytes += r.size()
	t.m[e.Key] = r
}

// unchecked returns the entry held for key if it is owned by owner, not a
// pointer, and not confirmed from epoch from on.
func (t *table) unchecked(key string, owner nodeid.ID, from uint64) (peer.Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.m[key]
	if r == nil || r.pointer || r.e.Owner != owner || r.checked >= from {
		return peer.Entry{}, false
	}
	return r.e, true
}

// check records that version v of key was confirmed from epoch from on.
func (t *table) check(key string, v, from uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[key]; r != nil && r.e.Version == v && r.checked < from {
		r.checked = from
	}
}

// yield replaces version v of key, held as owner's, by a pointer to newer's
// owner, who took the entry over.
func (t *table) yield(owner nodeid.ID, v uint64, newer peer.Entry, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[newer.Key]; r != nil && !r.pointer && r.e.Owner == owner && r.e.Version == v {
		t.pointLocked(newer, now)
	}
}

// forgetBackup removes b from the backups of the entries owned by owner
// whose version b does not hold (versions maps keys to the versions b
// holds), and returns how many it removed b from.
func (t *table) forgetBackup(owner, b nodeid.ID, versions map[string]uint64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, r := range t.m {
		if r.pointer || r.e.Owner != owner || versions[k] == r.e.Version {
			continue
		}
		if i := slices.Index(r.backups, b); i >= 0 {
			r.backups = slices.Delete(r.backups, i, i+1)
			n++
		}
	}
	return n
}

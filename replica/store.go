package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica/internal/peer"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// Errors returned by a Store. They keep their identity across nodes.
var (
	// ErrNotFound: no such entry (never written, deleted, or expired).
	ErrNotFound = errors.New("replica: entry not found")
	// ErrConflict: a conditional write found another version.
	ErrConflict = errors.New("replica: version conflict")
	// ErrFull: the node's memory bound would be exceeded.
	ErrFull = errors.New("replica: node memory bound reached")
	// ErrNotReplicated: the write was applied at the owner but not every
	// backup acknowledged it, so it is not acknowledged either; it may or
	// may not survive the owner's failure.
	ErrNotReplicated = errors.New("replica: write not acknowledged by every backup")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("replica: store closed")
	// ErrMinority: this node sees less than a majority of the members of
	// its committed topology alive, so the others may be taking its
	// entries over: it serves none of them until it sees a majority again.
	ErrMinority = errors.New("replica: this node is cut off from the majority of its cluster")
)

// Mode says how a node serves an entry it does not own.
type Mode int

const (
	// ModeProxy sends each operation to the entry's owner (the default):
	// an entry moves only when its owner leaves or dies.
	ModeProxy Mode = iota
	// ModeMigrate makes the node serving the request the entry's owner
	// first: right behind a sticky load balancer, where a session's
	// requests keep arriving at one node.
	ModeMigrate
)

// Cluster is what a Store needs of the cluster it runs on: the local node
// and the committed topologies, as package cluster provides them.
type Cluster interface {
	// Node is the local node.
	Node() *runtime.Node
	// Topology is the committed topology.
	Topology() topology.Topology
	// Wait waits until the committed topology satisfies ok.
	Wait(ctx context.Context, ok func(topology.Topology) bool) (topology.Topology, error)
}

// Config configures a Store.
type Config struct {
	// Cluster is the cluster the store runs on. Required.
	Cluster Cluster
	// Mode says how a node serves entries it does not own (default
	// ModeProxy).
	Mode Mode
	// Backups is how many of the owner's neighbours hold a copy of each
	// entry, taken in id order; 0 (the default) means all of them: two in a
	// ring. A write is acknowledged once every backup holds it.
	Backups int
	// TTL is the sliding time to live of entries written without one (0,
	// the default: entries live until deleted).
	TTL time.Duration
	// TombstoneTTL is how long a deleted entry's tombstone is kept, so that
	// a stale copy cannot bring it back (default 10 minutes).
	TombstoneTTL time.Duration
	// MaxBytes bounds the memory the node's entries and copies take
	// (default 256 MiB); writes beyond it fail with ErrFull.
	MaxBytes int64
	// Async makes writes asynchronous: a write is acknowledged once the
	// owner has applied it, and sent to the backups in the background, in
	// batches. Faster, but a write acknowledged less than the replication
	// lag before the owner dies is lost.
	Async bool
	// MaxLag bounds the writes an owner may have applied and not yet sent
	// to a backup, in asynchronous mode; a write waits while a backup is
	// that far behind (default 1024).
	MaxLag int
	// Timeout bounds each call a store makes to another store when the
	// caller's context has no earlier deadline (default 2 s).
	Timeout time.Duration
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
}

// An Item is an entry as a Store returns it.
type Item struct {
	// Key names the entry.
	Key string
	// Value is the entry's value.
	Value []byte
	// Version grows with every write and every change of owner.
	Version uint64
	// Owner is the node that owns the entry.
	Owner nodeid.ID
	// Backups are the nodes that hold copies: the owner's neighbours in
	// the committed topology.
	Backups []nodeid.ID
}

// A Store is one node's part of a replicated key-value store. Its methods
// are safe for concurrent use.
type Store struct {
	cfg  Config
	cl   Cluster
	node *runtime.Node
	self nodeid.ID
	log  *slog.Logger
	tab  *table
	now  func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	topo     topology.Topology
	changed  chan struct{}       // closed when topo is replaced
	history  []topology.Topology // recent committed topologies, oldest first
	adopting map[nodeid.ID]chan struct{}
	queues   map[nodeid.ID]*asyncQueue // asynchronous mode: per backup

	// checkFrom is the epoch of the last topology after which this node
	// may have been out of the cluster (it missed a commit): the entries
	// it owns and has not confirmed since may have been taken over (see
	// confirm). Zero: never.
	checkFrom atomic.Uint64
	// minority is set while this node sees less than a majority of its
	// committed topology's members alive (see watchMembers).
	minority atomic.Bool
}

// historyLen is how many committed topologies a store remembers to find the
// former neighbours of a departed owner.
const historyLen = 16

// New starts a store on the cluster's node. A node runs one Store.
func New(cfg Config) (*Store, error) {
	if cfg.Cluster == nil || cfg.Cluster.Node() == nil {
		return nil, errors.New("replica: Config.Cluster is required")
	}
	if cfg.Backups < 0 {
		return nil, fmt.Errorf("replica: Config.Backups is %d, want 0 (all neighbours) or more", cfg.Backups)
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = 10 * time.Minute
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 1024
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := cfg.Cluster.Node()
	s := &Store{
		cfg: cfg, cl: cfg.Cluster, node: n, self: n.ID(),
		log: log.With("component", "replica"), tab: newTable(cfg.MaxBytes), now: time.Now,
		adopting: make(map[nodeid.ID]chan struct{}), queues: make(map[nodeid.ID]*asyncQueue),
	}
	for _, e := range []struct {
		name string
		err  error
	}{
		{"trellis/replica.NotFound", ErrNotFound},
		{"trellis/replica.Conflict", ErrConflict},
		{"trellis/replica.Full", ErrFull},
		{"trellis/replica.NotReplicated", ErrNotReplicated},
		{"trellis/replica.Closed", ErrClosed},
		{"trellis/replica.Minority", ErrMinority},
	} {
		if err := runtime.RegisterError(n, e.name, e.err); err != nil {
			return nil, fmt.Errorf("replica: %w", err)
		}
	}
	if err := runtime.RegisterErrorType[*peer.NotOwnerError](n, "trellis/replica.NotOwner"); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	if err := peer.RegisterPeer(n, (*server)(s)); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.topo = s.cl.Topology()
	s.changed = make(chan struct{})
	s.history = []topology.Topology{s.topo}
	s.wg.Add(2)
	go s.watch()
	go s.sweep()
	if d, ok := cfg.Cluster.(interface{ Discovery() membership.Discovery }); ok && d.Discovery() != nil {
		s.wg.Add(1)
		go s.watchMembers(d.Discovery())
	}
	return s, nil
}

// Close stops the store's goroutines. Entries it owns are not handed over:
// call Leave first for that.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// NewKey returns a fresh key for an entry created on this node: 128 random
// bits after the node's id, so that any node finds the entry's first owner
// without asking around.
func (s *Store) NewKey() string {
	var b [16]byte
	rand.Read(b[:])
	return fmt.Sprintf("%016x-%s", uint64(s.self), hex.EncodeToString(b[:]))
}

// hint returns the node named by a key made by NewKey.
func hint(key string) nodeid.ID {
	if len(key) != 16+1+32 || key[16] != '-' {
		return nodeid.None
	}
	var id uint64
	for _, c := range key[:16] {
		switch {
		case '0' <= c && c <= '9':
			id = id<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			id = id<<4 | uint64(c-'a'+10)
		default:
			return nodeid.None
		}
	}
	return nodeid.ID(id)
}

// Get returns the entry stored under key, or ErrNotFound. A read slides the
// entry's expiry.
func (s *Store) Get(ctx context.Context, key string) (Item, error) {
	return s.do(ctx, peer.Op{Kind: peer.OpGet, Key: key})
}

// A WriteOption makes a write conditional or sets its time to live.
type WriteOption struct{ set func(*peer.Op) }

// IfVersion makes a write fail with ErrConflict unless the entry's version
// is v.
func IfVersion(v uint64) WriteOption {
	return WriteOption{func(op *peer.Op) { op.IfVersion = v }}
}

// IfAbsent makes a put fail with ErrConflict if the entry exists.
func IfAbsent() WriteOption { return WriteOption{func(op *peer.Op) { op.IfAbsent = true }} }

// WithTTL sets the entry's sliding time to live.
func WithTTL(d time.Duration) WriteOption {
	return WriteOption{func(op *peer.Op) { op.TTL = int64(d) }}
}

// Put stores value under key and returns the entry as written, once every
// backup holds it. Unless made conditional (IfVersion, IfAbsent), it
// replaces whatever is stored: for read-modify-write use Update. A key made by NewKey is created on this node; another
// new key is created on the node that serves the put.
func (s *Store) Put(ctx context.Context, key string, value []byte, opts ...WriteOption) (Item, error) {
	if value == nil {
		value = []byte{}
	}
	op := peer.Op{Kind: peer.OpPut, Key: key, Value: value, TTL: int64(s.cfg.TTL)}
	for _, o := range opts {
		if o.set != nil {
			o.set(&op)
		}
	}
	return s.do(ctx, op)
}

// Create stores value under key, a key this node made with NewKey, as a new
// entry owned by this node. Unlike Put, it does not look for the key
// elsewhere first: a fresh key cannot exist yet. It fails with ErrConflict
// if the entry exists here.
func (s *Store) Create(ctx context.Context, key string, value []byte, opts ...WriteOption) (Item, error) {
	if hint(key) != s.self {
		return Item{}, fmt.Errorf("replica: create %q: not a key made by this node's NewKey", key)
	}
	if s.ctx.Err() != nil {
		return Item{}, ErrClosed
	}
	if err := s.ready(ctx); err != nil {
		return Item{}, err
	}
	if value == nil {
		value = []byte{}
	}
	op := peer.Op{Kind: peer.OpPut, Key: key, Value: value, TTL: int64(s.cfg.TTL), IfAbsent: true}
	for _, o := range opts {
		if o.set != nil {
			o.set(&op)
		}
	}
	e, err := s.apply(ctx, s.self, op)
	if err != nil {
		return Item{}, err
	}
	return s.item(e), nil
}

// Delete deletes the entry stored under key; its tombstone keeps a stale
// copy from bringing it back.
func (s *Store) Delete(ctx context.Context, key string, opts ...WriteOption) error {
	op := peer.Op{Kind: peer.OpDelete, Key: key}
	for _, o := range opts {
		if o.set != nil {
			o.set(&op)
		}
	}
	_, err := s.do(ctx, op)
	return err
}

// maxUpdateTries bounds the compare-and-set rounds of Update.
const maxUpdateTries = 16

// Update replaces the value under key with what f makes of it (old is nil
// and exists false for a new entry), atomically: if another write came
// between the read and the write, f runs again on the newer value, so no
// concurrent Update is lost. After 16 such rounds it gives up with an error
// wrapping ErrConflict (in ModeMigrate a node taking the entry over counts
// as a write). An error from f is returned as it is. opts apply to the
// write (WithTTL).
func (s *Store) Update(ctx context.Context, key string, f func(old []byte, exists bool) ([]byte, error), opts ...WriteOption) (Item, error) {
	for range maxUpdateTries {
		cur, err := s.Get(ctx, key)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Item{}, err
		}
		v, err := f(cur.Value, exists)
		if err != nil {
			return Item{}, err
		}
		opt := IfAbsent()
		if exists {
			opt = IfVersion(cur.Version)
		}
		it, err := s.Put(ctx, key, v, append(slices.Clip(opts), opt)...)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return it, err
	}
	return Item{}, fmt.Errorf("replica: update of %q: %w after %d tries", key, ErrConflict, maxUpdateTries)
}

// Stats describes what a node holds.
type Stats struct {
	// Owned is the number of live entries this node owns.
	Owned int
	// Copies is the number of copies it holds for other owners.
	Copies int
	// Tombstones is the number of deleted entries remembered.
	Tombstones int
	// Pointers is the number of entries this node only knows the owner
	// of (it handed them over).
	Pointers int
	// Bytes is the memory charged against Config.MaxBytes.
	Bytes int64
}

// Stats returns what the node holds.
func (s *Store) Stats() Stats {
	var st Stats
	s.tab.each(func(r *record) {
		switch {
		case r.pointer:
			st.Pointers++
		case r.e.Deleted:
			st.Tombstones++
		case r.e.Owner == s.self:
			st.Owned++
		default:
			st.Copies++
		}
	})
	st.Bytes, _ = s.tab.usage()
	return st
}

// item turns an entry into what users see.
func (s *Store) item(e peer.Entry) Item {
	return Item{Key: e.Key, Value: e.Value, Version: e.Version, Owner: e.Owner, Backups: s.backupsOf(e.Owner, s.topology())}
}

// topology returns the committed topology the store last saw.
func (s *Store) topology() topology.Topology {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.topo
}

// backupsOf returns the nodes that back owner up under t.
func (s *Store) backupsOf(owner nodeid.ID, t topology.Topology) []nodeid.ID {
	ns := t.Neighbours(owner)
	slices.Sort(ns)
	if s.cfg.Backups > 0 && len(ns) > s.cfg.Backups {
		ns = ns[:s.cfg.Backups]
	}
	return ns
}

// callCtx bounds a call to another store by Config.Timeout.
func (s *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < s.cfg.Timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

func (s *Store) peer(id nodeid.ID) peer.Peer { return peer.NewPeerProxy(s.node, id) }

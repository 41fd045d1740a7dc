// Package cluster federates Trellis nodes: it ties a runtime.Node to a
// membership.Discovery and a topology.Strategy.
//
// An application joins with one call, serves its services on the member's
// node, and follows the topology:
//
//	c, err := cluster.Join(ctx, cluster.Options{Name: "node1", Key: key, Seeds: seeds})
//	...
//	defer c.Leave(context.Background())
//	kv.RegisterStore(c.Node(), store)
//	members, err := c.WaitServing(ctx, kv.StoreService, 3) // 3 members serve Store
//	for _, nb := range c.Neighbours() { ... }
//	sub := c.Subscribe(0) // every committed topology, in order
//
// New and Start are the lower-level way, for a node and a membership made
// and owned by the caller.
// The leader (the oldest live
// member) computes each new topology when the membership changes and
// cascades it to the members in two phases (prepare, then commit) through
// the generated controlplane.Cascade service; every member then keeps
// exactly the connections of its edges and routes calls to non-neighbours
// along them.
//
// A leader pushes a topology only while its Policy allows it (by default a
// strict majority of the last committed members must be visible), so the
// two sides of a partition never commit topologies that share members; the
// minority keeps serving what it can reach and rejoins when the partition
// heals. A member that left gracefully (Leave: it announced its departure)
// no longer counts among the last committed members, as if a topology
// without it had been committed first: members can leave one by one down to
// the last, which commits a topology of its own. A member that merely went
// silent (killed, cut off) still counts: two members that lose each other
// both keep their topology.
//
// The cluster converges after any fault: every member advertises the epoch
// it has committed in its membership metadata (see MemberEpoch), so a
// leader that was cut off while the others moved on sees their newer
// epochs and cascades a topology with an epoch above all of them; a member
// that has committed an epoch newer than the one a proposal was based on
// checks the policy against its own topology before it prepares, and a
// member prepares each epoch for one leader only, so two leaders' crossing
// proposals never commit one epoch with two topologies. A member of the
// proposal that becomes suspect, fails or leaves while it is being
// prepared makes the leader plan again at once; a member declared failed
// has its connections aborted, so that calls through it fail at once. A
// member that keeps its state across restarts (Config.State, or
// Options.StateFile) never prepares an epoch it prepared or committed in
// an earlier life, and judges proposals and leads by the majority of the
// last topology it committed, so that restarted alone it commits nothing.
//
// A member that has prepared a proposal newer than its last commit holds
// later proposals based on older topologies to a majority of that one too
// (its leader may have committed it with members the new leader does not
// see), until the proposal's leader advertises, in its metadata, that it
// withdrew it: never committed, and never to be. While that leader is gone
// and a majority of the proposal's members with it, nobody can tell, and
// the live members keep their topology, as the keep-majority policy wants.
//
// A relay hands a call on only to a neighbour nearer to the call's
// destination, so calls never go round a cycle; a relay with no such
// neighbour connected refuses the call at once, unsent. A call that finds
// no route to a member, on its node or at a relay (a link is being
// redialled, a topology repaired), waits for one and is sent again, for
// three Intervals at most (300 ms by default), then fails with
// runtime.ErrNoRoute; a call to a member that has gone (failed or left,
// as the membership says) fails at once.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/cluster/clustergen"
	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// Config configures a Cluster.
type Config struct {
	// Node is the RPC node, already listening. Required.
	Node *runtime.Node
	// Discovery finds the members; its members' Addr must be their RPC
	// addresses. The cluster starts it if it is not started. Required.
	Discovery membership.Discovery
	// Strategy computes topologies (default topology.Ring{}).
	Strategy topology.Strategy
	// Policy decides when a leader may commit (default topology.Majority{}).
	Policy topology.Policy
	// Interval is how often connections are reconciled and a failed cascade
	// retried (default 100 ms).
	Interval time.Duration
	// PhaseTimeout bounds each phase of a cascade (default 2 s).
	PhaseTimeout time.Duration
	// DrainTimeout bounds the draining of a removed edge (default 5 s).
	DrainTimeout time.Duration
	// JoinGrace is how long a node that has committed no topology yet waits
	// before leading, so that a node joining a running cluster hears from
	// its members before it would take itself for a cluster of one
	// (default 600 ms, three heartbeats).
	JoinGrace time.Duration
	// State, if set, keeps what the member must remember across restarts
	// of its process (see State; FileState keeps it in a file). Without
	// it, a member that restarts with the same ID remembers no epoch: the
	// others bring it up to date when they hear it, but restarted alone, or
	// on the small side of a partition, it commits a topology of its own
	// from epoch 1, as a new cluster would.
	State StateStore
	// Logger receives the cluster's logs; nil discards them.
	Logger *slog.Logger
}

// A Cluster keeps one node's place in the federation: its committed
// topology, its connections and its routes.
type Cluster struct {
	// link makes a *Cluster a clustergen.Cluster, through which the
	// generated cluster proxies reach the members (see proxySource)
	// without the Cluster exporting anything for them.
	link

	cfg  Config
	node *runtime.Node
	disc membership.Discovery
	self nodeid.ID
	log  *slog.Logger

	mu          sync.Mutex
	committed   topology.Topology
	committedBy nodeid.ID // the leader that committed it
	committedAt time.Time
	pending     *controlplane.Proposal
	promised    promise           // the highest epoch prepared, in any life (see State)
	restored    topology.Topology // the last topology committed in an earlier life (see State)
	router      *router           // the routes of the committed topology, installed on the node
	pendingAt   time.Time
	round       *round                  // the leader's cascade in its prepare phase
	refused     *refusal                // why members refused our last proposal on policy grounds, nil if they did not
	appMeta     []byte                  // the application's part of the membership metadata
	maxEpoch    uint64                  // the highest epoch seen in any proposal or refusal, or led
	led         uint64                  // the highest epoch of a cascade this member led that is over (see ballots)
	unwanted    map[nodeid.ID]time.Time // connections outside the topology, since when
	left        map[nodeid.ID]bool      // members that left gracefully, not heard since (see counted)
	departing   map[nodeid.ID]bool      // neighbours that said they are leaving (Leaving), not heard join since
	departures  chan struct{}           // signalled when departing grows (see Leave)
	dialing     map[nodeid.ID]bool      // neighbours being dialled in the background
	changed     chan struct{}           // closed and replaced at each commit
	blocked     string                  // why the leader last declined to push (logged once)
	incomplete  bool                    // the last commit did not reach every member
	retry       retryBackoff            // the wait before a failed cascade is retried

	stats cascadeStats

	subs         map[*Subscription]struct{} // topology subscriptions, published to under mu
	topicsClosed bool
	closed       chan struct{} // closed with the topics: Wait returns
	svcMeta      []byte        // the services advertised in the membership record (encodeServices)
	advertising  sync.Mutex    // serialises advertiseServices

	views viewCache   // what cluster proxies choose from
	dials dialBackoff // neighbours that failed to connect, guarded by mu

	kick     chan struct{}
	started  time.Time
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	sub      *membership.Subscription
	stopOnce sync.Once

	owned bool // made by Join: the cluster owns the node and the membership
}

// New returns a cluster for cfg.Node; Start makes it run.
func New(cfg Config) (*Cluster, error) {
	if cfg.Node == nil || cfg.Discovery == nil {
		return nil, errors.New("cluster: Config.Node and Config.Discovery are required")
	}
	if cfg.Strategy == nil {
		cfg.Strategy = topology.Ring{}
	}
	if cfg.Policy == nil {
		cfg.Policy = topology.Majority{}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.PhaseTimeout <= 0 {
		cfg.PhaseTimeout = 2 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.JoinGrace <= 0 {
		cfg.JoinGrace = 600 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		cfg:        cfg,
		node:       cfg.Node,
		disc:       cfg.Discovery,
		self:       cfg.Node.ID(),
		log:        cfg.Logger.With("node", cfg.Node.Name()),
		unwanted:   make(map[nodeid.ID]time.Time),
		left:       make(map[nodeid.ID]bool),
		departing:  make(map[nodeid.ID]bool),
		departures: make(chan struct{}, 1),
		dialing:    make(map[nodeid.ID]bool),
		// The jitter of dial retries differs between members, yet in a
		// simulation (testing/synctest: a fake clock) replays the same.
		dials:   dialBackoff{base: cfg.Interval, rng: rand.New(rand.NewPCG(uint64(cfg.Node.ID()), uint64(time.Now().UnixNano())))},
		changed: make(chan struct{}),
		closed:  make(chan struct{}),
		kick:    make(chan struct{}, 1),
	}
	c.link = clustergen.NewLink(proxySource{c})
	if err := c.restore(); err != nil {
		return nil, err
	}
	if err := runtime.RegisterErrorType[*StaleEpochError](c.node, "trellis.cluster.StaleEpochError"); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := controlplane.RegisterCascade(c.node, (*cascadeServer)(c)); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return c, nil
}

// Start subscribes to membership events and starts the cluster's loop. The
// discovery must be started already (membership.Node.Start).
func (c *Cluster) Start() error {
	if local := c.disc.Local(); local.ID != c.self {
		return fmt.Errorf("cluster: discovery's local member is %s, the node is %s: they must share the ID", local.ID, c.self)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.started = time.Now()
	c.sub = c.disc.Subscribe(membership.DefaultEventBuffer)
	c.mu.Lock()
	c.advertise() // epoch 0: a member that restarted is seen to lag at once
	c.mu.Unlock()
	c.wg.Add(3)
	go c.watchMembership(ctx)
	go c.watchServices(ctx)
	go c.loop(ctx)
	c.poke()
	return nil
}

// Close stops the cluster at once. A cluster made by Join also closes its
// membership without a goodbye (the others will declare the member failed)
// and its node without draining (see Leave for the graceful way). A cluster
// made by New only stops its goroutines: its caller owns the node and the
// membership.
func (c *Cluster) Close() {
	c.stop()
	if c.owned {
		c.disc.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c.node.Close(ctx)
	}
	c.closeTopics()
}

// stop stops the cluster's goroutines.
func (c *Cluster) stop() {
	c.stopOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
			c.sub.Close()
		}
	})
	c.wg.Wait()
}

// Topology returns the committed topology (the zero Topology before the
// first commit).
func (c *Cluster) Topology() topology.Topology {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.committed
}

// Prepared returns the highest epoch this member has prepared (in this life
// or, with Config.State, an earlier one) and the leader it prepared it for;
// 0 if none. A member prepares each epoch for one leader only, and never
// one below it.
func (c *Cluster) Prepared() (epoch uint64, leader nodeid.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.promised.epoch, c.promised.leader
}

// Wait waits until the committed topology satisfies ok, and returns it.
// It fails when ctx is done first, or with ErrSubscriptionClosed once the
// cluster is closed (Close, Leave), since no topology is committed after.
// A member in the topology may not have been heard advertising its
// services yet: to call a service, wait with WaitServing instead.
func (c *Cluster) Wait(ctx context.Context, ok func(topology.Topology) bool) (topology.Topology, error) {
	for {
		c.mu.Lock()
		t, changed := c.committed, c.changed
		c.mu.Unlock()
		if ok(t) {
			return t, nil
		}
		select {
		case <-changed:
		case <-c.closed:
			return t, fmt.Errorf("cluster: waiting for a topology (last: epoch %d, %d members): %w", t.Epoch, len(t.Members), ErrSubscriptionClosed)
		case <-ctx.Done():
			return t, fmt.Errorf("cluster: waiting for a topology (last: epoch %d, %d members): %w", t.Epoch, len(t.Members), ctx.Err())
		}
	}
}

// Stats counts the cascades this node led.
type Stats struct {
	// Cascades counts the topologies this node pushed as leader, Failed
	// those among them whose prepare or commit did not reach every member.
	Cascades, Failed uint64
	// Duration is the time spent in those cascades, both phases.
	Duration time.Duration
}

type cascadeStats struct {
	mu sync.Mutex
	s  Stats
}

func (cs *cascadeStats) record(d time.Duration, failed bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.s.Cascades++
	cs.s.Duration += d
	if failed {
		cs.s.Failed++
	}
}

// Stats returns the counts of the cascades this node led.
func (c *Cluster) Stats() Stats {
	c.stats.mu.Lock()
	defer c.stats.mu.Unlock()
	return c.stats.s
}

// Route returns the path a call from this node to dst takes under the
// committed topology (this node first), or nil if there is none.
func (c *Cluster) Route(dst nodeid.ID) []nodeid.ID {
	return topology.Path(c.Topology(), c.self, dst)
}

// mayLead reports whether the node is past its join grace, or already part
// of a committed topology.
func (c *Cluster) mayLead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.committed.Epoch > 0 || time.Since(c.started) >= c.cfg.JoinGrace
}

// poke asks the loop to look at the membership again.
func (c *Cluster) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Cluster) watchMembership(ctx context.Context) {
	defer c.wg.Done()
	for {
		e, err := c.sub.Next(ctx)
		if err != nil {
			return
		}
		c.log.Debug("cluster: membership event", "event", e.String())
		c.invalidate()
		switch e.Kind {
		case membership.Suspected, membership.Failed, membership.Left:
			c.replan(e.Member.ID, fmt.Sprintf("%s became %s", e.Member.Name, strings.ToLower(e.Kind.String())))
		case membership.Joined:
			c.mu.Lock()
			delete(c.left, e.Member.ID) // back: it counts again
			delete(c.departing, e.Member.ID)
			if c.committed.Contains(e.Member.ID) {
				// A member of the committed topology heard again: a
				// new life, or back from the other side of a partition.
				// Whatever it holds now, the leader cascades again.
				c.incomplete = true
			}
			// Dials to it that failed before say nothing of it now.
			c.dials.forget(e.Member.ID)
			c.mu.Unlock()
		}
		// A member that has gone, failed or left, no longer holds what
		// it held of ours: it is released, and its streams are reset.
		switch e.Kind {
		case membership.Failed:
			// Dead (or cut off): its connections are aborted first, so
			// that the calls in flight over them, relayed ones included,
			// fail now rather than when the transport's keepalive gives
			// up.
			c.node.Abort(e.Member.ID, fmt.Errorf("membership declared %s failed", e.Member.Name))
			c.node.ForgetNode(e.Member.ID)
		case membership.Left:
			// It closes its own connections gracefully. Having said
			// goodbye, it no longer counts towards the majority of the
			// topologies it is in (see counted).
			c.node.ForgetNode(e.Member.ID)
			c.mu.Lock()
			if c.last().Contains(e.Member.ID) || slices.Contains(c.promised.members, e.Member.ID) {
				c.left[e.Member.ID] = true
			}
			c.mu.Unlock()
		}
		c.poke()
	}
}

// watchServices advertises the services registered on the node, and again
// each time one is registered or unregistered, at once.
func (c *Cluster) watchServices(ctx context.Context) {
	defer c.wg.Done()
	for {
		changed := c.node.ServicesChanged()
		c.advertiseServices()
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

func (c *Cluster) loop(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-t.C:
		}
		c.release(c.disc.Members())
		if leader, ok := c.disc.Leader(); ok && leader.ID == c.self && c.mayLead() {
			c.lead(ctx)
		}
		c.reconcile(ctx)
	}
}

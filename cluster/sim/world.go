package sim

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// clusterKey authenticates the simulated members' connections and heartbeats.
var clusterKey = []byte("trellis-simulation-cluster-key-32")

// A Member is one host's software: an RPC node serving the test services
// (testsvc.Kitchen, and testsvc.Control to watch it), a membership node and
// a cluster, all on the simulated network.
type Member struct {
	Host    int
	Name    string
	ID      nodeid.ID
	Node    *runtime.Node
	Disc    *membership.Node
	Cluster *cluster.Cluster
	Lives   int // how many times it was started
	// State is what the member's cluster keeps across restarts: its
	// "disk" (nil if the world is Forgetful).
	State *cluster.MemoryState

	alive  atomic.Bool        // read by the commit watchers
	cancel context.CancelFunc // stops the commit watcher
	done   chan struct{}      // closed when the watcher has returned
}

// Alive reports whether the member's software runs.
func (m *Member) Alive() bool { return m.alive.Load() }

// WorldConfig configures a World.
type WorldConfig struct {
	// Net is the network the members run on; its hosts are the members.
	Net *Network
	// IDs are the members' node IDs, one per host, kept across restarts.
	IDs []nodeid.ID
	// Strategy arranges the members (default topology.Ring{}).
	Strategy topology.Strategy
	// Policy decides when a leader may commit (default topology.Majority{}).
	Policy topology.Policy
	// OnCommit, if set, is called for every topology a member commits, from
	// the member's own watcher goroutine.
	OnCommit func(m *Member, t topology.Topology)
	// Forgetful members keep no state across restarts (cluster.Config.State):
	// a restarted member remembers no epoch.
	Forgetful bool
	// Logger receives the members' logs; nil discards them.
	Logger *slog.Logger
}

// A World is a simulated cluster: one member per host of a Network, each
// started, killed and restarted by the caller.
type World struct {
	cfg     WorldConfig
	Members []*Member
}

// NewWorld returns a world whose members are all stopped.
func NewWorld(cfg WorldConfig) (*World, error) {
	if cfg.Net == nil || len(cfg.IDs) != cfg.Net.Hosts() {
		return nil, fmt.Errorf("sim: world needs a network and one ID per host")
	}
	if cfg.Strategy == nil {
		cfg.Strategy = topology.Ring{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &World{cfg: cfg}
	for h, id := range cfg.IDs {
		m := &Member{Host: h, Name: fmt.Sprintf("n%d", h), ID: id}
		if !cfg.Forgetful {
			m.State = &cluster.MemoryState{}
		}
		w.Members = append(w.Members, m)
	}
	return w, nil
}

// Start starts (or restarts, with the same ID and a higher incarnation)
// member h's software.
func (w *World) Start(h int) error {
	m := w.Members[h]
	if m.alive.Load() {
		return fmt.Errorf("sim: %s already runs", m.Name)
	}
	nw := w.cfg.Net
	nw.Restart(h)
	log := w.cfg.Logger.With("member", m.Name, "life", m.Lives+1)
	// One keyring per member for its RPC handshakes and its heartbeats.
	ring, err := keyring.New(clusterKey)
	if err != nil {
		return fmt.Errorf("sim: %s: %w", m.Name, err)
	}
	node, err := runtime.NewNode(runtime.Config{Name: m.Name, ID: m.ID, Keyring: ring, Dial: nw.Dialer(h), Logger: log})
	if err != nil {
		return fmt.Errorf("sim: %s: %w", m.Name, err)
	}
	stop := func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		node.Close(ctx)
	}
	ln, err := nw.Listen(h)
	if err == nil {
		err = node.Serve(ln)
	}
	impl := testsvc.NewImpl()
	if err == nil {
		err = testsvc.RegisterKitchen(node, impl)
	}
	if err == nil {
		err = testsvc.RegisterControl(node, impl)
	}
	if err != nil {
		stop()
		return fmt.Errorf("sim: %s: %w", m.Name, err)
	}
	pc, err := nw.ListenPacket(h)
	if err != nil {
		stop()
		return fmt.Errorf("sim: %s: %w", m.Name, err)
	}
	var seeds []string
	for o := range nw.Hosts() {
		if o != h {
			seeds = append(seeds, nw.PacketAddr(o).String())
		}
	}
	disc, err := membership.New(membership.Config{
		ID: m.ID, Name: m.Name, Addr: nw.StreamAddr(h), Keyring: ring,
		Transport: pc, DisableMulticast: true, Seeds: seeds, Logger: log,
	})
	if err == nil {
		err = disc.Start(context.Background())
	}
	if err != nil {
		pc.Close()
		stop()
		return fmt.Errorf("sim: %s: %w", m.Name, err)
	}
	ccfg := cluster.Config{Node: node, Discovery: disc, Strategy: w.cfg.Strategy, Policy: w.cfg.Policy, Logger: log}
	if m.State != nil {
		ccfg.State = m.State
	}
	cl, err := cluster.New(ccfg)
	if err == nil {
		err = cl.Start()
	}
	if err != nil {
		disc.Close()
		stop()
		return fmt.Errorf("sim: %s: %w", m.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Node, m.Disc, m.Cluster, m.cancel, m.done = node, disc, cl, cancel, make(chan struct{})
	m.alive.Store(true)
	m.Lives++
	go w.watch(ctx, m, cl, m.done)
	return nil
}

// watch reports every topology cl commits. Commits are at least one network
// delay apart, and the watcher runs before simulated time moves on, so it
// misses none.
func (w *World) watch(ctx context.Context, m *Member, cl *cluster.Cluster, done chan struct{}) {
	defer close(done)
	var last uint64
	for {
		t, err := cl.Wait(ctx, func(t topology.Topology) bool { return t.Epoch > last })
		if err != nil {
			return
		}
		last = t.Epoch
		if w.cfg.OnCommit != nil {
			w.cfg.OnCommit(m, t)
		}
	}
}

// Kill stops member h: as a crash of its host (crash: its peers hear
// nothing) or as the end of its process (its connections are closed by
// the kernel, so its peers read EOF).
func (w *World) Kill(h int, crash bool) {
	m := w.Members[h]
	if !m.alive.Load() {
		return
	}
	if crash {
		w.cfg.Net.Crash(h)
	} else {
		w.cfg.Net.Exit(h)
	}
	w.stop(m)
}

func (w *World) stop(m *Member) {
	m.alive.Store(false)
	m.cancel()
	<-m.done
	m.Cluster.Close()
	m.Disc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no draining: the process is gone
	m.Node.Close(ctx)
}

// Close stops every member that runs, gracefully: each drains its calls for
// up to a second.
func (w *World) Close() {
	for _, m := range w.Members {
		if !m.alive.Load() {
			continue
		}
		m.alive.Store(false)
		m.cancel()
		<-m.done
		m.Cluster.Close()
		m.Disc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m.Node.Close(ctx)
		cancel()
	}
}

// Live returns the members whose software runs.
func (w *World) Live() []*Member {
	var out []*Member
	for _, m := range w.Members {
		if m.alive.Load() {
			out = append(out, m)
		}
	}
	return out
}

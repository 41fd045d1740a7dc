package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// DefaultAddr is the RPC address a joining node listens on when
// Options.Addr is empty: every interface, a port chosen by the system.
const DefaultAddr = ":0"

// Options configure Join. Only Key (or Keys, or Keyring) is required: with nothing
// else, the node listens on a free port, finds the other members by UDP
// multicast on the local link, and arranges them in a ring that commits
// while a majority of the last topology's members are visible.
type Options struct {
	// Name is the member's human-readable name (default: the host name).
	Name string
	// ID is the member's identity (default: a random one).
	ID nodeid.ID
	// Addr is the TCP address the node listens on for RPC (default
	// DefaultAddr). The port may be 0.
	Addr string
	// Listener, when set, is the listener the node serves RPC on instead
	// of listening on Addr (which must then be empty): one inherited from
	// a supervisor (socket activation), or opened by the caller with
	// options of its own. The cluster owns it from Join on: it is closed
	// with the node, or when Join fails.
	Listener net.Listener
	// AdvertiseAddr is the RPC address the other members dial (default: the
	// listening address, its host replaced by an address of this machine
	// when it is unspecified, as in ":0").
	AdvertiseAddr string

	// Key is the cluster key (at least keyring.MinKeyLen bytes; use the
	// 32 random bytes keyring.NewKey makes): it authenticates the
	// heartbeats and every RPC connection (a handshake that proves both ends
	// hold it). Keys are several keys instead, during a rotation: the first
	// signs, all verify. Keyring is the ring itself, shared with the caller
	// (keyring.Ring.Set then rotates the keys of both without downtime).
	// Set one of the three: Join refuses options that set several.
	Key     []byte
	Keys    [][]byte
	Keyring *keyring.Ring
	// Insecure lets RPC connections open without the key's handshake (the
	// heartbeats are authenticated all the same): for a trusted network,
	// or with TLS.
	Insecure bool
	// Label names the cluster: members of clusters with different labels
	// ignore each other even if they share a key (default
	// membership.DefaultClusterLabel).
	Label string

	// Seeds are the UDP addresses ("host:port"; host names are resolved
	// again every SeedRefresh) of members to heartbeat for discovery. With
	// Seeds, multicast is off unless Multicast is set; without them,
	// members are discovered by multicast.
	Seeds []string
	// Multicast keeps multicast discovery on alongside Seeds.
	Multicast bool
	// GossipAddr is the local UDP address of the membership (default
	// ":7947" with Seeds, any port otherwise). The members listen there
	// for the heartbeats of the others, so a seed is the GossipAddr of a
	// member: with the default, seeds are "host:7947" (the memberlist
	// backend's default port is 7948, memberlist.DefaultPort). Members
	// that share a host (several in one process, as in tests) need distinct
	// addresses: give the seed member the seed address, and the others
	// "127.0.0.1:0" (any free port: the others learn it from their
	// heartbeats).
	GossipAddr string
	// SeedRefresh is how often seed host names are resolved again
	// (default 30 s).
	SeedRefresh time.Duration

	// TLS, when set, secures every RPC connection (see runtime.Config.TLS).
	TLS *tls.Config
	// Strategy arranges the members (default topology.Ring{}).
	Strategy topology.Strategy
	// Policy decides when the leader may commit a topology (default
	// topology.Majority{}).
	Policy topology.Policy
	// Logger receives the logs of the node, the membership and the
	// cluster; nil discards them.
	Logger *slog.Logger

	// StateFile, if set, is the file where the member keeps what it must
	// remember across restarts (see Config.State and FileState): its ID,
	// taken again when Options.ID is unset, its last committed topology
	// and the epochs it prepared. Restarted with it, the member rejoins as
	// itself, never commits an epoch twice, and alone commits nothing.
	StateFile string

	// Node, Membership and Cluster, when set, adjust the configuration of
	// each part after Join has filled it in, for settings Options does not
	// name (timeouts, limits, failure detection...).
	Node       func(*runtime.Config)
	Membership func(*membership.Config)
	Cluster    func(*Config)
	// Discovery, when set, creates the membership backend from the
	// configuration Join computed, instead of membership.New: another
	// backend plugs in here. memberlist.Backend (package
	// membership/memberlist) selects hashicorp/memberlist, the choice
	// beyond about a hundred members or across networks; a test network
	// is another.
	Discovery func(membership.Config) (membership.Discovery, error)
}

// Join starts a member of a cluster: an RPC node, its membership and its
// place in the topology, all owned by the returned Cluster. ctx bounds the
// start-up only. Register the services the member serves on c.Node() (they
// are advertised to the other members), and end with Leave, or Close.
//
// Join returns before the member is part of a topology (that takes from a
// few milliseconds to JoinGrace and a cascade): until then it knows no other
// member, and a call of its cluster proxies that finds no member to serve it
// waits for that first (a few seconds at most, within the call's context)
// rather than failing with ErrNoMember. Wait waits for a topology
// explicitly, and WaitServing for the members serving a service: a member
// that calls a service as soon as it starts waits for the members it needs
// with WaitServing, or its cluster proxies spread their first calls over
// the members heard so far (perhaps over itself alone).
func Join(ctx context.Context, o Options) (c *Cluster, err error) {
	if ctx == nil {
		if o.Listener != nil {
			o.Listener.Close()
		}
		return nil, errors.New("cluster: join: nil context")
	}
	if o.Listener != nil {
		defer func() {
			if err != nil {
				o.Listener.Close() // the node closed it already, or never took it
			}
		}()
		if o.Addr != "" {
			return nil, fmt.Errorf("cluster: join: both Options.Addr (%s) and Options.Listener (%s) are set", o.Addr, o.Listener.Addr())
		}
	}
	if n := countSet(o.Key != nil, o.Keys != nil, o.Keyring != nil); n > 1 {
		return nil, errors.New("cluster: join: set one of Options.Key, Keys and Keyring, not several")
	}
	ring := o.Keyring
	if ring == nil {
		keys := o.Keys
		if len(keys) == 0 && o.Key != nil {
			keys = [][]byte{o.Key}
		}
		if len(keys) == 0 {
			return nil, errors.New("cluster: join: Options.Key is required")
		}
		if ring, err = keyring.New(keys...); err != nil {
			return nil, fmt.Errorf("cluster: join: %w", err)
		}
	}
	if o.Name == "" {
		o.Name, _ = os.Hostname()
	}
	var state StateStore
	if o.StateFile != "" {
		state = FileState(o.StateFile)
		saved, err := state.Load()
		if err != nil {
			return nil, fmt.Errorf("cluster: join: %w", err)
		}
		switch {
		case o.ID == nodeid.None:
			o.ID = saved.ID // none if nothing was saved yet
		case saved.ID != nodeid.None && saved.ID != o.ID:
			return nil, fmt.Errorf("cluster: join: %s holds the state of member %s, not of %s", o.StateFile, saved.ID, o.ID)
		}
		if saved.ID == nodeid.None {
			if o.ID == nodeid.None {
				o.ID = nodeid.New()
			}
			// The ID first, so that a restart before the first commit
			// rejoins as the same member.
			if err := state.Save(State{ID: o.ID}); err != nil {
				return nil, fmt.Errorf("cluster: join: %w", err)
			}
		}
	}
	if o.ID == nodeid.None {
		o.ID = nodeid.New()
	}
	if o.Addr == "" && o.Listener == nil {
		o.Addr = DefaultAddr
	}
	if o.SeedRefresh <= 0 {
		o.SeedRefresh = 30 * time.Second
	}

	ncfg := runtime.Config{Name: o.Name, ID: o.ID, Addr: o.Addr, Label: o.Label, TLS: o.TLS, Logger: o.Logger}
	if o.Insecure {
		ncfg.Insecure = true
	} else {
		ncfg.Keyring = ring
	}
	if o.Node != nil {
		o.Node(&ncfg)
	}
	node, err := runtime.NewNode(ncfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: join: %w", err)
	}
	closeNode := func() {
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		node.Close(cctx)
	}
	if o.Listener != nil {
		if node.Addr() != nil {
			closeNode()
			return nil, fmt.Errorf("cluster: join: Options.Listener is set but the node listens on %s (Options.Node set Addr?)", node.Addr())
		}
		if err := node.Serve(o.Listener); err != nil {
			closeNode()
			return nil, fmt.Errorf("cluster: join: %w", err)
		}
	}
	addr := o.AdvertiseAddr
	if addr == "" {
		if node.Addr() == nil {
			closeNode()
			return nil, errors.New("cluster: join: the node does not listen (Options.Node cleared Addr?)")
		}
		addr = advertiseAddr(node.Addr())
	}

	mcfg := membership.Config{
		ID: node.ID(), Name: node.Name(), Addr: addr,
		ClusterLabel: o.Label, Keyring: ring,
		DisableMulticast: len(o.Seeds) > 0 && !o.Multicast,
		BindAddr:         o.GossipAddr, Seeds: o.Seeds, SeedRefresh: o.SeedRefresh,
		Logger: o.Logger,
	}
	if o.Membership != nil {
		o.Membership(&mcfg)
	}
	var disc membership.Discovery
	if o.Discovery != nil {
		disc, err = o.Discovery(mcfg)
	} else {
		disc, err = membership.New(mcfg)
	}
	if err != nil {
		closeNode()
		return nil, fmt.Errorf("cluster: join: %w", err)
	}

	ccfg := Config{Node: node, Discovery: disc, Strategy: o.Strategy, Policy: o.Policy, State: state, Logger: o.Logger}
	if o.Cluster != nil {
		o.Cluster(&ccfg)
	}
	c, err = New(ccfg)
	if err != nil {
		closeNode()
		return nil, err
	}
	c.owned = true
	if err := disc.Start(ctx); err != nil {
		disc.Close()
		closeNode()
		return nil, fmt.Errorf("cluster: join: %w", err)
	}
	if err := c.Start(); err != nil {
		disc.Close()
		closeNode()
		return nil, err
	}
	return c, nil
}

// advertiseAddr returns the address other machines can dial for a listening
// address: an unspecified host is replaced by this machine's first
// non-loopback IPv4 address (loopback if it has none).
func advertiseAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	host := "127.0.0.1"
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, ia := range addrs {
			if ipn, ok := ia.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				host = ipn.IP.String()
				break
			}
		}
	}
	return net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

// Node returns the member's RPC node: register services on it, and make
// plain proxies with it.
func (c *Cluster) Node() *runtime.Node { return c.node }

// Discovery returns the member's membership backend.
func (c *Cluster) Discovery() membership.Discovery { return c.disc }

// ID returns the member's ID.
func (c *Cluster) ID() nodeid.ID { return c.self }

// leaveWait is how many reconciliation intervals Leave waits at most for
// the neighbours to drop their connections: the leader sees the departure
// at once and cascades in milliseconds, and the members drop a removed edge
// three intervals after they commit.
const leaveWait = 10

// Leave leaves the cluster gracefully: the member announces its departure
// (the others drop it at once instead of waiting to declare it failed, and
// no longer count it in the policy's majority, so that the last member
// left commits a topology of its own), then waits until its neighbours
// have closed their connections to it, which they do once they have
// committed a topology without it (a few hundred milliseconds), so that
// calls relayed through it are not cut; then it closes the node, letting
// the calls it serves finish. It does not wait for neighbours that are
// leaving too: each tells its neighbours that it leaves, so members that
// stop together (the whole cluster stopping at once) do not wait for each
// other.
//
// The wait is bounded by ctx and by ten reconciliation intervals
// (Config.Interval: 1 s in all by default), for when the others cannot
// commit (nobody is left to cascade, or no majority): then the member logs
// which neighbours were still connected, and closes its node all the same,
// cutting the calls still relayed through it; Leave still returns nil, the
// departure having been announced. When ctx is done, what is left is cut
// short and Leave returns ctx's error. For a cluster made with New, Leave
// only stops the cluster's goroutines, like Close: its caller owns the node
// and the membership.
func (c *Cluster) Leave(ctx context.Context) error {
	if !c.owned {
		c.Close()
		return nil
	}
	c.stop()
	lerr := c.disc.Leave(ctx)
	told := c.tellLeaving(ctx)
	wait := time.NewTimer(leaveWait * c.cfg.Interval)
	defer wait.Stop()
	// Neighbours close their connections with no event to await.
	tick := time.NewTicker(c.cfg.Interval / 4)
	defer tick.Stop()
wait:
	for len(c.awaited()) > 0 {
		select {
		case <-ctx.Done():
			break wait
		case <-wait.C:
			c.log.Warn("cluster: leaving with neighbours still connected: they did not move to a topology without this member in time", "waited", leaveWait*c.cfg.Interval, "peers", c.awaited())
			break wait
		case <-tick.C:
		case <-c.departures:
		}
	}
	nerr := c.node.Close(ctx)
	told.Wait() // the node's Close ended the calls still in flight
	c.closeTopics()
	if lerr != nil && !errors.Is(lerr, membership.ErrClosed) {
		return fmt.Errorf("cluster: leave: %w", lerr)
	}
	if nerr != nil {
		return fmt.Errorf("cluster: leave: %w", nerr)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}

// tellLeaving tells every neighbour connected that this member is leaving
// (controlplane.Cascade.Leaving), in the background: the returned group
// ends with the calls.
func (c *Cluster) tellLeaving(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, id := range c.node.Peers() {
		wg.Go(func() {
			tctx, cancel := context.WithTimeout(ctx, c.cfg.PhaseTimeout)
			defer cancel()
			if err := controlplane.NewCascadeProxy(c.node, id, runtime.Direct()).Leaving(tctx); err != nil {
				c.log.Debug("cluster: cannot tell a neighbour that this member leaves", "peer", id, "err", err)
			}
		})
	}
	return &wg
}

// awaited returns the neighbours still connected that a leaving member
// waits for: those that have not said they are leaving too.
func (c *Cluster) awaited() []nodeid.ID {
	peers := c.node.Peers()
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.DeleteFunc(peers, func(id nodeid.ID) bool { return c.departing[id] })
}

// countSet counts the true values.
func countSet(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}

package membership

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// Node is a member of a cluster: it heartbeats, detects failures, keeps the member
// list and publishes events. It implements Discovery. Its methods are safe for
// concurrent use.
type Node struct {
	cfg  Config
	keys *keyring
	hub  *EventHub
	e    *engine

	mu      sync.Mutex
	started bool
	closed  bool
	done    chan struct{}
	ctx     context.Context // cancelled by Close: bounds background look-ups
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	tr      Transport
	seeds   seedCache // Start's, then seedLoop's
}

// New checks cfg and returns a node that is not yet started.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	var keys *keyring
	if cfg.Keyring != nil {
		keys = keyringOn(cfg.ClusterLabel, cfg.Keyring)
	} else if keys, err = newKeyring(cfg.ClusterLabel, cfg.Keys); err != nil {
		return nil, fmt.Errorf("membership: keyring: %w", err)
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	n := &Node{cfg: cfg, keys: keys, hub: NewEventHub(), done: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.e = newEngine(cfg, cfg.Transport, keys, n.hub, binary.LittleEndian.Uint64(seed[:]))
	return n, nil
}

// ID returns the local node's ID.
func (n *Node) ID() nodeid.ID { return n.cfg.ID }

// Start opens the transport (UDP unless Config.Transport is set), resolves the
// seeds and starts heartbeating and detecting. ctx bounds this start-up only; the
// node then runs until Leave or Close. A node starts at most once.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if n.started {
		return errors.New("membership: node already started")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("membership: start: %w", err)
	}
	tr := n.cfg.Transport
	if tr == nil {
		ucfg := UDPConfig{Bind: n.cfg.BindAddr, Interface: n.cfg.Interface, TTL: n.cfg.MulticastTTL}
		if !n.cfg.DisableMulticast {
			ucfg.Group = n.cfg.Group
		}
		udp, err := ListenUDP(ucfg)
		if err != nil {
			return fmt.Errorf("membership: start: %w", err)
		}
		tr = udp
	}
	n.seeds.log = n.cfg.Logger
	seeds, names := n.seeds.resolve(ctx, n.cfg.Resolver, n.cfg.Seeds)
	if err := ctx.Err(); err != nil {
		tr.Close()
		return fmt.Errorf("membership: start: resolving seeds: %w", err)
	}
	n.tr = tr
	n.e.tr = tr
	n.e.setSeeds(seeds)
	n.e.start(n.cfg.Clock.Now())
	n.started = true
	n.cfg.Logger.Info("membership: started", "id", n.cfg.ID, "name", n.cfg.Name,
		"local", tr.LocalAddr(), "multicast", !n.cfg.DisableMulticast, "seeds", len(seeds))
	n.wg.Add(2)
	go n.readLoop()
	go n.tickLoop()
	if names {
		n.wg.Add(1)
		go n.seedLoop()
	}
	return nil
}

func (n *Node) readLoop() {
	defer n.wg.Done()
	buf := make([]byte, MaxPacketSize+1)
	for {
		k, from, err := n.tr.ReadFrom(buf)
		if err != nil {
			select {
			case <-n.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			n.cfg.Logger.Warn("membership: read failed", "err", err)
			select {
			case <-n.done:
				return
			case <-time.After(10 * time.Millisecond): // back off a failing transport
			}
			continue
		}
		n.e.handle(n.cfg.Clock.Now(), buf[:k], from)
	}
}

func (n *Node) tickLoop() {
	defer n.wg.Done()
	t := n.cfg.Clock.NewTicker(tickPeriod(n.cfg.Interval))
	defer t.Stop()
	n.e.tick(n.cfg.Clock.Now())
	for {
		select {
		case <-n.done:
			return
		case <-t.C():
			n.e.tick(n.cfg.Clock.Now())
		}
	}
}

// maxSeedLookup bounds one look-up of the seeds' names.
const maxSeedLookup = 5 * time.Second

// seedLoop resolves the seeds' host names again every SeedRefresh, and
// heartbeats the addresses they have now.
func (n *Node) seedLoop() {
	defer n.wg.Done()
	t := n.cfg.Clock.NewTicker(n.cfg.SeedRefresh)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C():
		}
		ctx, cancel := context.WithTimeout(n.ctx, min(n.cfg.SeedRefresh, maxSeedLookup))
		seeds, _ := n.seeds.resolve(ctx, n.cfg.Resolver, n.cfg.Seeds)
		cancel()
		if n.e.setSeeds(seeds) {
			n.cfg.Logger.Info("membership: seed addresses changed", "seeds", seeds)
		}
	}
}

// seedCache remembers the addresses each seed host name last resolved to,
// for a look-up that fails. Only the goroutine resolving uses it.
type seedCache struct {
	last map[string][]netip.AddrPort
	log  *slog.Logger // warned of a name that does not resolve; nil: not logged
}

// resolve resolves "host[:port]" seeds to IPv4 addresses, at most
// MaxSeedAddrs per host name (the lowest); a name that does not resolve
// keeps the addresses it last had. names reports whether any seed is a
// host name, to resolve again later.
func (sc *seedCache) resolve(ctx context.Context, r Resolver, seeds []string) (out []netip.AddrPort, names bool) {
	for _, s := range seeds {
		host, portStr, err := net.SplitHostPort(s)
		if err != nil {
			host, portStr = s, strconv.Itoa(DefaultUnicastPort)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 {
			continue // refused by Config.normalize
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
			continue
		}
		names = true
		ips, err := r.LookupNetIP(ctx, "ip4", host)
		if err != nil || len(ips) == 0 {
			if err == nil {
				err = errors.New("no IPv4 address")
			}
			if sc.log != nil && ctx.Err() == nil {
				sc.log.Warn("membership: seed does not resolve; it is not heartbeated until it does",
					"seed", s, "kept", len(sc.last[s]), "err", err)
			}
			out = append(out, sc.last[s]...)
			continue
		}
		addrs := make([]netip.AddrPort, 0, min(len(ips), MaxSeedAddrs))
		for _, ip := range ips {
			addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
		}
		slices.SortFunc(addrs, netip.AddrPort.Compare)
		addrs = slices.Compact(addrs)
		addrs = addrs[:min(len(addrs), MaxSeedAddrs):min(len(addrs), MaxSeedAddrs)]
		if sc.last == nil {
			sc.last = make(map[string][]netip.AddrPort)
		}
		sc.last[s] = addrs
		out = append(out, addrs...)
	}
	return out, names
}

// Local returns the local node's own entry.
func (n *Node) Local() Member { return n.e.local() }

// Members returns the live members (alive or suspected, the local node included),
// ordered by join time then ID: the first is the leader. It is empty before Start
// and after Close.
func (n *Node) Members() []Member { return n.e.memberList() }

// Leader returns the oldest live member, and false before Start or after Close. In
// a partition each side sees the oldest member of its own side: membership alone
// does not prevent two leaders (see the package documentation).
func (n *Node) Leader() (Member, bool) { return n.e.leaderMember() }

// Subscribe returns a subscription to this node's events with a queue of buffer
// events (DefaultEventBuffer if buffer <= 0); see EventHub for the overflow policy.
// Subscribe before Start to see every event, the first LeaderChanged included.
func (n *Node) Subscribe(buffer int) *Subscription { return n.hub.Subscribe(buffer) }

// Stats returns the node's counters.
func (n *Node) Stats() Stats { return n.e.stats.snapshot() }

// SetMeta changes the metadata the node advertises. A started node that
// changes it sends a heartbeat at once (at most once every Interval/4, else
// at the next tick), so the others see the change in about a network round
// rather than up to an Interval later; they publish Updated when they do.
func (n *Node) SetMeta(meta []byte) error {
	if len(meta) > MaxMetaLen {
		return fmt.Errorf("membership: meta is %d bytes, limit %d", len(meta), MaxMetaLen)
	}
	n.e.setMeta(meta, n.cfg.Clock.Now())
	return nil
}

// SetKeys replaces the keyring's keys (the first key signs, all verify), for key
// rotation without downtime. With Config.Keyring this sets the shared ring, so
// it rotates the keys of its other users (the RPC transport) as well.
func (n *Node) SetKeys(keys [][]byte) error {
	if err := n.keys.setKeys(keys); err != nil {
		return fmt.Errorf("membership: set keys: %w", err)
	}
	return nil
}

// Leave announces a graceful departure, so that the others publish Left at once
// instead of Failed after FailAfter, then stops like Close. If ctx is already done
// the departure is not announced and ctx.Err() is returned after stopping.
func (n *Node) Leave(ctx context.Context) error {
	n.mu.Lock()
	started := n.started && !n.closed
	n.mu.Unlock()
	if started && ctx.Err() == nil {
		n.e.leave(n.cfg.Clock.Now())
	}
	err := n.Close()
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("membership: leave: %w", cerr)
	}
	return err
}

// Close stops the node without announcing anything (the others will declare it
// failed), closes the transport, waits for every goroutine of the node to end and
// closes all subscriptions. Closing twice is harmless.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	started := n.started
	n.mu.Unlock()

	close(n.done)
	n.cancel()
	n.e.stop(n.cfg.Clock.Now())
	var err error
	tr := n.tr
	if tr == nil {
		tr = n.cfg.Transport
	}
	if tr != nil {
		if cerr := tr.Close(); cerr != nil && started {
			err = fmt.Errorf("membership: closing transport: %w", cerr)
		}
	}
	n.wg.Wait()
	n.hub.Close()
	return err
}

package memberlist

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

// maxRejoinTargets bounds how many addresses one rejoin round tries (memberlist
// tries them one after another).
const maxRejoinTargets = 4

// Node is a member of a cluster whose membership memberlist runs. It implements
// membership.Discovery. Its methods are safe for concurrent use.
type Node struct {
	cfg      Config
	hub      *membership.EventHub
	log      *slog.Logger
	keyring  *ml.Keyring
	meta     atomic.Pointer[[]byte] // the encoded local metadata memberlist advertises
	keyGen   atomic.Uint64          // the Keyring generation keyring holds
	gossip   atomic.Int64           // memberlist's gossip interval once started (see MetaSpread)
	pushPull atomic.Int64           // and its push/pull interval
	keyMu    sync.Mutex             // serialises rekeying

	life    sync.Mutex // serialises Start, Leave and Close
	started bool
	closed  bool
	list    *ml.Memberlist
	done    chan struct{}
	wg      sync.WaitGroup

	// mu guards the member table; events are published under it, so every
	// subscriber sees them in the order the table changed.
	mu      sync.Mutex
	running bool
	self    membership.Member
	members map[nodeid.ID]*entry // live members but self
	gone    map[nodeid.ID]gone   // members seen to fail or leave
	leader  nodeid.ID

	stats stats
}

// entry is one live member.
type entry struct {
	m       membership.Member
	mlAddr  string // memberlist address, host:port
	leaving bool   // it advertised a graceful leave
}

// gone remembers a failed or departed member: its last incarnation, so a late
// message of that life cannot bring it back, and where to try it again.
type gone struct {
	inc    uint64
	mlAddr string
	left   bool
	until  time.Time
}

var _ membership.Discovery = (*Node)(nil)

// New checks cfg and returns a node that is not yet started.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	keys, gen := cfg.Keyring.Keys()
	kr, err := newKeyring(keys, cfg.ClusterLabel)
	if err != nil {
		return nil, fmt.Errorf("memberlist: config: %w", err)
	}
	n := &Node{
		cfg:     cfg,
		hub:     membership.NewEventHub(),
		log:     cfg.Logger,
		keyring: kr,
		done:    make(chan struct{}),
		members: make(map[nodeid.ID]*entry),
		gone:    make(map[nodeid.ID]gone),
	}
	n.keyGen.Store(gen)
	n.self = membership.Member{ID: cfg.ID, Name: cfg.Name, Addr: cfg.Addr, Meta: cfg.Meta,
		Incarnation: cfg.Incarnation, State: membership.StateAlive, Local: true}
	return n, nil
}

// ID returns the local node's ID.
func (n *Node) ID() nodeid.ID { return n.cfg.ID }

// MetaSpread returns how long a change of this node's metadata (SetMeta)
// may take to reach every other member. memberlist gossips the change to a
// few random members a few times only (4 in a cluster of 5), so a member
// misses it now and then, and learns it at its next full state exchange
// with a member that has it: MetaSpread is the state exchange period at the
// current size (memberlist's push/pull interval, 60 s with the LAN preset,
// stretched as memberlist does beyond 32 members), plus 30 gossip
// intervals. Package cluster waits that long after a commit before it takes
// a member still advertising an older epoch for one that missed the commit
// and cascades again (it waits 1 s with the built-in backend, whose
// heartbeats carry every change to everyone within 200 ms).
func (n *Node) MetaSpread() time.Duration {
	gossip, pushPull := time.Duration(n.gossip.Load()), time.Duration(n.pushPull.Load())
	if gossip <= 0 { // not started: the preset's
		mc := n.cfg.presetConfig()
		gossip, pushPull = mc.GossipInterval, mc.PushPullInterval
	}
	n.mu.Lock()
	size := len(n.members) + 1
	n.mu.Unlock()
	return pushPullScale(pushPull, size) + 30*gossip
}

// pushPullScale is memberlist's stretch of the push/pull interval with the
// cluster's size: ×1 up to 32 members, then one more for each doubling.
func pushPullScale(interval time.Duration, n int) time.Duration {
	const threshold = 32
	if n <= threshold {
		return interval
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(threshold))+1) * interval
}

// Memberlist returns the underlying memberlist (nil before Start), for what
// this package does not offer: health score, user messages, network
// coordinates. Do not call Leave or Shutdown on it; use the Node's.
func (n *Node) Memberlist() *ml.Memberlist {
	n.life.Lock()
	defer n.life.Unlock()
	return n.list
}

// Start creates the memberlist (binding its sockets unless Config.Transport is
// set) and joins the seeds. ctx bounds the join only: the node then runs
// until Leave or Close, and keeps trying its seeds every RejoinInterval while
// it is alone. A node starts at most once.
func (n *Node) Start(ctx context.Context) error {
	n.life.Lock()
	defer n.life.Unlock()
	if n.closed {
		return membership.ErrClosed
	}
	if n.started {
		return errors.New("memberlist: node already started")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memberlist: start: %w", err)
	}
	now := time.Now()
	n.mu.Lock()
	n.self.JoinTime = time.Unix(0, now.UnixNano())
	if n.self.Incarnation == 0 {
		n.self.Incarnation = uint64(max(now.UnixNano(), 1))
	}
	self := n.self
	n.mu.Unlock()
	meta, err := encodeMeta(info{inc: self.Incarnation, join: self.JoinTime,
		name: self.Name, addr: self.Addr, meta: self.Meta})
	if err != nil {
		return fmt.Errorf("memberlist: start: %w", err)
	}
	n.meta.Store(&meta)

	mc := n.cfg.memberlistConfig()
	n.gossip.Store(int64(mc.GossipInterval))
	n.pushPull.Store(int64(mc.PushPullInterval))
	h := (*hooks)(n)
	mc.Name = n.cfg.ID.String()
	mc.Delegate, mc.Events, mc.Alive, mc.Ping, mc.Conflict = h, h, h, h, h
	mc.Keyring, mc.SecretKey = n.keyring, nil
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Label, mc.SkipInboundLabelCheck = n.cfg.ClusterLabel, false
	mc.Transport = n.cfg.Transport
	mc.LogOutput = nil
	mc.Logger = log.New(&logWriter{log: n.log, hook: n.onLog, closing: n.closing}, "", 0)

	n.mu.Lock()
	n.running = true
	n.leader = self.ID
	n.hub.Publish(membership.Event{Kind: membership.LeaderChanged, Member: self, Time: now})
	n.mu.Unlock()

	list, err := ml.Create(mc)
	if err != nil {
		n.mu.Lock()
		n.running = false
		n.leader = nodeid.None
		n.mu.Unlock()
		return fmt.Errorf("memberlist: start: %w", err)
	}
	n.list = list
	n.started = true
	ln := list.LocalNode()
	n.mu.Lock()
	n.self.PacketAddr = packetAddr(ln)
	n.mu.Unlock()
	n.log.Info("memberlist: started", "id", self.ID, "name", self.Name, "local", ln.Address(),
		"preset", n.cfg.Preset, "seeds", len(n.cfg.Seeds))

	if len(n.cfg.Seeds) > 0 {
		seeds := make([]string, 0, len(n.cfg.Seeds))
		for _, s := range n.cfg.Seeds {
			seeds = append(seeds, withDefaultPort(s))
		}
		joined := make(chan struct{})
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer close(joined)
			if k, err := list.Join(seeds); err != nil {
				n.log.Warn("memberlist: joining the seeds failed; will retry", "reached", k, "err", err)
			}
		}()
		select {
		case <-joined:
		case <-ctx.Done():
			n.log.Warn("memberlist: start returned before the join finished", "err", ctx.Err())
		}
	}
	n.wg.Add(1)
	go n.rejoinLoop(list)
	return nil
}

// rejoinLoop tries, every RejoinInterval, the seeds and the failed members
// that are not members now: after a partition longer than memberlist's gossip
// to the dead, this is what merges the two sides again.
func (n *Node) rejoinLoop(list *ml.Memberlist) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.RejoinInterval)
	defer t.Stop()
	kt := time.NewTicker(n.cfg.KeyCheckInterval)
	defer kt.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-kt.C:
			if err := n.syncKeys(); err != nil {
				n.log.Error("memberlist: following a key rotation", "err", err)
			}
			continue
		case <-t.C:
		}
		targets := n.rejoinTargets(time.Now())
		if len(targets) == 0 {
			continue
		}
		if k, err := list.Join(targets); err != nil {
			n.log.Debug("memberlist: rejoin failed", "targets", targets, "reached", k, "err", err)
		}
	}
}

// rejoinTargets returns up to maxRejoinTargets addresses, chosen at random
// among the seeds not known as members and the failed members still worth
// trying. Expired entries are forgotten.
func (n *Node) rejoinTargets(now time.Time) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	have := make(map[string]bool, len(n.members)+1)
	for _, e := range n.members {
		have[e.mlAddr] = true
	}
	if n.self.PacketAddr.IsValid() {
		have[n.self.PacketAddr.String()] = true
	}
	var out []string
	if len(n.members) == 0 {
		for _, s := range n.cfg.Seeds {
			if s = withDefaultPort(s); !have[s] {
				out = append(out, s)
			}
		}
	}
	for id, g := range n.gone {
		switch {
		case now.After(g.until):
			delete(n.gone, id)
		case !g.left && g.mlAddr != "" && !have[g.mlAddr]:
			out = append(out, g.mlAddr)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(len(out), maxRejoinTargets)]
}

// Local returns the local node's own entry.
func (n *Node) Local() membership.Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	return clone(n.self)
}

// Members returns the live members (alive or suspected, the local node
// included), ordered by join time then ID: the first is the leader. It is
// empty before Start and after Close.
func (n *Node) Members() []membership.Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return nil
	}
	out := make([]membership.Member, 0, len(n.members)+1)
	out = append(out, clone(n.self))
	for _, e := range n.members {
		out = append(out, clone(e.m))
	}
	membership.SortMembers(out)
	return out
}

// Leader returns the oldest live member, and false before Start or after
// Close. As with the built-in backend, each side of a partition sees its own.
func (n *Node) Leader() (membership.Member, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return membership.Member{}, false
	}
	return clone(n.oldestLocked()), true
}

// Subscribe returns a subscription to this node's events with a queue of
// buffer events (membership.DefaultEventBuffer if buffer <= 0); see
// membership.EventHub for the overflow policy. Subscribe before Start to see
// every event, the first LeaderChanged included.
func (n *Node) Subscribe(buffer int) *membership.Subscription { return n.hub.Subscribe(buffer) }

// SetMeta changes the user metadata this node advertises; the others publish
// Updated when the change reaches them. It fails with an error wrapping
// ErrMetaTooLarge if the metadata does not fit beside the name and address.
func (n *Node) SetMeta(meta []byte) error {
	n.mu.Lock()
	self := n.self
	enc, err := encodeMeta(info{inc: self.Incarnation, join: self.JoinTime,
		name: self.Name, addr: self.Addr, meta: meta})
	if err != nil {
		n.mu.Unlock()
		return fmt.Errorf("memberlist: set meta: %w", err)
	}
	n.self.Meta = append([]byte{}, meta...)
	n.meta.Store(&enc)
	n.mu.Unlock()
	return n.readvertise()
}

// readvertise queues a broadcast of the local metadata; memberlist gossips it
// in the background.
func (n *Node) readvertise() error {
	n.life.Lock()
	list, active := n.list, n.started && !n.closed
	n.life.Unlock()
	if !active {
		return nil // advertised at Start
	}
	// UpdateNode queues the broadcast, then waits for it to spread: a
	// nanosecond's wait returns at once, with a timeout error to ignore.
	_ = list.UpdateNode(time.Nanosecond)
	return nil
}

// SetKeys replaces the keys of the Keyring (the first is primary, all are
// accepted), for key rotation without downtime; with a shared Keyring, this
// rotates the keys of everything that holds it.
func (n *Node) SetKeys(keys [][]byte) error {
	if err := n.cfg.Keyring.Set(keys...); err != nil {
		return fmt.Errorf("memberlist: set keys: %w", err)
	}
	if err := n.syncKeys(); err != nil {
		return fmt.Errorf("memberlist: set keys: %w", err)
	}
	return nil
}

// syncKeys gives memberlist the keys derived from the Keyring's, if they
// changed since the last time.
func (n *Node) syncKeys() error {
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	keys, gen := n.cfg.Keyring.Keys()
	if gen == n.keyGen.Load() {
		return nil
	}
	if err := rekey(n.keyring, keys, n.cfg.ClusterLabel); err != nil {
		return err
	}
	n.keyGen.Store(gen)
	n.log.Info("memberlist: keys rotated", "keys", len(keys), "generation", gen)
	return nil
}

// Leave announces a graceful departure — first metadata marked as leaving, so
// that the others report Left rather than Failed, then memberlist's own leave
// — and stops like Close. The broadcasts are bounded by ctx's deadline, or by
// Config.LeaveTimeout; if ctx is already done nothing is announced and
// ctx.Err() is returned after stopping.
func (n *Node) Leave(ctx context.Context) error {
	n.life.Lock()
	list := n.list
	active := n.started && !n.closed
	n.life.Unlock()
	if active && ctx.Err() == nil {
		timeout := n.cfg.LeaveTimeout
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		deadline := time.Now().Add(timeout)
		n.mu.Lock()
		self := n.self
		n.mu.Unlock()
		enc, err := encodeMeta(info{inc: self.Incarnation, join: self.JoinTime,
			name: self.Name, addr: self.Addr, meta: self.Meta, leaving: true})
		if err == nil {
			n.meta.Store(&enc)
			if err := list.UpdateNode(max(time.Until(deadline)/2, time.Millisecond)); err != nil {
				n.log.Debug("memberlist: leave notice not fully broadcast", "err", err)
			}
		}
		if err := list.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
			n.log.Warn("memberlist: leave not fully broadcast", "err", err)
		}
	}
	err := n.Close()
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("memberlist: leave: %w", cerr)
	}
	return err
}

// closing reports whether Close or Leave has begun.
func (n *Node) closing() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// Close stops the node without announcing anything (the others will declare
// it failed), shuts memberlist down, waits for every goroutine of the node to
// end and closes all subscriptions. Closing twice is harmless.
func (n *Node) Close() error {
	n.life.Lock()
	if n.closed {
		n.life.Unlock()
		return nil
	}
	n.closed = true
	list := n.list
	n.life.Unlock()

	close(n.done)
	var err error
	if list != nil {
		if serr := list.Shutdown(); serr != nil {
			err = fmt.Errorf("memberlist: shutdown: %w", serr)
		}
	}
	n.wg.Wait()
	n.mu.Lock()
	n.running = false
	n.members = make(map[nodeid.ID]*entry)
	n.leader = nodeid.None
	n.mu.Unlock()
	n.hub.Close()
	return err
}

// --- the member table ------------------------------------------------------

// onAlive applies what memberlist says of a live member (joined or updated).
func (n *Node) onAlive(node *ml.Node) {
	id, in, err := identify(node)
	if err != nil {
		n.log.Warn("memberlist: member ignored", "member", node.Name, "err", err)
		return
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running || id == n.self.ID {
		return
	}
	e := n.members[id]
	switch {
	case e != nil && in.inc < e.m.Incarnation:
		return // a message of an earlier life
	case e != nil && in.inc > e.m.Incarnation:
		// A restart that memberlist took for an update: the old life ends.
		n.removeLocked(e, membership.StateFailed, now)
		n.joinLocked(id, in, node, now)
	case e != nil:
		n.updateLocked(e, in, node, now)
	default:
		if g, ok := n.gone[id]; ok && in.inc < g.inc {
			return // a message of a life already over
		}
		if in.leaving {
			return // on its way out: not worth a Joined
		}
		n.joinLocked(id, in, node, now)
	}
}

// onGone applies memberlist's verdict that a member failed or left.
func (n *Node) onGone(node *ml.Node) {
	id, in, err := identify(node)
	if id == nodeid.None {
		return // never a member
	}
	leaving := err == nil && in.leaving
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.members[id]
	if !n.running || e == nil {
		return
	}
	state := membership.StateFailed
	if leaving || e.leaving {
		state = membership.StateLeft
	} else {
		n.stats.failures.Add(1)
	}
	n.removeLocked(e, state, now)
}

// onSuspect marks a member suspected: the local node's probe of it went
// unanswered, directly and through others.
func (n *Node) onSuspect(id nodeid.ID) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.members[id]
	if !n.running || e == nil || e.m.State != membership.StateAlive {
		return
	}
	e.m.State = membership.StateSuspected
	n.stats.suspicions.Add(1)
	n.publishLocked(membership.Suspected, e.m, now)
}

// onHeard clears a suspicion: the member answered a probe.
func (n *Node) onHeard(node *ml.Node) {
	id, err := nodeid.Parse(node.Name)
	if err != nil {
		return
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.members[id]
	if !n.running || e == nil || e.m.State != membership.StateSuspected {
		return
	}
	e.m.State = membership.StateAlive
	n.stats.refutations.Add(1)
	n.publishLocked(membership.Updated, e.m, now)
}

// identify returns a member's ID, which is its memberlist name (the form
// nodeid.ID.String prints, nothing else), and decodes its metadata. The ID is
// nodeid.None if the name is not one; the error says what is wrong with
// either.
func identify(node *ml.Node) (nodeid.ID, info, error) {
	id, err := nodeid.Parse(node.Name)
	if err != nil || id == nodeid.None || id.String() != node.Name {
		return nodeid.None, info{}, fmt.Errorf("memberlist: node name %q is not a Trellis node ID (16 lower-case hexadecimal digits, not all zero)", node.Name)
	}
	in, err := decodeMeta(node.Meta)
	return id, in, err
}

func (n *Node) joinLocked(id nodeid.ID, in info, node *ml.Node, now time.Time) {
	e := &entry{m: membership.Member{
		ID: id, Name: in.name, Addr: in.addr, JoinTime: in.join, Incarnation: in.inc,
		Meta: in.meta, State: membership.StateAlive, PacketAddr: packetAddr(node),
	}, mlAddr: node.Address(), leaving: in.leaving}
	delete(n.gone, id)
	n.members[id] = e
	n.log.Info("memberlist: member joined", "member", in.name, "id", id, "incarnation", in.inc)
	n.publishLocked(membership.Joined, e.m, now)
	n.checkLeaderLocked(now)
}

func (n *Node) updateLocked(e *entry, in info, node *ml.Node, now time.Time) {
	e.leaving = e.leaving || in.leaving
	e.mlAddr = node.Address()
	pa := packetAddr(node)
	if in.name == e.m.Name && in.addr == e.m.Addr && in.join.Equal(e.m.JoinTime) &&
		string(in.meta) == string(e.m.Meta) && pa == e.m.PacketAddr {
		return
	}
	reorder := !in.join.Equal(e.m.JoinTime)
	e.m.Name, e.m.Addr, e.m.JoinTime, e.m.Meta, e.m.PacketAddr = in.name, in.addr, in.join, in.meta, pa
	n.publishLocked(membership.Updated, e.m, now)
	if reorder {
		n.checkLeaderLocked(now)
	}
}

func (n *Node) removeLocked(e *entry, state membership.State, now time.Time) {
	delete(n.members, e.m.ID)
	n.gone[e.m.ID] = gone{inc: e.m.Incarnation, mlAddr: e.mlAddr, left: state == membership.StateLeft,
		until: now.Add(n.cfg.ReconnectTimeout)}
	e.m.State = state
	kind := membership.Failed
	if state == membership.StateLeft {
		kind = membership.Left
	}
	n.log.Info("memberlist: member "+state.String(), "member", e.m.Name, "id", e.m.ID)
	n.publishLocked(kind, e.m, now)
	n.checkLeaderLocked(now)
}

// oldestLocked returns the oldest live member, the local node included.
func (n *Node) oldestLocked() membership.Member {
	best := n.self
	for _, e := range n.members {
		if membership.Less(e.m, best) {
			best = e.m
		}
	}
	return best
}

func (n *Node) checkLeaderLocked(now time.Time) {
	lead := n.oldestLocked()
	if lead.ID == n.leader {
		return
	}
	prev := n.leader
	n.leader = lead.ID
	n.hub.Publish(membership.Event{Kind: membership.LeaderChanged, Member: clone(lead), Previous: prev, Time: now})
}

func (n *Node) publishLocked(kind membership.EventKind, m membership.Member, now time.Time) {
	n.hub.Publish(membership.Event{Kind: kind, Member: clone(m), Time: now})
}

// onLog watches memberlist's log for what it tells nobody else: the
// packets and streams it refused (see Stats), and the local node's probe of
// a member that failed, after which memberlist suspects it.
func (n *Node) onLog(msg string) {
	if c := n.stats.refusal(msg); c != nil {
		c.Add(1)
		return
	}
	rest, ok := strings.CutPrefix(msg, "memberlist: Suspect ")
	if !ok {
		return
	}
	name, ok := strings.CutSuffix(rest, " has failed, no acks received")
	if !ok {
		return
	}
	if id, err := nodeid.Parse(name); err == nil {
		n.onSuspect(id)
	}
}

func clone(m membership.Member) membership.Member {
	if m.Meta != nil {
		m.Meta = append([]byte{}, m.Meta...)
	}
	return m
}

// packetAddr returns a memberlist node's address as a netip.AddrPort.
func packetAddr(node *ml.Node) netip.AddrPort {
	ip, ok := netip.AddrFromSlice(node.Addr)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip.Unmap(), node.Port)
}

// --- memberlist's delegates ---------------------------------------------------

// hooks implements memberlist's delegate interfaces for a Node, so that its
// methods stay out of Node's API. memberlist calls them with its own locks
// held: they never call back into memberlist.
type hooks Node

// NodeMeta implements memberlist.Delegate.
func (h *hooks) NodeMeta(limit int) []byte {
	m := *h.meta.Load()
	if len(m) > limit {
		return nil // cannot happen: encodeMeta enforces MaxNodeMeta
	}
	return m
}

// NotifyMsg implements memberlist.Delegate.
func (h *hooks) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate.
func (h *hooks) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (h *hooks) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (h *hooks) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (h *hooks) NotifyJoin(node *ml.Node) { (*Node)(h).onAlive(node) }

// NotifyUpdate implements memberlist.EventDelegate.
func (h *hooks) NotifyUpdate(node *ml.Node) { (*Node)(h).onAlive(node) }

// NotifyLeave implements memberlist.EventDelegate.
func (h *hooks) NotifyLeave(node *ml.Node) { (*Node)(h).onGone(node) }

// NotifyAlive implements memberlist.AliveDelegate: a node whose metadata is
// not a Trellis member's is kept out of the member list.
func (h *hooks) NotifyAlive(node *ml.Node) error {
	_, _, err := identify(node)
	return err
}

// AckPayload implements memberlist.PingDelegate.
func (h *hooks) AckPayload() []byte { return nil }

// NotifyPingComplete implements memberlist.PingDelegate.
func (h *hooks) NotifyPingComplete(other *ml.Node, rtt time.Duration, payload []byte) {
	(*Node)(h).onHeard(other)
}

// NotifyConflict implements memberlist.ConflictDelegate.
func (h *hooks) NotifyConflict(existing, other *ml.Node) {
	h.log.Warn("memberlist: two nodes claim one ID", "id", existing.Name,
		"known", existing.Address(), "other", other.Address())
}

package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// ErrStaleEpoch is returned to a leader whose proposal is not newer than
// what a member has committed or prepared.
var ErrStaleEpoch = errors.New("cluster: stale topology epoch")

// lead runs on the leader: if the live membership differs from the committed
// topology and the policy allows it, cascade a new topology.
func (c *Cluster) lead(ctx context.Context) {
	live := c.disc.Members()
	members := make([]topology.Member, 0, len(live))
	visible := make([]nodeid.ID, 0, len(live))
	for _, m := range live {
		members = append(members, topology.Member{ID: m.ID, Name: m.Name, Addr: m.Addr})
		visible = append(visible, m.ID)
	}
	c.mu.Lock()
	prev := c.committed
	epoch := max(prev.Epoch, c.maxEpoch) + 1
	c.mu.Unlock()

	var prevp *topology.Topology
	if prev.Epoch > 0 {
		prevp = &prev
	}
	next := topology.Compute(c.cfg.Strategy, members, prevp)
	next.Epoch = epoch
	c.mu.Lock()
	again := c.incomplete
	c.mu.Unlock()
	if !again && prev.Epoch > 0 && slices.Equal(next.Members, prev.Members) && slices.Equal(next.Edges, prev.Edges) {
		return // nothing changed
	}
	last := make([]nodeid.ID, 0, len(prev.Members))
	for _, m := range prev.Members {
		last = append(last, m.ID)
	}
	if !topology.CanCommit(c.cfg.Policy, last, visible) {
		why := fmt.Sprintf("policy %s: %d of the %d members of epoch %d visible", c.cfg.Policy.Name(), len(visible), len(last), prev.Epoch)
		c.mu.Lock()
		if c.blocked != why {
			c.blocked = why
			c.log.Warn("cluster: not pushing a topology", "reason", why)
		}
		c.mu.Unlock()
		return
	}
	p := proposal(c.self, next, prev.Edges)
	start := time.Now()
	var err error
	defer func() { c.stats.record(time.Since(start), err != nil) }()
	pctx, cancel := context.WithTimeout(ctx, c.cfg.PhaseTimeout)
	err = c.prepare(pctx, p)
	cancel()
	if err != nil {
		c.log.Info("cluster: prepare failed; will retry", "epoch", epoch, "err", err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.PhaseTimeout)
	err = c.commit(cctx, c.self, epoch)
	cancel()
	c.mu.Lock()
	// Some members may not have committed: cascade again (a new epoch,
	// perhaps the same edges) until every member has.
	c.incomplete = err != nil
	c.mu.Unlock()
	if err != nil {
		c.log.Info("cluster: commit incomplete; will cascade again", "epoch", epoch, "err", err)
	}
}

func proposal(leader nodeid.ID, t topology.Topology, prev []topology.Edge) controlplane.Proposal {
	p := controlplane.Proposal{Leader: leader, Epoch: t.Epoch, Strategy: t.Strategy}
	for _, m := range t.Members {
		p.Members = append(p.Members, controlplane.Member{ID: m.ID, Name: m.Name, Addr: m.Addr})
	}
	for _, e := range t.Edges {
		p.Edges = append(p.Edges, controlplane.Edge{A: e.A, B: e.B})
	}
	for _, e := range prev {
		p.Previous = append(p.Previous, controlplane.Edge{A: e.A, B: e.B})
	}
	return p
}

// topologyOf returns the topology a proposal carries, validated.
func topologyOf(p *controlplane.Proposal) (topology.Topology, error) {
	t := topology.Topology{Epoch: p.Epoch, Strategy: p.Strategy}
	for _, m := range p.Members {
		t.Members = append(t.Members, topology.Member{ID: m.ID, Name: m.Name, Addr: m.Addr})
	}
	for _, e := range p.Edges {
		t.Edges = append(t.Edges, topology.Edge{A: e.A, B: e.B})
	}
	if err := t.Validate(); err != nil {
		return t, fmt.Errorf("cluster: proposal of epoch %d: %w", p.Epoch, err)
	}
	return t, nil
}

// children returns the members to which self forwards the proposal: its
// children in the breadth-first tree rooted at the leader over the old and
// new edges (neighbours visited in ID order, so every member computes the
// same tree).
func children(p *controlplane.Proposal, self nodeid.ID) []controlplane.Member {
	in := make(map[nodeid.ID]controlplane.Member, len(p.Members))
	for _, m := range p.Members {
		in[m.ID] = m
	}
	adj := make(map[nodeid.ID][]nodeid.ID)
	for _, es := range [][]controlplane.Edge{p.Edges, p.Previous} {
		for _, e := range es {
			_, a := in[e.A]
			_, b := in[e.B]
			if a && b {
				adj[e.A] = append(adj[e.A], e.B)
				adj[e.B] = append(adj[e.B], e.A)
			}
		}
	}
	parent := map[nodeid.ID]nodeid.ID{p.Leader: p.Leader}
	queue := []nodeid.ID{p.Leader}
	var kids []controlplane.Member
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		nbs := adj[u]
		slices.Sort(nbs)
		for _, v := range slices.Compact(nbs) {
			if _, seen := parent[v]; seen {
				continue
			}
			parent[v] = u
			queue = append(queue, v)
			if u == self {
				kids = append(kids, in[v])
			}
		}
	}
	return kids
}

// forward calls f on every child in parallel and returns their errors joined.
func (c *Cluster) forward(ctx context.Context, kids []controlplane.Member, f func(context.Context, controlplane.Cascade) error) error {
	errs := make([]error, len(kids))
	var wg sync.WaitGroup
	for i, m := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.node.ConnectTo(ctx, m.ID, m.Addr); err != nil {
				errs[i] = fmt.Errorf("%s: %w", m.Name, err)
				return
			}
			if err := f(ctx, controlplane.NewCascadeProxy(c.node, m.ID, runtime.Direct())); err != nil {
				errs[i] = fmt.Errorf("%s: %w", m.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// prepare records a proposal and forwards it down the tree.
func (c *Cluster) prepare(ctx context.Context, p controlplane.Proposal) error {
	if _, err := topologyOf(&p); err != nil {
		return err
	}
	if !slices.ContainsFunc(p.Members, func(m controlplane.Member) bool { return m.ID == c.self }) {
		return fmt.Errorf("cluster: proposal of epoch %d does not include %s", p.Epoch, c.self)
	}
	c.mu.Lock()
	c.maxEpoch = max(c.maxEpoch, p.Epoch)
	switch {
	case p.Epoch <= c.committed.Epoch:
		c.mu.Unlock()
		return fmt.Errorf("%w: proposed %d, committed %d", ErrStaleEpoch, p.Epoch, c.committed.Epoch)
	case c.pending != nil && p.Epoch < c.pending.Epoch:
		c.mu.Unlock()
		return fmt.Errorf("%w: proposed %d, prepared %d", ErrStaleEpoch, p.Epoch, c.pending.Epoch)
	}
	c.pending = &p
	c.mu.Unlock()
	return c.forward(ctx, children(&p, c.self), func(ctx context.Context, k controlplane.Cascade) error {
		return k.Prepare(ctx, p)
	})
}

// commit installs the prepared proposal of epoch, forwards the commit down
// the tree, then reconciles the connections.
func (c *Cluster) commit(ctx context.Context, leader nodeid.ID, epoch uint64) error {
	c.mu.Lock()
	p := c.pending
	if p == nil || p.Epoch != epoch || p.Leader != leader {
		committed := c.committed.Epoch
		c.mu.Unlock()
		if committed == epoch {
			return nil // a retried commit
		}
		return fmt.Errorf("%w: commit of epoch %d by %s, nothing prepared for it", ErrStaleEpoch, epoch, leader)
	}
	t, err := topologyOf(p)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.committed = t
	c.pending = nil
	c.blocked = ""
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.node.SetRouter(newRouter(t, c.self, c.node.Connected))
	c.log.Info("cluster: topology committed", "epoch", t.Epoch, "topology", topology.Diagram(t))

	err = c.forward(ctx, children(p, c.self), func(ctx context.Context, k controlplane.Cascade) error {
		return k.Commit(ctx, leader, epoch)
	})
	c.poke() // reconcile now
	return err
}

// cascadeServer serves controlplane.Cascade for the cluster.
type cascadeServer Cluster

// Prepare implements controlplane.Cascade.
func (s *cascadeServer) Prepare(ctx context.Context, p controlplane.Proposal) error {
	return (*Cluster)(s).prepare(ctx, p)
}

// Commit implements controlplane.Cascade.
func (s *cascadeServer) Commit(ctx context.Context, leader nodeid.ID, epoch uint64) error {
	return (*Cluster)(s).commit(ctx, leader, epoch)
}

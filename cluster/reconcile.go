package cluster

import (
	"context"
	"time"

	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// reconcile makes the node's connections match the committed topology: it
// dials the neighbours it is the dialer for (the smaller ID dials) and
// drains and closes connections that are no edge of the committed topology
// nor of a proposal in progress, once they have been so for a grace period
// (a neighbour-to-be may connect a moment before its proposal arrives).
func (c *Cluster) reconcile(ctx context.Context) {
	leader, _ := c.disc.Leader()
	c.mu.Lock()
	t := c.committed
	keep := make(map[nodeid.ID]bool)
	for _, id := range t.Neighbours(c.self) {
		keep[id] = true
	}
	// A proposal keeps its edges while it may still be committed: for
	// two phases at most, and while its leader leads (one that was cut
	// off, back among the others, has handed over).
	if p := c.pending; p != nil && p.Epoch > t.Epoch && time.Since(c.pendingAt) < 2*c.cfg.PhaseTimeout && p.Leader == leader.ID {
		for _, es := range [][]controlplane.Edge{p.Edges, p.Previous} {
			for _, e := range es {
				if e.A == c.self {
					keep[e.B] = true
				} else if e.B == c.self {
					keep[e.A] = true
				}
			}
		}
	}
	c.mu.Unlock()

	neighbours := t.Neighbours(c.self)
	c.mu.Lock()
	c.dials.keep(neighbours)
	c.mu.Unlock()
	for _, id := range neighbours {
		if c.self < id && !c.node.Connected(id) {
			m, _ := t.Lookup(id)
			c.dial(ctx, m)
		}
	}

	grace := 3 * c.cfg.Interval
	now := time.Now()
	c.mu.Lock()
	var drop []nodeid.ID
	peers := c.node.Peers()
	seen := make(map[nodeid.ID]bool, len(peers))
	for _, id := range peers {
		seen[id] = true
		if keep[id] {
			delete(c.unwanted, id)
			continue
		}
		since, ok := c.unwanted[id]
		if !ok {
			c.unwanted[id] = now
			continue
		}
		if now.Sub(since) >= grace {
			drop = append(drop, id)
			delete(c.unwanted, id)
		}
	}
	for id := range c.unwanted {
		if !seen[id] {
			delete(c.unwanted, id)
		}
	}
	c.mu.Unlock()
	for _, id := range drop {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			dctx, cancel := context.WithTimeout(context.Background(), c.cfg.DrainTimeout)
			defer cancel()
			c.node.Disconnect(dctx, id)
		}()
	}
}

// dial connects to neighbour m in the background, unless a dial to it is
// in progress: a neighbour that does not answer (a cut cable) must not hold
// up the loop, which leads and reconciles.
func (c *Cluster) dial(ctx context.Context, m topology.Member) {
	c.mu.Lock()
	if c.dialing[m.ID] || !c.dials.due(m.ID, time.Now()) {
		c.mu.Unlock()
		return
	}
	c.dialing[m.ID] = true
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		dctx, cancel := context.WithTimeout(ctx, c.cfg.PhaseTimeout)
		err := c.node.ConnectTo(dctx, m.ID, m.Addr)
		cancel()
		c.mu.Lock()
		delete(c.dialing, m.ID)
		var wait time.Duration
		if err != nil {
			wait = c.dials.failed(m.ID, time.Now())
		} else {
			c.dials.forget(m.ID)
		}
		c.mu.Unlock()
		if err != nil {
			c.log.Info("cluster: cannot connect to neighbour; will retry", "peer", m.Name, "in", wait, "err", err)
		}
	}()
}

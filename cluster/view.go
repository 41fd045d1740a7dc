package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// unknownHops is the distance of a member outside the committed topology.
const unknownHops = 1 << 16

// A view is what cluster proxies choose from: the live members, what they
// serve and how far they are. It is rebuilt lazily after any change
// (membership event, commit, local registration) and shared read-only.
type view struct {
	gen     uint64
	members []Member
	hops    []int // hops[i]: edges from this member to members[i] in the committed topology
}

// viewCache holds the current view; gen counts the changes that make it
// stale.
type viewCache struct {
	gen  atomic.Uint64
	cur  atomic.Pointer[view]
	mu   sync.Mutex // serialises rebuilding
	warn sync.Map   // members whose metadata did not parse, logged once

	wakeMu sync.Mutex
	wake   chan struct{} // closed at the next invalidation; nil while nobody waits for it
}

// invalidate marks the view stale, and wakes whoever waits for it to change.
func (c *Cluster) invalidate() {
	c.views.gen.Add(1)
	c.views.wakeMu.Lock()
	if c.views.wake != nil {
		close(c.views.wake)
		c.views.wake = nil
	}
	c.views.wakeMu.Unlock()
}

// viewChanged returns a channel closed when the view next changes. Take it
// before looking at the view, so that no change in between goes unseen.
func (c *Cluster) viewChanged() <-chan struct{} {
	c.views.wakeMu.Lock()
	defer c.views.wakeMu.Unlock()
	if c.views.wake == nil {
		c.views.wake = make(chan struct{})
	}
	return c.views.wake
}

// view returns the current view, rebuilding it if it is stale.
func (c *Cluster) view() *view {
	gen := c.views.gen.Load()
	if v := c.views.cur.Load(); v != nil && v.gen == gen {
		return v
	}
	c.views.mu.Lock()
	defer c.views.mu.Unlock()
	gen = c.views.gen.Load()
	if v := c.views.cur.Load(); v != nil && v.gen == gen {
		return v
	}
	v := c.buildView(gen)
	c.views.cur.Store(v)
	return v
}

func (c *Cluster) buildView(gen uint64) *view {
	live := c.disc.Members()
	t := c.Topology()
	dist := distances(t, c.self)
	v := &view{gen: gen, members: make([]Member, 0, len(live)), hops: make([]int, 0, len(live))}
	for i, m := range live {
		mem := Member{ID: m.ID, Name: m.Name, Addr: m.Addr, Leader: i == 0, Local: m.ID == c.self}
		if mem.Local {
			mem.Services = c.localServices()
		} else if _, svcs, _, ok := decodeMeta(m.Meta); ok {
			mem.Services = svcs
		} else if len(m.Meta) > 0 {
			if _, logged := c.views.warn.LoadOrStore(m.ID, true); !logged {
				c.log.Warn("cluster: a member's record advertises no readable services", "member", m.Name)
			}
		}
		h, ok := dist[m.ID]
		if !ok {
			h = unknownHops
		}
		v.members = append(v.members, mem)
		v.hops = append(v.hops, h)
	}
	return v
}

// distances returns the number of edges from self to every member of t.
func distances(t topology.Topology, self nodeid.ID) map[nodeid.ID]int {
	d := map[nodeid.ID]int{self: 0}
	if !t.Contains(self) {
		return d
	}
	queue := []nodeid.ID{self}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, nb := range t.Neighbours(u) {
			if _, seen := d[nb]; !seen {
				d[nb] = d[u] + 1
				queue = append(queue, nb)
			}
		}
	}
	return d
}

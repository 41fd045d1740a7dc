package membershiptest

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/membership"
)

// Conditions describe what happens to packets on a path.
type Conditions struct {
	// Loss is the probability that a packet is dropped (0 to 1).
	Loss float64
	// Duplicate is the probability that a packet is delivered twice.
	Duplicate float64
	// Delay is the base one-way delay.
	Delay time.Duration
	// Jitter is a uniformly random extra delay in [0, Jitter); packets overtake
	// each other when it exceeds their spacing (reordering).
	Jitter time.Duration
}

// Options configure a Network.
type Options struct {
	// Seed seeds the random source deciding loss, duplication and delays.
	Seed uint64
	// Clock stamps packets in manual mode; nil means the system clock.
	Clock membership.Clock
	// Manual queues packets until the test takes them with DeliverDue instead of
	// delivering them to the endpoints' ReadFrom. Simulations use it to run
	// several engines in one deterministic timeline.
	Manual bool
	// Conditions apply to every path without an override.
	Conditions Conditions
}

// NetworkStats counts what the network did with packets.
type NetworkStats struct {
	Sent, Dropped, Duplicated, Delivered uint64
}

// Network is an in-memory datagram network. Endpoints attach at an address; a
// packet sent to an address without an endpoint is lost.
type Network struct {
	mu       sync.Mutex
	opts     Options
	clock    membership.Clock
	rng      *rand.Rand
	def      Conditions
	bySender map[netip.AddrPort]Conditions
	byLink   map[[2]netip.AddrPort]Conditions
	side     map[netip.AddrPort]int // partition side; 0 = not partitioned
	eps      map[netip.AddrPort]*Endpoint
	queue    deliveries
	seq      uint64
	stats    NetworkStats
}

// NewNetwork returns an empty network.
func NewNetwork(o Options) *Network {
	c := o.Clock
	if c == nil {
		c = membership.SystemClock{}
	}
	return &Network{
		opts: o, clock: c, rng: rand.New(rand.NewPCG(o.Seed, 0x6d656d6e6574)),
		def: o.Conditions, bySender: map[netip.AddrPort]Conditions{},
		byLink: map[[2]netip.AddrPort]Conditions{}, side: map[netip.AddrPort]int{},
		eps: map[netip.AddrPort]*Endpoint{},
	}
}

// Listen attaches an endpoint at addr; with multicast it receives Broadcast
// packets (its own included, like IP_MULTICAST_LOOP).
func (n *Network) Listen(addr netip.AddrPort, multicast bool) (*Endpoint, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.eps[addr]; ok {
		return nil, fmt.Errorf("membershiptest: address %s in use", addr)
	}
	e := &Endpoint{net: n, addr: addr, multicast: multicast,
		inbox: make(chan packet, 4096), closed: make(chan struct{})}
	n.eps[addr] = e
	return e, nil
}

// SetConditions sets the conditions of every path without an override.
func (n *Network) SetConditions(c Conditions) {
	n.mu.Lock()
	n.def = c
	n.mu.Unlock()
}

// SetSenderConditions overrides the conditions of every packet sent from addr
// (Loss 1 silences it while it still hears everything).
func (n *Network) SetSenderConditions(addr netip.AddrPort, c Conditions) {
	n.mu.Lock()
	n.bySender[addr] = c
	n.mu.Unlock()
}

// SetLinkConditions overrides the conditions of packets from one address to
// another (one direction).
func (n *Network) SetLinkConditions(from, to netip.AddrPort, c Conditions) {
	n.mu.Lock()
	n.byLink[[2]netip.AddrPort{from, to}] = c
	n.mu.Unlock()
}

// ClearOverrides removes every sender and link override.
func (n *Network) ClearOverrides() {
	n.mu.Lock()
	clear(n.bySender)
	clear(n.byLink)
	n.mu.Unlock()
}

// Partition splits the network: packets between addresses of different groups
// are dropped; addresses in no group reach everyone.
func (n *Network) Partition(groups ...[]netip.AddrPort) {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.side)
	for i, g := range groups {
		for _, a := range g {
			n.side[a] = i + 1
		}
	}
}

// Heal ends a partition.
func (n *Network) Heal() { n.Partition() }

// Stats returns the network's counters.
func (n *Network) Stats() NetworkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// NextDelivery returns the delivery time of the earliest queued packet (manual
// mode).
func (n *Network) NextDelivery() (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.queue) == 0 {
		return time.Time{}, false
	}
	return n.queue[0].at, true
}

// DeliverDue hands every queued packet due at or before now to fn, in delivery
// order, skipping packets whose endpoint has closed (manual mode). fn may send.
func (n *Network) DeliverDue(now time.Time, fn func(to, from netip.AddrPort, p []byte)) {
	for {
		n.mu.Lock()
		if len(n.queue) == 0 || n.queue[0].at.After(now) {
			n.mu.Unlock()
			return
		}
		d := heap.Pop(&n.queue).(*delivery)
		e := n.eps[d.to]
		if e != nil {
			n.stats.Delivered++
		}
		n.mu.Unlock()
		if e != nil {
			fn(d.to, d.from, d.data)
		}
	}
}

// conditions returns the conditions of the path from → to. n.mu must be held.
func (n *Network) conditions(from, to netip.AddrPort) (Conditions, bool) {
	if a, b := n.side[from], n.side[to]; a != 0 && b != 0 && a != b {
		return Conditions{}, false
	}
	if c, ok := n.byLink[[2]netip.AddrPort{from, to}]; ok {
		return c, true
	}
	if c, ok := n.bySender[from]; ok {
		return c, true
	}
	return n.def, true
}

// send routes one packet. n.mu must not be held.
func (n *Network) send(from, to netip.AddrPort, p []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stats.Sent++
	c, ok := n.conditions(from, to)
	if !ok || (c.Loss > 0 && n.rng.Float64() < c.Loss) {
		n.stats.Dropped++
		return
	}
	copies := 1
	if c.Duplicate > 0 && n.rng.Float64() < c.Duplicate {
		copies = 2
		n.stats.Duplicated++
	}
	for range copies {
		delay := c.Delay
		if c.Jitter > 0 {
			delay += time.Duration(n.rng.Int64N(int64(c.Jitter)))
		}
		data := append([]byte(nil), p...)
		if n.opts.Manual {
			n.seq++
			heap.Push(&n.queue, &delivery{at: n.clock.Now().Add(delay), seq: n.seq, from: from, to: to, data: data})
			continue
		}
		e := n.eps[to]
		if e == nil {
			n.stats.Dropped++
			continue
		}
		n.stats.Delivered++
		if delay <= 0 {
			e.enqueue(packet{from: from, data: data})
		} else {
			time.AfterFunc(delay, func() { e.enqueue(packet{from: from, data: data}) })
		}
	}
}

func (n *Network) broadcast(from netip.AddrPort, p []byte) {
	n.mu.Lock()
	var to []netip.AddrPort
	for a, e := range n.eps {
		if e.multicast {
			to = append(to, a)
		}
	}
	n.mu.Unlock()
	slices.SortFunc(to, netip.AddrPort.Compare) // a stable order keeps seeded runs reproducible
	for _, a := range to {
		n.send(from, a, p)
	}
}

type packet struct {
	from netip.AddrPort
	data []byte
}

type delivery struct {
	at       time.Time
	seq      uint64
	from, to netip.AddrPort
	data     []byte
}

type deliveries []*delivery

func (q deliveries) Len() int { return len(q) }
func (q deliveries) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q deliveries) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *deliveries) Push(x any)   { *q = append(*q, x.(*delivery)) }
func (q *deliveries) Pop() any {
	old := *q
	d := old[len(old)-1]
	*q = old[:len(old)-1]
	return d
}

// Endpoint is one attachment to a Network; it implements membership.Transport.
type Endpoint struct {
	net       *Network
	addr      netip.AddrPort
	multicast bool
	inbox     chan packet
	closed    chan struct{}
	once      sync.Once
}

var _ membership.Transport = (*Endpoint)(nil)

var errClosed = fmt.Errorf("membershiptest: endpoint: %w", net.ErrClosed)

func (e *Endpoint) enqueue(p packet) {
	select {
	case <-e.closed:
	case e.inbox <- p:
	default: // full: dropped, as by a socket buffer
	}
}

// ReadFrom implements membership.Transport. In manual mode nothing arrives here.
func (e *Endpoint) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	select {
	case <-e.closed:
		return 0, netip.AddrPort{}, errClosed
	case pk := <-e.inbox:
		return copy(p, pk.data), pk.from, nil
	}
}

// WriteTo implements membership.Transport.
func (e *Endpoint) WriteTo(p []byte, to netip.AddrPort) error {
	select {
	case <-e.closed:
		return errClosed
	default:
	}
	e.net.send(e.addr, to, p)
	return nil
}

// Broadcast implements membership.Transport.
func (e *Endpoint) Broadcast(p []byte) error {
	if !e.multicast {
		return membership.ErrNoMulticast
	}
	select {
	case <-e.closed:
		return errClosed
	default:
	}
	e.net.broadcast(e.addr, p)
	return nil
}

// LocalAddr implements membership.Transport.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.addr }

// Close implements membership.Transport: the endpoint leaves the network.
func (e *Endpoint) Close() error {
	e.once.Do(func() {
		close(e.closed)
		e.net.mu.Lock()
		if e.net.eps[e.addr] == e {
			delete(e.net.eps, e.addr)
		}
		e.net.mu.Unlock()
	})
	return nil
}

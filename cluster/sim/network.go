package sim

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Ports every simulated host uses: membership's datagrams and the RPC
// node's stream connections.
const (
	PacketPort = 7947
	StreamPort = 7000
)

// LinkConditions say what happens to what one host sends another.
type LinkConditions struct {
	// Delay is the base one-way delay (at least 1 µs, so that a delivery is
	// always later than its send).
	Delay time.Duration
	// Jitter is a random extra delay in [0, Jitter). Datagrams overtake each
	// other; a stream stays in order (a segment never arrives before the one
	// sent before it).
	Jitter time.Duration
	// Loss is the probability that a datagram is lost (0 to 1). Streams lose
	// nothing: TCP retransmits, which the delay stands for.
	Loss float64
}

// Network is an in-memory network of hosts numbered 0 to n-1, at the
// addresses 10.0.x.y (see Network.Addr). Its random decisions (loss, delay)
// are functions of the seed, the link and the sequence number of what is
// sent on that link, so they do not depend on the order in which goroutines
// happen to send. Within a testing/synctest bubble, delays run on the
// bubble's fake clock.
//
// The network models crashes and cuts as TCP sees them: data sent over a cut
// link is held (retransmitted) and arrives once the link is whole again,
// unless the connection is closed first; nothing a crashed host sent after
// the crash arrives, and its peers learn of the crash only from silence.
type Network struct {
	seed uint64

	mu     sync.Mutex
	def    LinkConditions
	link   map[[2]int]LinkConditions // overrides, by (from, to)
	cut    map[[2]int]bool           // from → to delivers nothing
	groups map[int]int               // partition side of each host; 0 = none
	seq    map[[2]int]uint64         // sends on each link so far
	hosts  []*host
	conns  map[*conn]struct{} // every open stream end
	held   map[*pipe]struct{} // pipes holding segments back for a cut
}

// host is the network's view of one machine.
type host struct {
	up       bool // false after a crash, until Restart
	packet   *PacketConn
	listener *listener
}

// NewNetwork returns a network of n hosts, all up, with conditions c on
// every link.
func NewNetwork(seed uint64, n int, c LinkConditions) *Network {
	nw := &Network{
		seed: seed, def: c,
		link: map[[2]int]LinkConditions{}, cut: map[[2]int]bool{}, groups: map[int]int{},
		seq: map[[2]int]uint64{}, conns: map[*conn]struct{}{}, held: map[*pipe]struct{}{},
	}
	for range n {
		nw.hosts = append(nw.hosts, &host{up: true})
	}
	return nw
}

// Hosts returns the number of hosts.
func (nw *Network) Hosts() int { return len(nw.hosts) }

// IP returns host i's address.
func (nw *Network) IP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, byte((i + 1) >> 8), byte(i + 1)})
}

// PacketAddr returns the address of host i's datagram endpoint.
func (nw *Network) PacketAddr(i int) netip.AddrPort { return netip.AddrPortFrom(nw.IP(i), PacketPort) }

// StreamAddr returns the address host i's RPC node listens on.
func (nw *Network) StreamAddr(i int) string {
	return netip.AddrPortFrom(nw.IP(i), StreamPort).String()
}

// hostOf returns the host with address a, or -1.
func (nw *Network) hostOf(a netip.Addr) int {
	b := a.As4()
	if b[0] != 10 || b[1] != 0 {
		return -1
	}
	i := int(b[2])<<8 | int(b[3]) - 1
	if i < 0 || i >= len(nw.hosts) {
		return -1
	}
	return i
}

// SetConditions sets the conditions of every link without an override.
func (nw *Network) SetConditions(c LinkConditions) {
	nw.mu.Lock()
	nw.def = c
	nw.mu.Unlock()
}

// SetLink overrides the conditions of what from sends to (one direction).
func (nw *Network) SetLink(from, to int, c LinkConditions) {
	nw.mu.Lock()
	nw.link[[2]int{from, to}] = c
	nw.mu.Unlock()
}

// Cut stops everything from sending to (one direction) until Heal.
func (nw *Network) Cut(from, to int) {
	nw.mu.Lock()
	nw.cut[[2]int{from, to}] = true
	nw.mu.Unlock()
}

// Partition cuts every link between hosts of different groups, both ways,
// and only those: earlier cuts end (what they held is sent). Hosts in no
// group keep every link.
func (nw *Network) Partition(groups ...[]int) {
	nw.mu.Lock()
	clear(nw.cut)
	clear(nw.groups)
	for g, hs := range groups {
		for _, h := range hs {
			nw.groups[h] = g + 1
		}
	}
	for a, ga := range nw.groups {
		for b, gb := range nw.groups {
			if ga != gb {
				nw.cut[[2]int{a, b}] = true
			}
		}
	}
	held := make([]*pipe, 0, len(nw.held))
	for p := range nw.held {
		held = append(held, p)
	}
	clear(nw.held)
	nw.mu.Unlock()
	for _, p := range held {
		p.release()
	}
}

// Heal ends every cut, partition and link override: what was held on cut
// links is sent now.
func (nw *Network) Heal() {
	nw.mu.Lock()
	clear(nw.cut)
	clear(nw.groups)
	clear(nw.link)
	held := make([]*pipe, 0, len(nw.held))
	for p := range nw.held {
		held = append(held, p)
	}
	clear(nw.held)
	nw.mu.Unlock()
	for _, p := range held {
		p.release()
	}
}

// Whole reports whether no link is cut or degraded beyond the defaults.
func (nw *Network) Whole() bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return len(nw.cut) == 0 && len(nw.link) == 0
}

// Groups returns the partition side of every host (0: none), and whether
// the cuts are exactly those of the partition, so that the sides are
// clean: no one-way cut besides.
func (nw *Network) Groups() (map[int]int, bool) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	g := make(map[int]int, len(nw.groups))
	for h, s := range nw.groups {
		g[h] = s
	}
	clean := len(nw.groups) > 0
	for k := range nw.cut {
		if nw.groups[k[0]] == nw.groups[k[1]] {
			clean = false
		}
	}
	return g, clean
}

// Crash takes host h down as a power cut would: nothing it sent that has
// not arrived yet arrives, nothing it sends any more leaves, its stream
// connections end without a word to their peers, and dials to it go
// unanswered. The software on it is the caller's to stop.
func (nw *Network) Crash(h int) {
	nw.mu.Lock()
	nw.hosts[h].up = false
	var mine []*conn
	for c := range nw.conns {
		if c.host == h {
			mine = append(mine, c)
		}
	}
	nw.mu.Unlock()
	for _, c := range mine {
		c.vanish()
	}
}

// Restart brings a crashed host back up (empty: its software is started
// again by the caller).
func (nw *Network) Restart(h int) {
	nw.mu.Lock()
	nw.hosts[h].up = true
	nw.mu.Unlock()
}

// Up reports whether host h is up.
func (nw *Network) Up(h int) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.hosts[h].up
}

// route decides the fate of the next thing sent from → to: whether it is
// cut off (held for a stream, lost for a datagram), lost, and its delay.
func (nw *Network) route(from, to int) (cut, lost bool, delay time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.routeLocked(from, to)
}

func (nw *Network) routeLocked(from, to int) (cut, lost bool, delay time.Duration) {
	k := [2]int{from, to}
	c, ok := nw.link[k]
	if !ok {
		c = nw.def
	}
	n := nw.seq[k]
	nw.seq[k] = n + 1
	h := mix(nw.seed, uint64(from)<<32|uint64(to), n)
	lost = c.Loss > 0 && unit(h) < c.Loss
	delay = max(c.Delay, time.Microsecond)
	if c.Jitter > 0 {
		delay += time.Duration(unit(mix(h, 1, 0)) * float64(c.Jitter))
	}
	return nw.cut[k] || !nw.hosts[from].up || !nw.hosts[to].up, lost, delay
}

// OpenConns returns the stream connections open at both ends between hosts
// that are up, as pairs of hosts (dialer first).
func (nw *Network) OpenConns() [][2]int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var out [][2]int
	for c := range nw.conns {
		if !c.dialer || !nw.hosts[c.host].up || !nw.hosts[c.peer.host].up {
			continue
		}
		if _, ok := nw.conns[c.peer]; ok {
			out = append(out, [2]int{c.host, c.peer.host})
		}
	}
	return out
}

// String summarises the network: its hosts, cuts and overridden links.
func (nw *Network) String() string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return fmt.Sprintf("network of %d hosts, %d cuts, %d overrides", len(nw.hosts), len(nw.cut), len(nw.link))
}

// mix hashes three words into one (SplitMix64 finaliser over their sum).
func mix(a, b, c uint64) uint64 {
	z := a ^ b*0x9e3779b97f4a7c15 ^ c*0xbf58476d1ce4e5b9
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// Exit models the processes of host h ending while the host stays up: the
// kernel closes their sockets, so peers read EOF (after what was already
// sent), dials are refused, and datagrams to it are lost. The software on
// it is the caller's to stop.
func (nw *Network) Exit(h int) {
	nw.mu.Lock()
	var mine []*conn
	for c := range nw.conns {
		if c.host == h {
			mine = append(mine, c)
		}
	}
	l, p := nw.hosts[h].listener, nw.hosts[h].packet
	nw.mu.Unlock()
	for _, c := range mine {
		c.Close()
	}
	if l != nil {
		l.Close()
	}
	if p != nil {
		p.Close()
	}
}

// Package memberlisttest provides an in-memory network for memberlist: a
// memberlist.Transport whose packets and streams never touch a socket, with
// partitions, a one-way delay and per-endpoint traffic counters, so that tests
// and simulations run many memberlist nodes in one process quickly and measure
// what they send.
//
// The network uses only channels, net.Pipe and timers: created inside a
// testing/synctest bubble, together with the memberlist nodes that use it, it
// runs on the bubble's simulated clock (see SetDelay).
package memberlisttest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	ml "github.com/hashicorp/memberlist"
)

// packetQueue is how many packets an endpoint holds unread before dropping
// more, as a socket buffer would.
const packetQueue = 4096

// ErrUnreachable is returned by DialTimeout when no endpoint listens at the
// address or a partition separates it from the dialler.
var ErrUnreachable = errors.New("memberlisttest: address unreachable")

// Network is an in-memory network of Transports. Its methods are safe for
// concurrent use.
type Network struct {
	mu   sync.Mutex
	eps  map[netip.AddrPort]*Transport
	side map[netip.AddrPort]int // partition side; 0 = not partitioned
	next uint32
	// delay is the one-way delay of a packet and of a stream's opening.
	delay atomic.Int64
}

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	return &Network{eps: make(map[netip.AddrPort]*Transport), side: make(map[netip.AddrPort]int)}
}

// NewTransport attaches a transport at a fresh address (10.x.y.z:7948).
func (n *Network) NewTransport() *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		n.next++
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n.next >> 16), byte(n.next >> 8), byte(n.next)}), 7948)
		if n.eps[a] == nil {
			return n.attachLocked(a)
		}
	}
}

// Listen attaches a transport at addr ("ip:port"), for instance the address of
// a node that restarts; it fails if another transport is attached there.
func (n *Network) Listen(addr string) (*Transport, error) {
	a, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("memberlisttest: listen: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.eps[a] != nil {
		return nil, fmt.Errorf("memberlisttest: listen: %s is in use", a)
	}
	return n.attachLocked(a), nil
}

func (n *Network) attachLocked(a netip.AddrPort) *Transport {
	t := &Transport{net: n, addr: a, packets: make(chan *ml.Packet, packetQueue),
		streams: make(chan net.Conn), done: make(chan struct{})}
	n.eps[a] = t
	return t
}

// SetDelay sets the one-way delay of the network: every packet is delivered
// that long after it is sent (by a timer, so sending never waits), and
// opening a stream takes a round trip (twice d) before the dial returns. Zero,
// the default, delivers at once. Inside a testing/synctest bubble the delay is
// simulated time; outside it is real time.
func (n *Network) SetDelay(d time.Duration) { n.delay.Store(int64(max(d, 0))) }

// Partition splits the network: packets and new streams pass only between
// addresses of the same group; addresses in no group reach everyone. Calling
// it again replaces the previous partition.
func (n *Network) Partition(groups ...[]string) error {
	side := make(map[netip.AddrPort]int)
	for i, g := range groups {
		for _, s := range g {
			a, err := netip.ParseAddrPort(s)
			if err != nil {
				return fmt.Errorf("memberlisttest: partition: %w", err)
			}
			side[a] = i + 1
		}
	}
	n.mu.Lock()
	n.side = side
	n.mu.Unlock()
	return nil
}

// Heal removes the partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.side = make(map[netip.AddrPort]int)
	n.mu.Unlock()
}

// route returns the endpoint at to if from may reach it.
func (n *Network) route(from netip.AddrPort, to string) *Transport {
	a, err := netip.ParseAddrPort(to)
	if err != nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.eps[a]
	if t == nil {
		return nil
	}
	if s, d := n.side[from], n.side[a]; s != 0 && d != 0 && s != d {
		return nil
	}
	return t
}

// Stats counts what one transport sent and received. Packets are memberlist's
// UDP messages; stream bytes are those of its TCP exchanges (joins, state
// exchanges, fallback probes).
type Stats struct {
	PacketsSent, PacketsReceived uint64
	BytesSent, BytesReceived     uint64
	StreamsOpened                uint64
	StreamBytesSent              uint64
	StreamBytesReceived          uint64
}

// Transport is one endpoint of a Network. It implements
// memberlist.NodeAwareTransport.
type Transport struct {
	net     *Network
	addr    netip.AddrPort
	packets chan *ml.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once

	packetsSent, packetsReceived   atomic.Uint64
	bytesSent, bytesReceived       atomic.Uint64
	streamsOpened                  atomic.Uint64
	streamBytesSent, streamBytesRx atomic.Uint64
}

var _ ml.NodeAwareTransport = (*Transport)(nil)

// Addr returns the transport's address, "ip:port".
func (t *Transport) Addr() string { return t.addr.String() }

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	return Stats{
		PacketsSent: t.packetsSent.Load(), PacketsReceived: t.packetsReceived.Load(),
		BytesSent: t.bytesSent.Load(), BytesReceived: t.bytesReceived.Load(),
		StreamsOpened: t.streamsOpened.Load(), StreamBytesSent: t.streamBytesSent.Load(),
		StreamBytesReceived: t.streamBytesRx.Load(),
	}
}

// FinalAdvertiseAddr implements memberlist.Transport: the transport's own
// address, whatever is asked.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return net.IP(t.addr.Addr().AsSlice()), int(t.addr.Port()), nil
}

// WriteTo implements memberlist.Transport. A packet to an unreachable address,
// or to an endpoint whose queue is full when it arrives, is lost without an
// error.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	select {
	case <-t.done:
		return now, net.ErrClosed
	default:
	}
	t.packetsSent.Add(1)
	t.bytesSent.Add(uint64(len(b)))
	dst := t.net.route(t.addr, addr)
	if dst == nil {
		return now, nil
	}
	p := &ml.Packet{Buf: append([]byte(nil), b...), From: net.UDPAddrFromAddrPort(t.addr)}
	if d := time.Duration(t.net.delay.Load()); d > 0 {
		time.AfterFunc(d, func() { dst.deliver(p) })
		return now, nil
	}
	dst.deliver(p)
	return now, nil
}

// deliver queues p for the endpoint, or drops it if the queue is full or the
// endpoint shut down.
func (t *Transport) deliver(p *ml.Packet) {
	p.Timestamp = time.Now()
	select {
	case <-t.done:
	case t.packets <- p:
		t.packetsReceived.Add(1)
		t.bytesReceived.Add(uint64(len(p.Buf)))
	default: // queue full: lost
	}
}

// WriteToAddress implements memberlist.NodeAwareTransport: the node name is
// not needed to route in this network.
func (t *Transport) WriteToAddress(b []byte, addr ml.Address) (time.Time, error) {
	return t.WriteTo(b, addr.Addr)
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *ml.Packet { return t.packets }

// DialTimeout implements memberlist.Transport with an in-memory pipe. With a
// delay set (SetDelay), the dial returns after a round trip.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	dst := t.net.route(t.addr, addr)
	if dst == nil {
		return nil, fmt.Errorf("memberlisttest: dial %s from %s: %w", addr, t.addr, ErrUnreachable)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	if d := time.Duration(t.net.delay.Load()); d > 0 {
		rtt := time.NewTimer(2 * d)
		defer rtt.Stop()
		select {
		case <-rtt.C:
		case <-timer.C:
			return nil, fmt.Errorf("memberlisttest: dial %s from %s: timed out after %v", addr, t.addr, timeout)
		case <-t.done:
			return nil, fmt.Errorf("memberlisttest: dial %s from %s: %w", addr, t.addr, net.ErrClosed)
		}
	}
	a, b := net.Pipe()
	local := &countedConn{Conn: a, local: t.addr, remote: dst.addr, sent: &t.streamBytesSent, recv: &t.streamBytesRx}
	remote := &countedConn{Conn: b, local: dst.addr, remote: t.addr, sent: &dst.streamBytesSent, recv: &dst.streamBytesRx}
	select {
	case dst.streams <- remote:
		t.streamsOpened.Add(1)
		return local, nil
	case <-dst.done:
	case <-t.done:
	case <-timer.C:
	}
	a.Close()
	b.Close()
	return nil, fmt.Errorf("memberlisttest: dial %s from %s: %w", addr, t.addr, ErrUnreachable)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *Transport) DialAddressTimeout(addr ml.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(addr.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport: the address is released and
// nothing more is delivered to it.
func (t *Transport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		t.net.mu.Lock()
		if t.net.eps[t.addr] == t {
			delete(t.net.eps, t.addr)
		}
		t.net.mu.Unlock()
	})
	return nil
}

// countedConn counts a pipe's bytes and gives it TCP-like addresses.
type countedConn struct {
	net.Conn
	local, remote netip.AddrPort
	sent, recv    *atomic.Uint64
}

func (c *countedConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.recv.Add(uint64(k))
	return k, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	k, err := c.Conn.Write(p)
	c.sent.Add(uint64(k))
	return k, err
}

func (c *countedConn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.local) }
func (c *countedConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

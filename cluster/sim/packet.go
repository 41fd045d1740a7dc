package sim

import (
	"container/heap"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/membership"
)

// inboxSize bounds the datagrams waiting to be read by one endpoint, like a
// socket's receive buffer: beyond it they are dropped.
const inboxSize = 1024

// A PacketConn is a host's datagram endpoint: a membership.Transport on
// the simulated network (unicast only; Broadcast reports
// membership.ErrNoMulticast, so members find each other through seeds).
type PacketConn struct {
	nw   *Network
	host int

	mu      sync.Mutex
	pending datagrams // sent to this endpoint, not yet due
	inbox   chan datagram
	closed  chan struct{}
	once    sync.Once
}

type datagram struct {
	at   time.Time
	from int
	seq  uint64
	data []byte
}

// datagrams is a heap by delivery time, then sender and sequence, so that
// datagrams due at the same instant are read in an order that does not
// depend on which timer fired first.
type datagrams []datagram

func (d datagrams) Len() int { return len(d) }
func (d datagrams) Less(i, j int) bool {
	switch {
	case !d[i].at.Equal(d[j].at):
		return d[i].at.Before(d[j].at)
	case d[i].from != d[j].from:
		return d[i].from < d[j].from
	}
	return d[i].seq < d[j].seq
}
func (d datagrams) Swap(i, j int) { d[i], d[j] = d[j], d[i] }
func (d *datagrams) Push(x any)   { *d = append(*d, x.(datagram)) }
func (d *datagrams) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

// ListenPacket opens host h's datagram endpoint at PacketAddr(h).
func (nw *Network) ListenPacket(h int) (*PacketConn, error) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.hosts[h].packet != nil {
		return nil, fmt.Errorf("sim: host %d: datagram port %d in use", h, PacketPort)
	}
	p := &PacketConn{nw: nw, host: h, inbox: make(chan datagram, inboxSize), closed: make(chan struct{})}
	nw.hosts[h].packet = p
	return p, nil
}

// ReadFrom implements membership.Transport.
func (p *PacketConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-p.inbox:
		return copy(b, d.data), p.nw.PacketAddr(d.from), nil
	case <-p.closed:
		return 0, netip.AddrPort{}, fmt.Errorf("sim: host %d: read: %w", p.host, net.ErrClosed)
	}
}

// WriteTo implements membership.Transport. A datagram to an address
// without an endpoint is lost, as UDP would lose it.
func (p *PacketConn) WriteTo(b []byte, to netip.AddrPort) error {
	select {
	case <-p.closed:
		return fmt.Errorf("sim: host %d: write: %w", p.host, net.ErrClosed)
	default:
	}
	dst := p.nw.hostOf(to.Addr())
	if dst < 0 || to.Port() != PacketPort {
		return nil
	}
	p.nw.mu.Lock()
	cut, lost, delay := p.nw.routeLocked(p.host, dst)
	seq := p.nw.seq[[2]int{p.host, dst}]
	q := p.nw.hosts[dst].packet
	p.nw.mu.Unlock()
	if cut || lost || q == nil {
		return nil
	}
	q.mu.Lock()
	heap.Push(&q.pending, datagram{at: time.Now().Add(delay), from: p.host, seq: seq, data: append([]byte(nil), b...)})
	q.mu.Unlock()
	time.AfterFunc(delay, q.deliverDue)
	return nil
}

// deliverDue moves the datagrams that are due to the inbox.
func (p *PacketConn) deliverDue() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.pending.Len() > 0 && !p.pending[0].at.After(now) {
		d := heap.Pop(&p.pending).(datagram)
		select {
		case <-p.closed:
			return
		case p.inbox <- d:
		default: // receive buffer full: dropped
		}
	}
}

// Broadcast implements membership.Transport: there is no multicast.
func (p *PacketConn) Broadcast([]byte) error { return membership.ErrNoMulticast }

// LocalAddr implements membership.Transport.
func (p *PacketConn) LocalAddr() netip.AddrPort { return p.nw.PacketAddr(p.host) }

// Close implements membership.Transport: the endpoint is gone, and the port
// free for the next life of the host.
func (p *PacketConn) Close() error {
	p.once.Do(func() {
		close(p.closed)
		p.nw.mu.Lock()
		if p.nw.hosts[p.host].packet == p {
			p.nw.hosts[p.host].packet = nil
		}
		p.nw.mu.Unlock()
	})
	return nil
}

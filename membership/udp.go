package membership

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// UDPConfig configures ListenUDP.
type UDPConfig struct {
	// Bind is the local address of the unicast socket ("host:port"); empty means
	// ":0".
	Bind string
	// Group is the multicast group and port; the zero value means no multicast.
	Group netip.AddrPort
	// Interface names the interface to send and receive multicast on; empty lets
	// the routing table choose.
	Interface string
	// TTL is the multicast TTL; zero means 1.
	TTL int
}

// UDPTransport is the default Transport: IPv4 UDP. It has two sockets: a unicast
// one (probes, acks, seed-mode heartbeats, and the source of every packet sent, so
// that receivers know where to answer) and, with a group, a multicast one bound to
// the group's port with SO_REUSEADDR, so that several nodes on one host share it.
type UDPTransport struct {
	uc, mc  *net.UDPConn
	group   netip.AddrPort
	local   netip.AddrPort
	packets chan udpPacket
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	pool    sync.Pool
}

type udpPacket struct {
	buf  *[MaxPacketSize + 1]byte
	n    int
	from netip.AddrPort
}

// ListenUDP opens the sockets of a UDPTransport and starts its readers.
func ListenUDP(cfg UDPConfig) (*UDPTransport, error) {
	bind := cfg.Bind
	if bind == "" {
		bind = ":0"
	}
	laddr, err := net.ResolveUDPAddr("udp4", bind)
	if err != nil {
		return nil, fmt.Errorf("membership: resolving bind address %q: %w", bind, err)
	}
	var ifi *net.Interface
	if cfg.Interface != "" {
		if ifi, err = net.InterfaceByName(cfg.Interface); err != nil {
			return nil, fmt.Errorf("membership: multicast interface %q: %w", cfg.Interface, err)
		}
	}
	uc, err := net.ListenUDP("udp4", laddr)
	if err != nil {
		return nil, fmt.Errorf("membership: listening on %s: %w", bind, err)
	}
	t := &UDPTransport{
		uc:      uc,
		local:   uc.LocalAddr().(*net.UDPAddr).AddrPort(),
		packets: make(chan udpPacket, 256),
		done:    make(chan struct{}),
	}
	t.pool.New = func() any { return new([MaxPacketSize + 1]byte) }
	if cfg.Group.IsValid() {
		if !cfg.Group.Addr().Is4() || !cfg.Group.Addr().IsMulticast() {
			uc.Close()
			return nil, fmt.Errorf("membership: group %s is not an IPv4 multicast address", cfg.Group)
		}
		ttl := cfg.TTL
		if ttl == 0 {
			ttl = 1
		}
		if err := setMulticastOptions(uc, ifi, ttl); err != nil {
			uc.Close()
			return nil, fmt.Errorf("membership: multicast options: %w", err)
		}
		mc, err := net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(cfg.Group))
		if err != nil {
			uc.Close()
			return nil, fmt.Errorf("membership: joining multicast group %s: %w", cfg.Group, err)
		}
		t.mc, t.group = mc, cfg.Group
		_ = mc.SetReadBuffer(1 << 20)
	}
	_ = uc.SetReadBuffer(1 << 20)
	t.wg.Add(1)
	go t.read(uc)
	if t.mc != nil {
		t.wg.Add(1)
		go t.read(t.mc)
	}
	return t, nil
}

func (t *UDPTransport) read(c *net.UDPConn) {
	defer t.wg.Done()
	for {
		buf := t.pool.Get().(*[MaxPacketSize + 1]byte)
		n, from, err := c.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			t.pool.Put(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-t.done:
				return
			default:
				continue // e.g. ECONNREFUSED from an ICMP error: harmless for UDP
			}
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		select {
		case t.packets <- udpPacket{buf: buf, n: n, from: from}:
		case <-t.done:
			t.pool.Put(buf)
			return
		default:
			t.pool.Put(buf) // receiver overloaded: drop, as the kernel would
		}
	}
}

// ReadFrom implements Transport.
func (t *UDPTransport) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	select {
	case pk := <-t.packets:
		n := copy(p, pk.buf[:pk.n])
		t.pool.Put(pk.buf)
		return n, pk.from, nil
	case <-t.done:
		return 0, netip.AddrPort{}, fmt.Errorf("membership: udp transport: %w", net.ErrClosed)
	}
}

// WriteTo implements Transport.
func (t *UDPTransport) WriteTo(p []byte, to netip.AddrPort) error {
	if _, err := t.uc.WriteToUDPAddrPort(p, to); err != nil {
		return fmt.Errorf("membership: udp send to %s: %w", to, err)
	}
	return nil
}

// Broadcast implements Transport: it sends p to the multicast group.
func (t *UDPTransport) Broadcast(p []byte) error {
	if t.mc == nil {
		return ErrNoMulticast
	}
	if _, err := t.uc.WriteToUDPAddrPort(p, t.group); err != nil {
		return fmt.Errorf("membership: multicast send to %s: %w", t.group, err)
	}
	return nil
}

// LocalAddr implements Transport: the unicast socket's address.
func (t *UDPTransport) LocalAddr() netip.AddrPort { return t.local }

// Close implements Transport. It waits for the reader goroutines to end.
func (t *UDPTransport) Close() error {
	var err error
	t.once.Do(func() {
		close(t.done)
		err = t.uc.Close()
		if t.mc != nil {
			err = errors.Join(err, t.mc.Close())
		}
		t.wg.Wait()
	})
	return err
}

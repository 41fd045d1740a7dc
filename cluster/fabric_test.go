package cluster_test

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
)

// fabric carries the membership packets of test members over loopback UDP
// and partitions them: a packet crosses only between members of the same
// side. RPC connections stay up, but a call between two sides fails (the
// members' interceptors refuse it), as it would through a cut network.
type fabric struct {
	mu     sync.Mutex
	side   map[netip.AddrPort]int // by membership address; absent: side 0
	sideID map[nodeid.ID]int      // the same, by node ID
}

func newFabric() *fabric {
	return &fabric{side: make(map[netip.AddrPort]int), sideID: make(map[nodeid.ID]int)}
}

// errCut is what a call across the partition fails with.
var errCut = errors.New("fabric: partitioned")

// attach makes node refuse the calls it would make or serve across the
// partition.
func (f *fabric) attach(node *runtime.Node) {
	self := node.ID()
	check := func(m *runtime.Message) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.sideID[m.Peer] != f.sideID[self] {
			return errCut
		}
		return nil
	}
	node.SetInterceptor(runtime.TransformerFuncs{In: check, Out: check})
}

// listen opens a member's transport on bind.
func (f *fabric) listen(bind string) (membership.Transport, error) {
	udp, err := membership.ListenUDP(membership.UDPConfig{Bind: bind})
	if err != nil {
		return nil, err
	}
	return &fabricPort{UDPTransport: udp, f: f}, nil
}

// split puts each group of members on a side of its own; members not named
// stay on side 0.
func (f *fabric) split(groups ...[]*member) {
	// The addresses are read before f.mu is taken: a membership writes its
	// packets (through crosses, which takes f.mu) holding the lock that
	// Local takes, and the two orders would deadlock.
	side := make(map[netip.AddrPort]int)
	sideID := make(map[nodeid.ID]int)
	for i, g := range groups {
		for _, m := range g {
			side[m.disc.Local().PacketAddr] = i + 1
			sideID[m.node.ID()] = i + 1
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.side, f.sideID = side, sideID
}

// heal makes the network whole.
func (f *fabric) heal() { f.split() }

func (f *fabric) crosses(a, b netip.AddrPort) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.side[a] == f.side[b]
}

type fabricPort struct {
	*membership.UDPTransport
	f *fabric
}

func (p *fabricPort) WriteTo(b []byte, to netip.AddrPort) error {
	if !p.f.crosses(p.LocalAddr(), to) {
		return nil // lost
	}
	return p.UDPTransport.WriteTo(b, to)
}

func (p *fabricPort) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := p.UDPTransport.ReadFrom(b)
		if err != nil || p.f.crosses(from, p.LocalAddr()) {
			return n, from, err
		}
	}
}

package membership

import (
	"errors"
	"net/netip"
)

// Transport carries membership packets. It is the seam that lets tests run nodes on
// an in-memory network (package membershiptest); the default is UDP (ListenUDP).
//
// A Transport must be safe for one goroutine reading while others write. Writes
// must not block for long and must not retain p after returning; a lost packet is
// not an error (UDP semantics).
type Transport interface {
	// ReadFrom waits for the next packet, copies it into p and returns its length
	// and source. A packet longer than p is truncated. After Close it returns an
	// error wrapping net.ErrClosed.
	ReadFrom(p []byte) (n int, from netip.AddrPort, err error)
	// WriteTo sends p to one address.
	WriteTo(p []byte, to netip.AddrPort) error
	// Broadcast sends p to every member of the multicast group, the sender
	// included. It returns ErrNoMulticast if the transport has no group.
	Broadcast(p []byte) error
	// LocalAddr returns the address unicast packets to this node should go to.
	LocalAddr() netip.AddrPort
	// Close releases the transport and unblocks ReadFrom.
	Close() error
}

// ErrNoMulticast is returned by Transport.Broadcast on a transport without
// multicast (unicast seed mode only).
var ErrNoMulticast = errors.New("membership: transport has no multicast group")

package membership

import (
	"net"
	"syscall"
)

// setMulticastOptions sets the outgoing interface, TTL and loopback of multicast
// packets sent from c.
func setMulticastOptions(c *net.UDPConn, ifi *net.Interface, ttl int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		if serr = syscall.SetsockoptInt(s, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, ttl); serr != nil {
			return
		}
		// Loopback on: other nodes on this host must hear us (our own echo is
		// recognised by its sender ID and ignored).
		if serr = syscall.SetsockoptInt(s, syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, 1); serr != nil {
			return
		}
		if ifi != nil {
			serr = syscall.SetsockoptIPMreqn(s, syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF,
				&syscall.IPMreqn{Ifindex: int32(ifi.Index)})
		}
	})
	if err != nil {
		return err
	}
	return serr
}

//go:build !linux

package membership

import (
	"errors"
	"net"
)

// setMulticastOptions is implemented on Linux only; elsewhere the system defaults
// (TTL 1, loopback on, interface chosen by the routing table) apply.
func setMulticastOptions(c *net.UDPConn, ifi *net.Interface, ttl int) error {
	if ifi != nil || ttl != 1 {
		return errors.New("choosing the multicast interface or TTL is supported on Linux only")
	}
	return nil
}

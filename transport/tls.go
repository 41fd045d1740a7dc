package transport

import (
	"crypto/tls"
	"net"
)

// tlsClient wraps nc in a TLS client. When cfg names no server, the host part
// of addr is used for verification.
func tlsClient(nc net.Conn, cfg *tls.Config, addr string) *tls.Conn {
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	return tls.Client(nc, cfg)
}

package transport

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// Config configures the connections of one node. The zero value of every
// field but Self selects its default.
type Config struct {
	// Self is this node's ID, sent in the handshake. Required.
	Self nodeid.ID
	// Label is the cluster label; both ends of a connection must have the same.
	Label string
	// TLS, when set, wraps every connection in TLS. For mutual
	// authentication set Certificates and RootCAs, and on the listening side
	// ClientAuth to tls.RequireAndVerifyClientCert with ClientCAs.
	TLS *tls.Config
	// HandshakeTimeout bounds the whole handshake, TLS included (default 5 s).
	HandshakeTimeout time.Duration
	// KeepaliveInterval is how long the connection may be idle before a ping
	// is sent (default 1 s).
	KeepaliveInterval time.Duration
	// KeepaliveTimeout is how long the peer may stay silent before the
	// connection is closed with ErrPeerTimeout (default 5 s, and at least
	// twice KeepaliveInterval).
	KeepaliveTimeout time.Duration
	// MaxMessageSize caps one reassembled message (default 64 MiB).
	MaxMessageSize int
	// MaxPartialBytes caps the memory held in partly received messages on
	// one connection: their buffers, plus a small overhead for each, so that
	// many empty fragments count too (default 2 × MaxMessageSize).
	MaxPartialBytes int
	// MaxQueuedBytes is how many bytes may wait in the write queue before Send
	// blocks (default 8 MiB). A message larger than half of it counts as
	// half, so that one big message leaves room for small ones.
	MaxQueuedBytes int
	// WriteTimeout bounds each write to the socket, so that a peer that stops
	// reading cannot block Close forever (default 10 s).
	WriteTimeout time.Duration
	// Logger receives the reasons connections close and handshakes fail;
	// nil discards them.
	Logger *slog.Logger
	// Dial, if set, opens the network connection that Dial runs its
	// handshake on, in place of a TCP dial: an in-memory network in a
	// simulation, a proxy, a custom resolver. It must honour ctx. Nil dials
	// TCP with a net.Dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// version is the protocol version sent in the handshake: ProtocolVersion,
	// except in tests of the version check.
	version uint8
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.HandshakeTimeout <= 0 {
		d.HandshakeTimeout = 5 * time.Second
	}
	if d.KeepaliveInterval <= 0 {
		d.KeepaliveInterval = time.Second
	}
	if d.KeepaliveTimeout <= 0 {
		d.KeepaliveTimeout = 5 * time.Second
	}
	if d.KeepaliveTimeout < 2*d.KeepaliveInterval {
		d.KeepaliveTimeout = 2 * d.KeepaliveInterval
	}
	if d.MaxMessageSize <= 0 {
		d.MaxMessageSize = 64 << 20
	}
	if d.MaxPartialBytes <= 0 {
		d.MaxPartialBytes = 2 * d.MaxMessageSize
	}
	if d.MaxQueuedBytes <= 0 {
		d.MaxQueuedBytes = 8 << 20
	}
	if d.WriteTimeout <= 0 {
		d.WriteTimeout = 10 * time.Second
	}
	if d.version == 0 {
		d.version = ProtocolVersion
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

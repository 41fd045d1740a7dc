package transport

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/nodeid"
)

// Config configures the connections of one node. Self is required, and so is
// a way to authenticate peers — Keyring, TLS with node certificates, or the
// explicit opt-out Insecure; the zero value of every other field selects its
// default.
type Config struct {
	// Self is this node's ID, sent in the handshake. Required.
	Self nodeid.ID
	// Label is the cluster label; both ends of a connection must have the same.
	Label string
	// Keyring holds the cluster's shared keys (the same ring membership signs
	// its heartbeats with, so one rotation rotates both). When both ends
	// have one, each proves to the other that it holds a key of the ring:
	// an HMAC over both sides' fresh nonces, the protocol version, the label,
	// both node ids and, with TLS, the TLS session, so a recorded handshake
	// cannot be replayed. The dialer proves first; the acceptor proves only
	// to a dialer that did. Without TLS this authenticates the start of the
	// connection only: an attacker on the path could take over the TCP
	// connection afterwards; use TLS where that matters.
	Keyring *keyring.Ring
	// TLS, when set, wraps every connection in TLS. For mutual
	// authentication set Certificates and RootCAs, and on the listening side
	// ClientAuth to tls.RequireAndVerifyClientCert with ClientCAs. A peer
	// whose verified certificate names a node (NodeURI, NewNodeCertificate)
	// must claim that node's id, or it is refused; such a certificate
	// authenticates the peer without a Keyring.
	TLS *tls.Config
	// Insecure admits peers that authenticate neither with the cluster key
	// nor with a certificate naming their node: anyone who can reach the
	// port becomes a peer and can call every service. It is an explicit
	// opt-out for tests and closed networks; without it, Listen and Dial
	// refuse a Config that has neither Keyring nor TLS. A peer that does
	// announce a key must still prove it, and a certificate naming another
	// node is still refused.
	Insecure bool
	// MaxPendingHandshakes caps the handshakes a Listener runs at once; a
	// connection arriving beyond it is closed at once (default 128; a
	// quarter of it, at least 4, from any one source address).
	MaxPendingHandshakes int
	// MaxConns caps the connections a Listener has accepted that are still
	// open (default 512): beyond it, a dialer is refused in the handshake,
	// with a reason that says so, until one closes (only the handshakes in
	// progress then may still complete). Each costs the node about 150 KiB
	// and three goroutines, and a member can open as many as it likes, each
	// with a node id of its own. Connections the node dials do not count.
	MaxConns int
	// HandshakeTimeout bounds the whole handshake, TLS included (default 5 s).
	HandshakeTimeout time.Duration
	// KeepaliveInterval is how long the connection may be idle before a ping
	// is sent (default 1 s).
	KeepaliveInterval time.Duration
	// KeepaliveTimeout is how long the peer may stay silent before the
	// connection is closed with ErrPeerTimeout (default 15 s, and at least
	// twice KeepaliveInterval). It is long enough for TCP to get through
	// heavy packet loss, whose retransmissions back off to seconds: with
	// 60 % of one peer's packets lost, 5 s of silence ended connections
	// that were still working (scripts/loss-netns.sh). A cluster does not
	// wait for it: the membership's verdict on a dead member closes its
	// connections within about a second.
	KeepaliveTimeout time.Duration
	// MaxMessageSize caps one reassembled message (default 64 MiB): a
	// peer that sends a larger one is disconnected with a *ProtocolError.
	// Each end announces its cap in the handshake, and Send refuses with
	// ErrTooLarge, the connection staying up, a message over the smaller
	// of the two caps; a peer that announces none (an older version) is
	// assumed to have the default.
	MaxMessageSize int
	// MaxPartialBytes caps the memory held in partly received messages on
	// one connection: their buffers, plus a small overhead for each, so that
	// many empty fragments count too (default 2 × MaxMessageSize).
	MaxPartialBytes int
	// Budget, when set, bounds the memory held in partly received messages
	// by all the connections that share it (give one Budget to all of a
	// node's), with a fair share per connection; see Budget. Nil: only
	// MaxPartialBytes bounds each connection.
	Budget *Budget
	// MaxQueuedBytes is how many bytes may wait in the write queue before Send
	// blocks (default 8 MiB). A message larger than half of it counts as
	// half, so that one big message leaves room for small ones.
	MaxQueuedBytes int
	// StallTimeout is how long a Send may wait for queue space while
	// nothing at all leaves the queue; then the peer, which reads nothing,
	// is disconnected with ErrPeerStalled, and the memory its messages hold
	// is freed (default 5 s).
	StallTimeout time.Duration
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

// defaultMaxMessage is the default MaxMessageSize, and the cap assumed of
// a peer that announces none.
const defaultMaxMessage = 64 << 20

func (c *Config) withDefaults() Config {
	d := *c
	if d.HandshakeTimeout <= 0 {
		d.HandshakeTimeout = 5 * time.Second
	}
	if d.KeepaliveInterval <= 0 {
		d.KeepaliveInterval = time.Second
	}
	if d.KeepaliveTimeout <= 0 {
		d.KeepaliveTimeout = 15 * time.Second
	}
	if d.KeepaliveTimeout < 2*d.KeepaliveInterval {
		d.KeepaliveTimeout = 2 * d.KeepaliveInterval
	}
	if d.MaxMessageSize <= 0 {
		d.MaxMessageSize = defaultMaxMessage
	}
	if d.MaxPartialBytes <= 0 {
		d.MaxPartialBytes = 2 * d.MaxMessageSize
	}
	if d.MaxQueuedBytes <= 0 {
		d.MaxQueuedBytes = 8 << 20
	}
	if d.StallTimeout <= 0 {
		d.StallTimeout = 5 * time.Second
	}
	if d.WriteTimeout <= 0 {
		d.WriteTimeout = 10 * time.Second
	}
	if d.MaxConns <= 0 {
		d.MaxConns = 512
	}
	if d.MaxPendingHandshakes <= 0 {
		d.MaxPendingHandshakes = 128
	}
	if d.version == 0 {
		d.version = ProtocolVersion
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

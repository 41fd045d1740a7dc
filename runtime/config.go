package runtime

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/nodeid"
)

// NodeID identifies a node; see package nodeid.
type NodeID = nodeid.ID

// Config configures a Node. A node admits only members: it needs Keyring
// (the cluster key), or TLS with node certificates, or the explicit opt-out
// Insecure; NewNode refuses a Config with none of them. Addr is needed to
// serve; the zero value of every other field selects its default.
type Config struct {
	// Name is a human-readable name for logs and diagrams ("Node1").
	Name string
	// ID is the node's identity; zero picks a random one.
	ID NodeID
	// Addr is the TCP address to listen on ("127.0.0.1:0" picks a port).
	// Empty: the node does not listen, unless given a listener by Serve,
	// and only dials.
	Addr string
	// Dial, if set, opens the connections the node dials, in place of TCP
	// (see transport.Config.Dial); with Serve it puts a node on another
	// network, such as a simulation's in-memory one.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Label is the cluster label; nodes with different labels refuse to connect.
	Label string
	// Keyring holds the cluster's shared keys. Every connection's handshake
	// proves that both ends hold one (mutual challenge–response, see
	// transport.Config.Keyring), so only members connect. Give membership
	// the same ring (membership.Config.Keyring): one keyring.Ring.Set
	// rotates both.
	Keyring *keyring.Ring
	// TLS, when set, secures every connection (see transport.Config.TLS).
	// A peer whose certificate names a node (transport.NewNodeCertificate)
	// must be that node.
	TLS *tls.Config
	// Insecure lets the node run without Keyring or TLS: any program that
	// can reach its port is then a peer and can call every registered
	// service. Only for tests and trusted networks.
	Insecure bool
	// KeepaliveInterval and KeepaliveTimeout tune dead-peer detection on
	// connections (defaults 1 s and 15 s; see transport.Config).
	KeepaliveInterval, KeepaliveTimeout time.Duration
	// MaxMessageSize caps one message in either direction (default 64 MiB):
	// the encoded arguments or results of a call, or a chunk of a stream.
	// Each node announces its cap when a connection opens, and sends
	// nothing over the smaller of its own cap and its peer's: a call whose
	// arguments or results exceed it fails with ErrTooLarge, the
	// connection staying up, and streams are cut into chunks that fit. A
	// peer of an older version, which announces no cap, is assumed to
	// have the default. Give all the nodes of a cluster the same cap: a
	// node knows only its neighbours' caps, and a message relayed to a
	// non-neighbour fails at the first link where it exceeds a cap.
	MaxMessageSize int
	// MaxPeerMemory caps the memory that all the node's connections together
	// hold for their peers, with a fair share per connection (see
	// transport.Budget): partly received messages (a connection that asks
	// for more is closed), the arguments of calls being served (a call
	// beyond the share fails with ErrOverloaded, not run), and replies not
	// yet written (one peer may be owed at most half; a reply beyond it is
	// replaced by ErrOverloaded, the call having run). A peer that does not
	// read its replies is not read either once it is owed a quarter of the
	// budget or 8 MiB, and is disconnected when nothing can be written to
	// it for 5 s (default 1.5 × MaxMessageSize, 96 MiB).
	MaxPeerMemory int
	// MaxConns caps the connections from other nodes this node holds open
	// at once; beyond it, a node that dials it is refused in the handshake
	// until one closes (default 512, enough for a bus of 128 members; see
	// transport.Config.MaxConns).
	MaxConns int
	// MaxConcurrentCalls caps the calls one peer may have in progress on
	// this node, and, apart, those it may have relayed through this node
	// to others; calls beyond it fail with ErrOverloaded (default 4096).
	MaxConcurrentCalls int
	// MaxExportsPerPeer caps the objects of this node that one peer may
	// hold by reference; beyond it, passing one more fails with
	// ErrTooManyRefs (default 65536).
	MaxExportsPerPeer int
	// MaxStreamsPerPeer caps the streams this node exchanges with one
	// peer, in each direction, that have not ended (read to the end, or
	// closed, by the receiver); beyond it, sending one more (an io.Reader
	// argument or result) fails with ErrTooManyRefs and closes that
	// reader, and one more received is refused: the call that carries it
	// fails with ErrTooManyRefs (default 1024).
	MaxStreamsPerPeer int
	// Limits bound decoded arguments and results.
	Limits DecodeLimits
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.ID == nodeid.None {
		d.ID = nodeid.New()
	}
	if d.Name == "" {
		d.Name = d.ID.String()
	}
	if d.MaxConcurrentCalls <= 0 {
		d.MaxConcurrentCalls = 4096
	}
	if d.MaxExportsPerPeer <= 0 {
		d.MaxExportsPerPeer = 1 << 16
	}
	if d.MaxStreamsPerPeer <= 0 {
		d.MaxStreamsPerPeer = 1 << 10
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

package transport

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by operations on a connection or listener that has
// been closed.
var ErrClosed = errors.New("transport: connection closed")

// ErrPeerTimeout is the cause of a connection closed because the peer sent
// nothing, not even a keepalive pong, for Config.KeepaliveTimeout.
var ErrPeerTimeout = errors.New("transport: peer timed out (no keepalive)")

// ErrPeerGone is the cause of a connection closed by the peer.
var ErrPeerGone = errors.New("transport: connection closed by peer")

// A ProtocolError reports input that breaks the wire protocol: a malformed
// frame, an oversized length, an unknown type. The connection that received
// it is closed.
type ProtocolError struct {
	Reason string
}

func (e *ProtocolError) Error() string { return "transport: protocol error: " + e.Reason }

// A HandshakeError reports a failed handshake: a wrong magic, an unsupported
// protocol version, a different cluster label or an unexpected node. Both
// sides see one: the side that refuses tells the other why.
type HandshakeError struct {
	Addr   string // the remote address
	Reason string // what did not match
	Remote bool   // the peer refused (its reason), rather than this side
}

func (e *HandshakeError) Error() string {
	who := "refused"
	if e.Remote {
		who = "refused by peer"
	}
	return fmt.Sprintf("transport: handshake with %s %s: %s", e.Addr, who, e.Reason)
}

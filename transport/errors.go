package transport

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by operations on a connection or listener that has
// been closed.
var ErrClosed = errors.New("transport: connection closed")

// ErrNoAuth is returned by Listen, Dial and Config.Validate for a
// configuration with no way to authenticate peers: no Keyring, no TLS, and
// not Insecure. Trellis admits only members by default.
var ErrNoAuth = errors.New("transport: no Keyring, no TLS and not Insecure: set Keyring (the cluster key), or TLS with node certificates, or Insecure: true to admit any peer that can connect")

// ErrTooLarge is the cause of a Send refused because the message exceeds
// Config.MaxMessageSize or the peer's, whichever is smaller (see
// Conn.MaxSend). The connection stays up.
var ErrTooLarge = errors.New("transport: message exceeds MaxMessageSize")

// ErrOverBudget is the cause of a SendReply or Charge refused because the
// connection's peer holds its share of the node's Budget already (see
// Budget). The connection stays up.
var ErrOverBudget = errors.New("transport: over this peer's share of the node's memory budget")

// ErrPeerTimeout is the cause of a connection closed because the peer sent
// nothing, not even a keepalive pong, for Config.KeepaliveTimeout.
var ErrPeerTimeout = errors.New("transport: peer timed out (no keepalive)")

// ErrPeerStalled is the cause of a connection closed because the peer read
// nothing for Config.StallTimeout while the write queue was full.
var ErrPeerStalled = errors.New("transport: peer stalled (reads nothing)")

// ErrPeerGone is the cause of a connection closed by the peer.
var ErrPeerGone = errors.New("transport: connection closed by peer")

// A ProtocolError reports input that breaks the wire protocol: a malformed
// frame, an oversized length, an unknown type. The connection that received
// it is closed.
type ProtocolError struct {
	Reason string
}

// Error returns the reason with the package's prefix.
func (e *ProtocolError) Error() string { return "transport: protocol error: " + e.Reason }

// A HandshakeError reports a failed handshake: a wrong magic, an unsupported
// protocol version, a different cluster label or an unexpected node, or the
// connection failing or timing out before the handshake completed. When one
// side refuses the other, both sides get one: the refusing side sends its
// reason, which the other reports with Remote set.
type HandshakeError struct {
	Addr   string // the remote address
	Reason string // what did not match, or what failed
	Remote bool   // the peer refused (its reason), rather than this side
	Err    error  // the underlying error (I/O, timeout, cancellation), if any
}

// Error says with whom the handshake failed, which side refused, and why.
func (e *HandshakeError) Error() string {
	switch {
	case e.Remote:
		return fmt.Sprintf("transport: handshake with %s refused by peer: %s", e.Addr, e.Reason)
	case e.Err != nil:
		return fmt.Sprintf("transport: handshake with %s failed: %s: %v", e.Addr, e.Reason, e.Err)
	}
	return fmt.Sprintf("transport: handshake with %s refused: %s", e.Addr, e.Reason)
}

// Unwrap returns the underlying error, so that errors.Is recognises a
// timeout (os.ErrDeadlineExceeded) or a cancellation (context.Canceled).
func (e *HandshakeError) Unwrap() error { return e.Err }

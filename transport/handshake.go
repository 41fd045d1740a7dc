package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/trellisrpc/trellis/nodeid"
)

// Magic opens every Trellis connection.
const Magic = "TRLS"

// ProtocolVersion is the version of the wire protocol spoken by this package.
const ProtocolVersion = 1

// maxLabel caps the cluster label (it travels with a one-byte length).
const maxLabel = 255

// Handshake status codes sent by the accepting side.
const (
	statusOK uint8 = iota
	statusRefused
)

// hello is what each side sends: the dialer first, then the acceptor, which
// adds a status and, when it refuses, the reason.
type hello struct {
	version uint8
	status  uint8
	label   string
	self    nodeid.ID
	want    nodeid.ID // the node the sender expects at the other end, or None
	reason  string
}

// encodeHello lays out: magic[4] version[1] status[1] labelLen[1] label
// self[8] want[8] reasonLen[1] reason. A reason longer than 255 bytes is
// cut.
func encodeHello(h hello) []byte {
	b := make([]byte, 0, 4+3+len(h.label)+16+1+len(h.reason))
	b = append(b, Magic...)
	b = append(b, h.version, h.status, byte(len(h.label)))
	b = append(b, h.label...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.self))
	b = binary.BigEndian.AppendUint64(b, uint64(h.want))
	reason := h.reason
	if len(reason) > 255 {
		reason = reason[:252] + "..."
	}
	b = append(b, byte(len(reason)))
	return append(b, reason...)
}

// readHello reads and decodes one hello, never reading more than its fields
// allow (the label and reason lengths are one byte each). The magic is
// checked as soon as its four bytes have arrived.
func readHello(r io.Reader) (hello, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return hello{}, err
	}
	if string(magic[:]) != Magic {
		return hello{}, errBadMagic{got: magic}
	}
	var fixed [3]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return hello{}, err
	}
	h := hello{version: fixed[0], status: fixed[1]}
	label := make([]byte, fixed[2])
	if _, err := io.ReadFull(r, label); err != nil {
		return hello{}, err
	}
	h.label = string(label)
	var ids [17]byte
	if _, err := io.ReadFull(r, ids[:]); err != nil {
		return hello{}, err
	}
	h.self = nodeid.ID(binary.BigEndian.Uint64(ids[0:8]))
	h.want = nodeid.ID(binary.BigEndian.Uint64(ids[8:16]))
	reason := make([]byte, ids[16])
	if _, err := io.ReadFull(r, reason); err != nil {
		return hello{}, err
	}
	h.reason = string(reason)
	return h, nil
}

type errBadMagic struct{ got [4]byte }

func (e errBadMagic) Error() string {
	return fmt.Sprintf("wrong magic %q (want %q): not a Trellis peer", e.got[:], Magic)
}

// helloError turns a failure to exchange hellos into a *HandshakeError.
func helloError(addr, doing string, err error) error {
	var bad errBadMagic
	switch {
	case errors.As(err, &bad):
		return &HandshakeError{Addr: addr, Reason: bad.Error()}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &HandshakeError{Addr: addr, Reason: doing + ": timed out", Err: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &HandshakeError{Addr: addr, Reason: doing + ": connection closed by peer", Err: err}
	}
	return &HandshakeError{Addr: addr, Reason: doing, Err: err}
}

// roles names the two ends in handshake reasons, which the refusing side
// sends to the other: "we"/"peer" would read backwards there.
func roles(dialer bool) (us, them string) {
	if dialer {
		return "dialer", "acceptor"
	}
	return "acceptor", "dialer"
}

// check returns why the peer's hello is unacceptable, or "". want is the
// node we expect at the other end, or None; dialer tells which end we are.
func (c *Config) check(peer hello, want nodeid.ID, dialer bool) string {
	us, them := roles(dialer)
	switch {
	case peer.version != c.version:
		return fmt.Sprintf("protocol version mismatch: %s speaks %d, %s speaks %d", them, peer.version, us, c.version)
	case peer.label != c.Label:
		return fmt.Sprintf("cluster label mismatch: %s has %s, %s has %s", them, quoteLabel(peer.label), us, quoteLabel(c.Label))
	case peer.self == nodeid.None:
		return fmt.Sprintf("the %s sent the zero node id", them)
	case peer.self == c.Self:
		return fmt.Sprintf("both ends have node id %s (a connection to self?)", c.Self)
	case want != nodeid.None && peer.self != want:
		return fmt.Sprintf("the %s expected node %s, the %s is node %s", us, want, them, peer.self)
	case peer.want != nodeid.None && peer.want != c.Self:
		return fmt.Sprintf("the %s expected node %s, the %s is node %s", them, peer.want, us, c.Self)
	}
	return ""
}

// quoteLabel quotes a label for a reason, cut so that a reason naming two
// labels fits the hello's 255 bytes.
func quoteLabel(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

// clientHandshake runs the dialer's side: send our hello, read the
// acceptor's, and check it. The caller bounds it with a deadline on nc.
func clientHandshake(nc net.Conn, cfg *Config, want nodeid.ID) (nodeid.ID, error) {
	addr := nc.RemoteAddr().String()
	if _, err := nc.Write(encodeHello(hello{version: cfg.version, label: cfg.Label, self: cfg.Self, want: want})); err != nil {
		return nodeid.None, helloError(addr, "sending hello", err)
	}
	peer, err := readHello(nc)
	if err != nil {
		return nodeid.None, helloError(addr, "reading the acceptor's hello", err)
	}
	if peer.status != statusOK {
		return nodeid.None, &HandshakeError{Addr: addr, Reason: peer.reason, Remote: true}
	}
	if reason := cfg.check(peer, want, true); reason != "" {
		return nodeid.None, &HandshakeError{Addr: addr, Reason: reason}
	}
	return peer.self, nil
}

// serverHandshake runs the acceptor's side: read the dialer's hello, answer
// with ours, refusing with a reason when it does not match. The caller
// bounds it with a deadline on nc.
func serverHandshake(nc net.Conn, cfg *Config) (nodeid.ID, error) {
	addr := nc.RemoteAddr().String()
	peer, err := readHello(nc)
	if err != nil {
		return nodeid.None, helloError(addr, "reading the dialer's hello", err)
	}
	reply := hello{version: cfg.version, label: cfg.Label, self: cfg.Self, want: peer.self}
	reason := cfg.check(peer, nodeid.None, false)
	if reason != "" {
		reply.status, reply.reason = statusRefused, reason
	}
	if _, err := nc.Write(encodeHello(reply)); err != nil {
		return nodeid.None, helloError(addr, "sending hello", err)
	}
	if reason != "" {
		return nodeid.None, &HandshakeError{Addr: addr, Reason: reason}
	}
	return peer.self, nil
}

package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

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
// self[8] want[8] reasonLen[1] reason.
func encodeHello(h hello) []byte {
	b := make([]byte, 0, 4+3+len(h.label)+16+1+len(h.reason))
	b = append(b, Magic...)
	b = append(b, h.version, h.status, byte(len(h.label)))
	b = append(b, h.label...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.self))
	b = binary.BigEndian.AppendUint64(b, uint64(h.want))
	reason := h.reason
	if len(reason) > 255 {
		reason = reason[:255]
	}
	b = append(b, byte(len(reason)))
	return append(b, reason...)
}

// readHello reads and decodes one hello, never reading more than its fields
// allow (the label and reason lengths are one byte each).
func readHello(r io.Reader) (hello, error) {
	var fixed [7]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return hello{}, fmt.Errorf("reading hello: %w", err)
	}
	if string(fixed[:4]) != Magic {
		return hello{}, errBadMagic{got: fixed[:4]}
	}
	h := hello{version: fixed[4], status: fixed[5]}
	label := make([]byte, fixed[6])
	if _, err := io.ReadFull(r, label); err != nil {
		return hello{}, fmt.Errorf("reading hello label: %w", err)
	}
	h.label = string(label)
	var ids [17]byte
	if _, err := io.ReadFull(r, ids[:]); err != nil {
		return hello{}, fmt.Errorf("reading hello ids: %w", err)
	}
	h.self = nodeid.ID(binary.BigEndian.Uint64(ids[0:8]))
	h.want = nodeid.ID(binary.BigEndian.Uint64(ids[8:16]))
	reason := make([]byte, ids[16])
	if _, err := io.ReadFull(r, reason); err != nil {
		return hello{}, fmt.Errorf("reading hello reason: %w", err)
	}
	h.reason = string(reason)
	return h, nil
}

type errBadMagic struct{ got []byte }

func (e errBadMagic) Error() string {
	return fmt.Sprintf("wrong magic %q (want %q): not a Trellis peer", e.got, Magic)
}

// check returns why the peer's hello is unacceptable, or "".
func (c *Config) check(peer hello, want nodeid.ID) string {
	switch {
	case peer.version != ProtocolVersion:
		return fmt.Sprintf("protocol version mismatch: we speak %d, peer speaks %d", ProtocolVersion, peer.version)
	case peer.label != c.Label:
		return fmt.Sprintf("cluster label mismatch: we are %q, peer is %q", c.Label, peer.label)
	case peer.self == nodeid.None:
		return "peer sent the zero node id"
	case peer.self == c.Self:
		return fmt.Sprintf("peer has our own node id %s (a connection to self?)", c.Self)
	case want != nodeid.None && peer.self != want:
		return fmt.Sprintf("expected node %s, found node %s", want, peer.self)
	case peer.want != nodeid.None && peer.want != c.Self:
		return fmt.Sprintf("peer expected node %s, we are %s", peer.want, c.Self)
	}
	return ""
}

// clientHandshake runs the dialer's side: send our hello, read the
// acceptor's, and check it.
func clientHandshake(nc net.Conn, cfg *Config, want nodeid.ID) (nodeid.ID, error) {
	addr := nc.RemoteAddr().String()
	nc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(encodeHello(hello{version: ProtocolVersion, label: cfg.Label, self: cfg.Self, want: want})); err != nil {
		return nodeid.None, fmt.Errorf("transport: handshake with %s: %w", addr, err)
	}
	peer, err := readHello(nc)
	if err != nil {
		var bad errBadMagic
		if errors.As(err, &bad) {
			return nodeid.None, &HandshakeError{Addr: addr, Reason: bad.Error()}
		}
		return nodeid.None, fmt.Errorf("transport: handshake with %s: %w", addr, err)
	}
	if peer.status != statusOK {
		return nodeid.None, &HandshakeError{Addr: addr, Reason: peer.reason, Remote: true}
	}
	if reason := cfg.check(peer, want); reason != "" {
		return nodeid.None, &HandshakeError{Addr: addr, Reason: reason}
	}
	return peer.self, nil
}

// serverHandshake runs the acceptor's side: read the dialer's hello, answer
// with ours, refusing with a reason when it does not match.
func serverHandshake(nc net.Conn, cfg *Config) (nodeid.ID, error) {
	addr := nc.RemoteAddr().String()
	nc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	defer nc.SetDeadline(time.Time{})
	peer, err := readHello(nc)
	if err != nil {
		var bad errBadMagic
		if errors.As(err, &bad) {
			return nodeid.None, &HandshakeError{Addr: addr, Reason: bad.Error()}
		}
		return nodeid.None, fmt.Errorf("transport: handshake with %s: %w", addr, err)
	}
	reply := hello{version: ProtocolVersion, label: cfg.Label, self: cfg.Self, want: peer.self}
	reason := cfg.check(peer, nodeid.None)
	if reason != "" {
		reply.status, reply.reason = statusRefused, reason
	}
	if _, err := nc.Write(encodeHello(reply)); err != nil {
		return nodeid.None, fmt.Errorf("transport: handshake with %s: %w", addr, err)
	}
	if reason != "" {
		return nodeid.None, &HandshakeError{Addr: addr, Reason: reason}
	}
	return peer.self, nil
}

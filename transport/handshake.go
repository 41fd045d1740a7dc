package transport

import (
	"crypto/rand"
	"crypto/tls"
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
// Version 2 added the authentication of both ends by the cluster key.
const ProtocolVersion = 2

// maxLabel caps the cluster label (it travels with a one-byte length).
const maxLabel = 255

// nonceLen is the length of each side's fresh handshake nonce, and proofLen
// that of a proof (an HMAC-SHA256).
const (
	nonceLen = 32
	proofLen = 32
)

// Handshake status codes sent by the accepting side.
const (
	statusOK uint8 = iota
	statusRefused
)

// Hello flags.
const (
	// flagKey: the sender holds the cluster key and will prove it.
	flagKey uint8 = 1 << iota
	// flagSettings: the sender exchanges settings (see settings). The
	// dialer sets it in every hello, the acceptor only in answer to a
	// dialer that did. When both hellos carry it, each side sends its
	// settings once it has seen both: the acceptor right after its hello
	// (when it admits the dialer), the dialer right after reading that
	// hello, before its proof. A peer that does not set it (protocol 2
	// before settings) sends none and is assumed to have the default
	// settings.
	flagSettings
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
	// Since version 2:
	flags uint8
	nonce [nonceLen]byte
	// settings is the sender's encoded settings, which follow the hellos
	// when both carry flagSettings (not part of the hello's encoding).
	settings []byte
}

// settings are what each end of a connection announces of itself after
// the hellos (see flagSettings).
type settings struct {
	// maxMessage is the sender's Config.MaxMessageSize: the largest
	// message it reads. The other end sends nothing larger.
	maxMessage uint64
}

// minSettingsLen is the length of the settings this version knows;
// maxSettingsLen bounds what readSettings reads.
const (
	minSettingsLen = 8
	maxSettingsLen = 1 + 255
)

// encodeSettings lays out: length[1], then the fields: maxMessage[8]. A
// reader ignores the bytes after the fields it knows, so that a later
// version may append fields.
func encodeSettings(s settings) []byte {
	b := make([]byte, 0, 1+minSettingsLen)
	b = append(b, minSettingsLen)
	return binary.BigEndian.AppendUint64(b, s.maxMessage)
}

// errBadSettings reports settings that this version cannot read.
type errBadSettings struct{ reason string }

func (e errBadSettings) Error() string { return "malformed settings: " + e.reason }

// readSettings reads one settings block, never more than maxSettingsLen
// bytes, and returns it decoded and as read.
func readSettings(r io.Reader) (settings, []byte, error) {
	var buf [maxSettingsLen]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return settings{}, nil, err
	}
	raw := buf[:1+int(buf[0])]
	if _, err := io.ReadFull(r, raw[1:]); err != nil {
		return settings{}, nil, err
	}
	if len(raw) < 1+minSettingsLen {
		return settings{}, nil, errBadSettings{fmt.Sprintf("%d bytes, want at least %d", len(raw)-1, minSettingsLen)}
	}
	s := settings{maxMessage: binary.BigEndian.Uint64(raw[1:])}
	if s.maxMessage == 0 {
		return settings{}, nil, errBadSettings{"a message cap of 0 bytes"}
	}
	return s, append([]byte(nil), raw...), nil
}

// maxHelloLen bounds an encoded hello: what readHello may read.
const maxHelloLen = 4 + 3 + maxLabel + 16 + 1 + 255 + 1 + nonceLen

// encodeHello lays out: magic[4] version[1] status[1] labelLen[1] label
// self[8] want[8] reasonLen[1] reason, then, from version 2 on, flags[1]
// nonce[32]. The version-1 prefix is unchanged, so that a peer of either
// version reads the other's version and says it does not match. A reason
// longer than 255 bytes is cut.
func encodeHello(h hello) []byte {
	b := make([]byte, 0, 4+3+len(h.label)+16+1+len(h.reason)+1+nonceLen)
	b = append(b, Magic...)
	b = append(b, h.version, h.status, byte(len(h.label)))
	b = append(b, h.label...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.self))
	b = binary.BigEndian.AppendUint64(b, uint64(h.want))
	b = appendReason(b, h.reason)
	if h.version >= 2 {
		b = append(b, h.flags)
		b = append(b, h.nonce[:]...)
	}
	return b
}

// appendReason appends a reason with its one-byte length, cut to fit.
func appendReason(b []byte, reason string) []byte {
	if len(reason) > 255 {
		reason = reason[:252] + "..."
	}
	b = append(b, byte(len(reason)))
	return append(b, reason...)
}

// readHello reads and decodes one hello, never reading more than its fields
// allow (maxHelloLen). The magic is checked as soon as its four bytes have
// arrived. The version-2 fields are read only from a hello of version
// ours, so a hello of any other version is read whole as far as its
// version-1 prefix goes, and refused for its version.
func readHello(r io.Reader, ours uint8) (hello, error) {
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
	var buf [255]byte
	label := buf[:fixed[2]]
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
	reason := buf[:ids[16]]
	if _, err := io.ReadFull(r, reason); err != nil {
		return hello{}, err
	}
	h.reason = string(reason)
	if h.version != ours || h.version < 2 {
		return h, nil
	}
	var ext [1 + nonceLen]byte
	if _, err := io.ReadFull(r, ext[:]); err != nil {
		return hello{}, err
	}
	h.flags = ext[0]
	copy(h.nonce[:], ext[1:])
	return h, nil
}

// A verdict is the acceptor's last word in a keyed handshake, after it
// checked the dialer's proof: its own proof, or a refusal with a reason.
type verdict struct {
	status uint8
	reason string
	proof  [proofLen]byte // when status is statusOK
}

// maxVerdictLen bounds an encoded verdict.
const maxVerdictLen = 1 + 1 + 255 + proofLen

// encodeVerdict lays out: status[1] reasonLen[1] reason, then proof[32]
// when the status is OK.
func encodeVerdict(v verdict) []byte {
	b := make([]byte, 0, 2+len(v.reason)+proofLen)
	b = append(b, v.status)
	b = appendReason(b, v.reason)
	if v.status == statusOK {
		b = append(b, v.proof[:]...)
	}
	return b
}

// readVerdict reads one verdict, never more than maxVerdictLen bytes.
func readVerdict(r io.Reader) (verdict, error) {
	var fixed [2]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return verdict{}, err
	}
	v := verdict{status: fixed[0]}
	var buf [255]byte
	reason := buf[:fixed[1]]
	if _, err := io.ReadFull(r, reason); err != nil {
		return verdict{}, err
	}
	v.reason = string(reason)
	if v.status == statusOK {
		if _, err := io.ReadFull(r, v.proof[:]); err != nil {
			return verdict{}, err
		}
	}
	return v, nil
}

type errBadMagic struct{ got [4]byte }

func (e errBadMagic) Error() string {
	return fmt.Sprintf("wrong magic %q (want %q): not a Trellis peer", e.got[:], Magic)
}

// helloError turns a failure to exchange handshake messages into a
// *HandshakeError.
func helloError(addr, doing string, err error) error {
	var bad errBadMagic
	var badSettings errBadSettings
	switch {
	case errors.As(err, &bad):
		return &HandshakeError{Addr: addr, Reason: bad.Error()}
	case errors.As(err, &badSettings):
		return &HandshakeError{Addr: addr, Reason: doing + ": " + badSettings.Error()}
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
// node we expect at the other end, or None; dialer tells which end we are;
// certID is the node id the peer's verified certificate names, or None.
func (c *Config) check(peer hello, want nodeid.ID, dialer bool, certID nodeid.ID, certErr error) string {
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
	case certErr != nil:
		return fmt.Sprintf("the %s's certificate: %v", them, certErr)
	case certID != nodeid.None && certID != peer.self:
		return fmt.Sprintf("the %s's certificate is for node %s, the %s claims to be node %s", them, certID, them, peer.self)
	case c.Insecure || certID != nodeid.None:
		return "" // admitted without a key, or authenticated by its certificate
	case c.Keyring == nil:
		return fmt.Sprintf("the %s is not authenticated: its certificate names no node id and the %s has no cluster key to check", them, us)
	case peer.flags&flagKey == 0:
		return fmt.Sprintf("the %s holds no cluster key and its certificate names no node id; the %s admits only members", them, us)
	}
	return ""
}

// keyed reports whether both hellos announce the cluster key, so that both
// ends prove they hold it.
func (c *Config) keyed(peer hello) bool {
	return c.Keyring != nil && peer.flags&flagKey != 0
}

// quoteLabel quotes a label for a reason, cut so that a reason naming two
// labels fits the hello's 255 bytes.
func quoteLabel(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

// ourHello returns this node's hello, with a fresh nonce and its
// settings (c has its defaults).
func (c *Config) ourHello(want nodeid.ID) hello {
	h := hello{version: c.version, label: c.Label, self: c.Self, want: want, flags: flagSettings}
	if c.Keyring != nil {
		h.flags |= flagKey
	}
	h.settings = encodeSettings(settings{maxMessage: uint64(c.MaxMessageSize)})
	rand.Read(h.nonce[:]) // never fails (crypto/rand, Go 1.24+)
	return h
}

// Proof roles: each side's proof names the side that made it, so that one
// side's proof can never pass as the other's.
const (
	roleDialer   = "dialer"
	roleAcceptor = "acceptor"
)

// transcript lays out what a proof authenticates: a domain string, the
// proving role, the protocol version, both sides' flags, the label, both
// node ids, both fresh nonces, the TLS channel binding (empty without
// TLS) and, when both exchanged settings, the dialer's then the
// acceptor's. A proof made for one handshake verifies in no other: the
// other side's nonce is fresh.
func transcript(role string, d, a *hello, binding []byte) []byte {
	b := make([]byte, 0, 64+len(d.label)+2*nonceLen+len(binding)+len(d.settings)+len(a.settings))
	b = append(b, "trellis transport handshake\x00"...)
	b = append(b, role...)
	b = append(b, 0, d.version, d.flags, a.flags, byte(len(d.label)))
	b = append(b, d.label...)
	b = binary.BigEndian.AppendUint64(b, uint64(d.self))
	b = binary.BigEndian.AppendUint64(b, uint64(a.self))
	b = append(b, d.nonce[:]...)
	b = append(b, a.nonce[:]...)
	b = append(b, byte(len(binding)))
	b = append(b, binding...)
	if exchangesSettings(d, a) {
		b = append(b, d.settings...)
		b = append(b, a.settings...)
	}
	return b
}

// exchangesSettings reports whether both hellos carry flagSettings, so
// that both sides send their settings.
func exchangesSettings(d, a *hello) bool {
	return d.flags&a.flags&flagSettings != 0
}

// A remote is what the handshake learnt of the peer.
type remote struct {
	id nodeid.ID
	// maxMessage is the peer's cap on the messages it reads: what it
	// announced, or the default for a peer that announces none.
	maxMessage int
}

// remoteOf returns what peer's hello (and settings, in raw) say of it.
func remoteOf(peer *hello, s settings) remote {
	r := remote{id: peer.self, maxMessage: defaultMaxMessage}
	if peer.settings != nil {
		r.maxMessage = int(min(s.maxMessage, uint64(maxInt)))
	}
	return r
}

// maxInt is the largest int.
const maxInt = int(^uint(0) >> 1)

// prove returns this side's proof over the transcript.
func (c *Config) prove(role string, d, a *hello, binding []byte) (p [proofLen]byte) {
	copy(p[:], c.Keyring.Sum(transcript(role, d, a, binding)))
	return p
}

// verify reports whether p proves role's transcript with a key of the ring.
func (c *Config) verify(p [proofLen]byte, role string, d, a *hello, binding []byte) bool {
	return c.Keyring.Verify(p[:], transcript(role, d, a, binding))
}

// tlsBinding returns the TLS exporter value both ends of nc derive, binding
// the proofs to this TLS session (an attacker relaying the handshake into
// another TLS session cannot reuse them); nil without TLS.
func tlsBinding(nc net.Conn) []byte {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	b, err := st.ExportKeyingMaterial("EXPORTER-trellis-transport-handshake", nil, 32)
	if err != nil {
		return nil // TLS 1.2 without extended master secret: no binding
	}
	return b
}

// clientHandshake runs the dialer's side: send our hello, read the
// acceptor's and check it; when both exchange settings, read the
// acceptor's and send ours; when both hold the cluster key, send our proof
// and check the acceptor's in its verdict. The caller bounds it with a
// deadline on nc.
func clientHandshake(nc net.Conn, cfg *Config, want nodeid.ID) (remote, error) {
	addr := nc.RemoteAddr().String()
	ours := cfg.ourHello(want)
	if _, err := nc.Write(encodeHello(ours)); err != nil {
		return remote{}, helloError(addr, "sending hello", err)
	}
	peer, err := readHello(nc, cfg.version)
	if err != nil {
		return remote{}, helloError(addr, "reading the acceptor's hello", err)
	}
	if peer.status != statusOK {
		return remote{}, &HandshakeError{Addr: addr, Reason: peer.reason, Remote: true}
	}
	certID, certErr := peerCertID(nc)
	if reason := cfg.check(peer, want, true, certID, certErr); reason != "" {
		return remote{}, &HandshakeError{Addr: addr, Reason: reason}
	}
	var set settings
	var out []byte // what we send next: our settings, our proof
	if exchangesSettings(&ours, &peer) {
		if set, peer.settings, err = readSettings(nc); err != nil {
			return remote{}, helloError(addr, "reading the acceptor's settings", err)
		}
		out = append(out, ours.settings...)
	} else {
		ours.settings = nil
	}
	if !cfg.keyed(peer) {
		if len(out) > 0 {
			if _, err := nc.Write(out); err != nil {
				return remote{}, helloError(addr, "sending settings", err)
			}
		}
		return remoteOf(&peer, set), nil
	}
	binding := tlsBinding(nc)
	proof := cfg.prove(roleDialer, &ours, &peer, binding)
	if _, err := nc.Write(append(out, proof[:]...)); err != nil {
		return remote{}, helloError(addr, "sending proof", err)
	}
	v, err := readVerdict(nc)
	if err != nil {
		return remote{}, helloError(addr, "reading the acceptor's proof", err)
	}
	if v.status != statusOK {
		return remote{}, &HandshakeError{Addr: addr, Reason: v.reason, Remote: true}
	}
	if !cfg.verify(v.proof, roleAcceptor, &ours, &peer, binding) {
		return remote{}, &HandshakeError{Addr: addr, Reason: "the acceptor's proof does not verify with any cluster key: it is not a member"}
	}
	return remoteOf(&peer, set), nil
}

// serverHandshake runs the acceptor's side: read the dialer's hello, answer
// with ours, refusing with a reason when it does not match, or with full
// when that is not empty (the acceptor takes no more connections); when
// both exchange settings, send ours with the hello and read the dialer's;
// when both hold the cluster key, read the dialer's proof and answer with
// our own, or refuse. The acceptor proves only to a dialer that proved
// first. The caller bounds it with a deadline on nc.
func serverHandshake(nc net.Conn, cfg *Config, full string) (remote, error) {
	addr := nc.RemoteAddr().String()
	peer, err := readHello(nc, cfg.version)
	if err != nil {
		return remote{}, helloError(addr, "reading the dialer's hello", err)
	}
	ours := cfg.ourHello(peer.self)
	if peer.flags&flagSettings == 0 {
		ours.flags &^= flagSettings // a dialer from before settings
		ours.settings = nil
	}
	certID, certErr := peerCertID(nc)
	reason := cfg.check(peer, nodeid.None, false, certID, certErr)
	if reason == "" {
		reason = full
	}
	if reason != "" {
		ours.status, ours.reason = statusRefused, reason
	}
	out := encodeHello(ours)
	if reason == "" {
		out = append(out, ours.settings...)
	}
	if _, err := nc.Write(out); err != nil {
		return remote{}, helloError(addr, "sending hello", err)
	}
	if reason != "" {
		return remote{}, &HandshakeError{Addr: addr, Reason: reason}
	}
	var set settings
	if exchangesSettings(&peer, &ours) {
		if set, peer.settings, err = readSettings(nc); err != nil {
			return remote{}, helloError(addr, "reading the dialer's settings", err)
		}
	}
	if !cfg.keyed(peer) {
		return remoteOf(&peer, set), nil
	}
	var proof [proofLen]byte
	if _, err := io.ReadFull(nc, proof[:]); err != nil {
		return remote{}, helloError(addr, "reading the dialer's proof", err)
	}
	binding := tlsBinding(nc)
	if !cfg.verify(proof, roleDialer, &peer, &ours, binding) {
		reason := fmt.Sprintf("the dialer (node %s) did not prove it holds a cluster key: it is not a member", peer.self)
		nc.Write(encodeVerdict(verdict{status: statusRefused, reason: reason}))
		return remote{}, &HandshakeError{Addr: addr, Reason: reason}
	}
	v := verdict{status: statusOK, proof: cfg.prove(roleAcceptor, &peer, &ours, binding)}
	if _, err := nc.Write(encodeVerdict(v)); err != nil {
		return remote{}, helloError(addr, "sending proof", err)
	}
	return remoteOf(&peer, set), nil
}

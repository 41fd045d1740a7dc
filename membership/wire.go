package membership

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/trellisrpc/trellis/nodeid"
)

// Wire format, version 1. All integers are big-endian.
//
//	offset size field
//	0      2    magic "Tm"
//	2      1    version (1)
//	3      1    message type
//	4      4    cluster tag: the first 4 bytes of SHA-256("trellis-membership/" + label)
//	8      8    sender node ID
//	16     8    sender incarnation
//	24     8    sender sequence number (one counter for every packet of a life)
//	32     ...  body, by type (below)
//	n-16   16   HMAC-SHA256 over the cluster label and bytes [0, n-16), truncated to 128 bits
//
// Heartbeat body: flags (1: bit 0 = leaving, bit 1 = hears no member), start time in Unix nanoseconds (8),
// name length (1) + name, RPC address length (1) + address, metadata length (2) +
// metadata.
//
// Probe body: target ID (8), nonce (8).
//
// Ack body: target ID (8), target incarnation (8), nonce (8), age in milliseconds of
// the sender's freshest evidence that the target lives (4; 0 when the target answers
// itself).
//
// Peers body: count (1), then count entries of: node ID (8), IP length (1: 4 or 16),
// IP, port (2).
//
// Conflict body: target ID (8), target incarnation (8), target sequence number
// (8). A member sends it to the target (the receiver) when it refused one of the
// target's packets because it knows a newer life of the target's ID: that
// incarnation, and the highest sequence number seen in it. The target, if it has
// no such life, refutes it by raising its incarnation above the claim (see
// Trust in the package documentation).
//
// Decoding is strict: every length is checked against the packet and against the
// limits below, reserved flag bits must be zero and no byte may be left over, so an
// encoding is canonical (decode then encode gives back the same bytes).
const (
	wireVersion = 1
	headerLen   = 32
	tagLen      = 16

	// MaxPacketSize is the largest packet sent or accepted; it fits an Ethernet MTU.
	MaxPacketSize = 1400
	// MaxNameLen is the longest node name a heartbeat may carry, in bytes.
	MaxNameLen = 64
	// MaxAddrLen is the longest RPC address a heartbeat may carry, in bytes.
	MaxAddrLen = 128
	// MaxMetaLen is the largest user metadata a heartbeat may carry, in bytes.
	MaxMetaLen = 512
	// maxPeers is the largest number of entries in one peers message.
	maxPeers = 48
)

const (
	magic0 = 'T'
	magic1 = 'm'
)

// msgType is the type of a membership packet.
type msgType uint8

const (
	msgHeartbeat msgType = 1
	msgProbe     msgType = 2
	msgAck       msgType = 3
	msgPeers     msgType = 4
	msgConflict  msgType = 5
)

func (t msgType) String() string {
	switch t {
	case msgHeartbeat:
		return "heartbeat"
	case msgProbe:
		return "probe"
	case msgAck:
		return "ack"
	case msgPeers:
		return "peers"
	case msgConflict:
		return "conflict"
	}
	return "unknown"
}

// Heartbeat flags.
const (
	// flagLeaving marks the heartbeats of a graceful leave.
	flagLeaving = 1 << 0
	// flagDeaf marks the heartbeats of a member that hears no other member
	// although it heard some in this life: it has declared every one of
	// them failed. The others do not take such a heartbeat as evidence that
	// the sender lives (see engine.onHeartbeat).
	flagDeaf = 1 << 1
	// heartbeatFlags are the flags a heartbeat may carry.
	heartbeatFlags = flagLeaving | flagDeaf
)

// Decoding errors. They are values, not wrapped, so that decoding never allocates.
var (
	errShort     = errors.New("membership: packet too short")
	errLong      = errors.New("membership: packet too long")
	errMagic     = errors.New("membership: bad magic")
	errVersion   = errors.New("membership: unsupported version")
	errType      = errors.New("membership: unknown message type")
	errTruncated = errors.New("membership: truncated body")
	errTrailing  = errors.New("membership: trailing bytes")
	errFlags     = errors.New("membership: reserved flags set")
	errLimit     = errors.New("membership: field exceeds its limit")
	errPeer      = errors.New("membership: bad peer entry")
)

// packet is a decoded membership packet. Byte slices point into the decoded buffer:
// decoding never copies or allocates.
type packet struct {
	typ  msgType
	tag  uint32 // cluster tag
	from nodeid.ID
	inc  uint64
	seq  uint64

	// heartbeat
	flags uint8
	start int64
	name  []byte
	addr  []byte
	meta  []byte

	// probe, ack and conflict
	target    nodeid.ID
	targetInc uint64
	targetSeq uint64 // conflict
	nonce     uint64
	ageMs     uint32

	// peers: count entries, validated, in their wire form
	peerCount int
	peers     []byte
}

// decodePacket decodes b into p without verifying its authentication tag. It never
// allocates and never reads outside b.
func decodePacket(b []byte, p *packet) error {
	*p = packet{}
	if len(b) < headerLen+tagLen {
		return errShort
	}
	if len(b) > MaxPacketSize {
		return errLong
	}
	if b[0] != magic0 || b[1] != magic1 {
		return errMagic
	}
	if b[2] != wireVersion {
		return errVersion
	}
	p.typ = msgType(b[3])
	p.tag = binary.BigEndian.Uint32(b[4:])
	p.from = nodeid.ID(binary.BigEndian.Uint64(b[8:]))
	p.inc = binary.BigEndian.Uint64(b[16:])
	p.seq = binary.BigEndian.Uint64(b[24:])
	body := b[headerLen : len(b)-tagLen]
	var err error
	switch p.typ {
	case msgHeartbeat:
		body, err = decodeHeartbeatBody(body, p)
	case msgProbe:
		if len(body) < 16 {
			return errTruncated
		}
		p.target = nodeid.ID(binary.BigEndian.Uint64(body))
		p.nonce = binary.BigEndian.Uint64(body[8:])
		body = body[16:]
	case msgAck:
		if len(body) < 28 {
			return errTruncated
		}
		p.target = nodeid.ID(binary.BigEndian.Uint64(body))
		p.targetInc = binary.BigEndian.Uint64(body[8:])
		p.nonce = binary.BigEndian.Uint64(body[16:])
		p.ageMs = binary.BigEndian.Uint32(body[24:])
		body = body[28:]
	case msgPeers:
		body, err = decodePeersBody(body, p)
	case msgConflict:
		if len(body) < 24 {
			return errTruncated
		}
		p.target = nodeid.ID(binary.BigEndian.Uint64(body))
		p.targetInc = binary.BigEndian.Uint64(body[8:])
		p.targetSeq = binary.BigEndian.Uint64(body[16:])
		body = body[24:]
	default:
		return errType
	}
	if err != nil {
		return err
	}
	if len(body) != 0 {
		return errTrailing
	}
	return nil
}

func decodeHeartbeatBody(b []byte, p *packet) ([]byte, error) {
	if len(b) < 9 {
		return nil, errTruncated
	}
	p.flags = b[0]
	if p.flags&^heartbeatFlags != 0 {
		return nil, errFlags
	}
	p.start = int64(binary.BigEndian.Uint64(b[1:]))
	b = b[9:]
	var err error
	if p.name, b, err = takeBytes(b, 1, MaxNameLen); err != nil {
		return nil, err
	}
	if p.addr, b, err = takeBytes(b, 1, MaxAddrLen); err != nil {
		return nil, err
	}
	if p.meta, b, err = takeBytes(b, 2, MaxMetaLen); err != nil {
		return nil, err
	}
	return b, nil
}

// takeBytes reads a length prefix of lenSize (1 or 2) bytes and that many bytes.
func takeBytes(b []byte, lenSize, limit int) (field, rest []byte, err error) {
	if len(b) < lenSize {
		return nil, nil, errTruncated
	}
	var n int
	if lenSize == 1 {
		n = int(b[0])
	} else {
		n = int(binary.BigEndian.Uint16(b))
	}
	b = b[lenSize:]
	if n > limit {
		return nil, nil, errLimit
	}
	if n > len(b) {
		return nil, nil, errTruncated
	}
	return b[:n:n], b[n:], nil
}

func decodePeersBody(b []byte, p *packet) ([]byte, error) {
	if len(b) < 1 {
		return nil, errTruncated
	}
	count := int(b[0])
	if count > maxPeers {
		return nil, errLimit
	}
	b = b[1:]
	start := b
	for i := 0; i < count; i++ {
		_, _, rest, err := nextPeer(b)
		if err != nil {
			return nil, err
		}
		b = rest
	}
	p.peerCount = count
	p.peers = start[: len(start)-len(b) : len(start)-len(b)]
	return b, nil
}

// nextPeer decodes one peers entry from b.
func nextPeer(b []byte) (nodeid.ID, netip.AddrPort, []byte, error) {
	if len(b) < 9 {
		return 0, netip.AddrPort{}, nil, errTruncated
	}
	id := nodeid.ID(binary.BigEndian.Uint64(b))
	ipLen := int(b[8])
	b = b[9:]
	if ipLen != 4 && ipLen != 16 {
		return 0, netip.AddrPort{}, nil, errPeer
	}
	if len(b) < ipLen+2 {
		return 0, netip.AddrPort{}, nil, errTruncated
	}
	var ip netip.Addr
	if ipLen == 4 {
		ip = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		ip = netip.AddrFrom16([16]byte(b[:16]))
	}
	port := binary.BigEndian.Uint16(b[ipLen:])
	// An IPv4-mapped IPv6 address must travel in its 4-byte form: one encoding
	// per address.
	if id == nodeid.None || port == 0 || ip.IsUnspecified() || ip.Is4In6() {
		return 0, netip.AddrPort{}, nil, errPeer
	}
	return id, netip.AddrPortFrom(ip, port), b[ipLen+2:], nil
}

// forEachPeer calls fn for each entry of a decoded peers message.
func (p *packet) forEachPeer(fn func(nodeid.ID, netip.AddrPort)) {
	b := p.peers
	for i := 0; i < p.peerCount; i++ {
		id, ap, rest, err := nextPeer(b)
		if err != nil {
			return // cannot happen: validated by decodePeersBody
		}
		fn(id, ap)
		b = rest
	}
}

// peerEntry is one entry of an outgoing peers message.
type peerEntry struct {
	id   nodeid.ID
	addr netip.AddrPort
}

// appendPacket appends the encoding of p, without its authentication tag, to dst.
// For a peers message the entries come from peers, not from p.peers. It fails when
// a field exceeds its limit or the packet would exceed MaxPacketSize.
func appendPacket(dst []byte, p *packet, peers []peerEntry) ([]byte, error) {
	start := len(dst)
	dst = append(dst, magic0, magic1, wireVersion, byte(p.typ))
	dst = binary.BigEndian.AppendUint32(dst, p.tag)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.from))
	dst = binary.BigEndian.AppendUint64(dst, p.inc)
	dst = binary.BigEndian.AppendUint64(dst, p.seq)
	switch p.typ {
	case msgHeartbeat:
		if len(p.name) > MaxNameLen || len(p.addr) > MaxAddrLen || len(p.meta) > MaxMetaLen {
			return dst[:start], errLimit
		}
		if p.flags&^heartbeatFlags != 0 {
			return dst[:start], errFlags
		}
		dst = append(dst, p.flags)
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.start))
		dst = append(dst, byte(len(p.name)))
		dst = append(dst, p.name...)
		dst = append(dst, byte(len(p.addr)))
		dst = append(dst, p.addr...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(p.meta)))
		dst = append(dst, p.meta...)
	case msgProbe:
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.target))
		dst = binary.BigEndian.AppendUint64(dst, p.nonce)
	case msgAck:
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.target))
		dst = binary.BigEndian.AppendUint64(dst, p.targetInc)
		dst = binary.BigEndian.AppendUint64(dst, p.nonce)
		dst = binary.BigEndian.AppendUint32(dst, p.ageMs)
	case msgConflict:
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.target))
		dst = binary.BigEndian.AppendUint64(dst, p.targetInc)
		dst = binary.BigEndian.AppendUint64(dst, p.targetSeq)
	case msgPeers:
		if len(peers) > maxPeers {
			return dst[:start], errLimit
		}
		dst = append(dst, byte(len(peers)))
		for _, e := range peers {
			ip := e.addr.Addr().Unmap()
			dst = binary.BigEndian.AppendUint64(dst, uint64(e.id))
			if ip.Is4() {
				a := ip.As4()
				dst = append(dst, 4)
				dst = append(dst, a[:]...)
			} else {
				a := ip.As16()
				dst = append(dst, 16)
				dst = append(dst, a[:]...)
			}
			dst = binary.BigEndian.AppendUint16(dst, e.addr.Port())
		}
	default:
		return dst[:start], errType
	}
	if len(dst)-start+tagLen > MaxPacketSize {
		return dst[:start], errLong
	}
	return dst, nil
}

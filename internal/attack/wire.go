package attack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// The attacker's own encoding of the Trellis wire protocol (transport framing,
// runtime envelopes, membership packets), written from the documentation of
// those packages, so that it can send what their encoders never would.

// Transport framing (package transport).
const (
	headerSize      = 16
	maxFramePayload = 256 << 10
	flagMore        = 1

	kindRequest  = 1
	kindResponse = 2
	framePing    = 0xF0
	framePong    = 0xF1
)

// appendHeader appends a frame header.
func appendHeader(b []byte, length int, kind, flags byte, id uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(length))
	b = append(b, kind, flags, 0, 0)
	return binary.BigEndian.AppendUint64(b, id)
}

// appendFrame appends one whole frame.
func appendFrame(b []byte, kind, flags byte, id uint64, payload []byte) []byte {
	return append(appendHeader(b, len(payload), kind, flags, id), payload...)
}

// Runtime request envelope (package runtime): flags[1] (dst[8] src[8] ttl[1])
// object[uvarint] method[8]; the CBOR arguments follow.
const (
	envRouted   = 1 << 3
	envError    = 1 << 2
	envMetadata = 1 << 1
)

// request is the envelope of a call.
type request struct {
	routed   bool
	dst, src nodeid.ID
	ttl      uint8
	object   uint64
	method   uint64
}

func appendRequest(b []byte, r request) []byte {
	var flags byte
	if r.routed {
		flags |= envRouted
	}
	b = append(b, flags)
	if r.routed {
		b = binary.BigEndian.AppendUint64(b, uint64(r.dst))
		b = binary.BigEndian.AppendUint64(b, uint64(r.src))
		b = append(b, r.ttl)
	}
	b = binary.AppendUvarint(b, r.object)
	return binary.BigEndian.AppendUint64(b, r.method)
}

// isErrorResponse reports whether a response payload is an error reply.
func isErrorResponse(payload []byte) bool {
	return len(payload) == 0 || payload[0]&envError != 0
}

// appendHello appends the unauthenticated hello of protocol version 1, as a
// dialer sends it: magic, version, status, label, self, want, reason.
func appendHello(b []byte, label string, self nodeid.ID) []byte {
	b = append(b, "TRLS"...)
	b = append(b, 1, 0, byte(len(label)))
	b = append(b, label...)
	b = binary.BigEndian.AppendUint64(b, uint64(self))
	b = binary.BigEndian.AppendUint64(b, 0)
	return append(b, 0)
}

// Membership packets (package membership, wire version 1).
const (
	memberHeartbeat = 1
	memberTagLen    = 16
)

// heartbeat is a membership heartbeat to forge.
type heartbeat struct {
	label      string
	from       nodeid.ID
	inc, seq   uint64
	start      time.Time
	name, addr string
}

// signedHeartbeat encodes h and signs it with key, as a member would.
func signedHeartbeat(h heartbeat, key []byte) []byte {
	tag := sha256.Sum256([]byte("trellis-membership/" + h.label))
	b := []byte{'T', 'm', 1, memberHeartbeat}
	b = append(b, tag[:4]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.from))
	b = binary.BigEndian.AppendUint64(b, h.inc)
	b = binary.BigEndian.AppendUint64(b, h.seq)
	b = append(b, 0) // flags
	b = binary.BigEndian.AppendUint64(b, uint64(h.start.UnixNano()))
	b = append(b, byte(len(h.name)))
	b = append(b, h.name...)
	b = append(b, byte(len(h.addr)))
	b = append(b, h.addr...)
	b = binary.BigEndian.AppendUint16(b, 0) // no metadata
	mac := hmac.New(sha256.New, key)
	mac.Write(binary.BigEndian.AppendUint16(nil, uint16(len(h.label))))
	mac.Write([]byte(h.label))
	mac.Write(b)
	return append(b, mac.Sum(nil)[:memberTagLen]...)
}

package transport

import (
	"encoding/binary"
	"fmt"
)

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 16

// MaxFramePayload is the largest payload a single frame may carry. Larger
// messages are split into fragments of at most this size.
const MaxFramePayload = 256 << 10

// A Kind is the type of a message, chosen by the user of the package.
// Valid kinds are 1 to KindMax; the values above are control frames.
type Kind uint8

// KindMax is the largest message kind; the kinds above it are reserved for
// the transport's own control frames.
const KindMax Kind = 0xEF

// Control frame types.
const (
	framePing   Kind = 0xF0 // id: nonce; answered by a pong with the same id
	framePong   Kind = 0xF1
	frameGoAway Kind = 0xF2 // the sender is closing: start no new work
)

// FlagMore marks a fragment after which more fragments of the same message follow.
const FlagMore uint8 = 1

// A Header is the decoded header of one frame.
type Header struct {
	Length uint32 // payload length
	Kind   Kind
	Flags  uint8
	ID     uint64
}

// putHeader encodes h into b, which must be at least HeaderSize long.
func putHeader(b []byte, h Header) {
	binary.BigEndian.PutUint32(b[0:4], h.Length)
	b[4] = byte(h.Kind)
	b[5] = h.Flags
	b[6], b[7] = 0, 0
	binary.BigEndian.PutUint64(b[8:16], h.ID)
}

// ParseHeader decodes and validates a frame header. It fails on a length over
// MaxFramePayload, an unknown frame type, unknown flags or non-zero reserved
// bytes, so the caller never allocates for a bad frame.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, &ProtocolError{Reason: fmt.Sprintf("truncated frame header: %d of %d bytes", len(b), HeaderSize)}
	}
	h := Header{
		Length: binary.BigEndian.Uint32(b[0:4]),
		Kind:   Kind(b[4]),
		Flags:  b[5],
		ID:     binary.BigEndian.Uint64(b[8:16]),
	}
	switch {
	case h.Length > MaxFramePayload:
		return h, &ProtocolError{Reason: fmt.Sprintf("frame length %d exceeds the cap of %d bytes", h.Length, MaxFramePayload)}
	case h.Kind == 0 || (h.Kind > KindMax && h.Kind > frameGoAway):
		return h, &ProtocolError{Reason: fmt.Sprintf("unknown frame type %#x", uint8(h.Kind))}
	case h.Flags&^FlagMore != 0:
		return h, &ProtocolError{Reason: fmt.Sprintf("unknown frame flags %#x", h.Flags)}
	case b[6] != 0 || b[7] != 0:
		return h, &ProtocolError{Reason: "non-zero reserved bytes in frame header"}
	case h.Kind > KindMax && (h.Flags != 0 || h.Length != 0):
		return h, &ProtocolError{Reason: fmt.Sprintf("control frame %#x with a payload or flags", uint8(h.Kind))}
	}
	return h, nil
}

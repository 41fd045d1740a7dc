package memberlist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/membership"
)

// MaxNodeMeta is the most memberlist carries per node (memberlist.MetaMaxSize):
// the encoded Trellis fields and the user metadata must fit in it together.
const MaxNodeMeta = ml.MetaMaxSize

// metaHeaderLen is the most the fixed fields of the encoding take: version,
// flags, incarnation and the join time's offset from it (a varint of up to
// 10 bytes, usually 1). MaxUserMeta reserves it all, so that what fits does
// not depend on the join time.
const metaHeaderLen = 1 + 1 + 8 + binary.MaxVarintLen64

// metaMinLen is the shortest encoding: the fixed fields with a one-byte join
// offset, an empty name and an empty address.
const metaMinLen = 1 + 1 + 8 + 1 + 1 + 1

// metaVersion is the version of the node metadata encoding. Version 1 (earlier builds of
// this package) also carried the node ID, which the memberlist name
// already is, and the join time in full; a cluster cannot mix the two.
const metaVersion = 2

// flagLeaving marks the metadata a member advertises just before a graceful
// leave, so that the others report Left rather than Failed (memberlist itself
// does not tell its users which of the two happened).
const flagLeaving = 1 << 0

// ErrMetaTooLarge is returned (wrapped, with the sizes) when a member's name,
// RPC address and user metadata do not fit in memberlist's node metadata.
var ErrMetaTooLarge = errors.New("memberlist: node metadata too large")

// info is what a member advertises in its memberlist node metadata; its ID is
// its memberlist name.
type info struct {
	inc     uint64
	join    time.Time
	name    string
	addr    string
	meta    []byte
	leaving bool
}

// MaxUserMeta returns how many bytes of user metadata fit beside a name and an
// RPC address of the given lengths.
func MaxUserMeta(nameLen, addrLen int) int {
	n := MaxNodeMeta - metaHeaderLen - uvarintLen(uint64(nameLen)) - nameLen - uvarintLen(uint64(addrLen)) - addrLen
	return max(n, 0)
}

func uvarintLen(n uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], n)
}

// encodeMeta lays out version (2), flags (1 byte), incarnation (8 bytes,
// big-endian), the join time in Unix nanoseconds minus the incarnation as a
// zig-zag varint (0 when the incarnation is the default, the start time: one
// byte), then name and address each preceded by its length as a uvarint, then
// the user metadata to the end. What memberlist sends of a member in its full
// state exchanges is mostly this, so every byte saved here is saved N times
// per exchange.
func encodeMeta(in info) ([]byte, error) {
	if len(in.name) > membership.MaxNameLen {
		return nil, fmt.Errorf("memberlist: name is %d bytes, limit %d", len(in.name), membership.MaxNameLen)
	}
	if len(in.addr) > membership.MaxAddrLen {
		return nil, fmt.Errorf("memberlist: addr is %d bytes, limit %d", len(in.addr), membership.MaxAddrLen)
	}
	if room := MaxUserMeta(len(in.name), len(in.addr)); len(in.meta) > room {
		return nil, fmt.Errorf("%w: user meta is %d bytes, at most %d fit beside a %d-byte name and a %d-byte address (memberlist carries %d bytes per node)",
			ErrMetaTooLarge, len(in.meta), room, len(in.name), len(in.addr), MaxNodeMeta)
	}
	b := make([]byte, 0, metaHeaderLen+2+len(in.name)+len(in.addr)+len(in.meta))
	var flags byte
	if in.leaving {
		flags |= flagLeaving
	}
	b = append(b, metaVersion, flags)
	b = binary.BigEndian.AppendUint64(b, in.inc)
	// Modulo 2⁶⁴, so that every incarnation and join time round-trips.
	b = binary.AppendVarint(b, int64(uint64(in.join.UnixNano())-in.inc))
	b = binary.AppendUvarint(b, uint64(len(in.name)))
	b = append(b, in.name...)
	b = binary.AppendUvarint(b, uint64(len(in.addr)))
	b = append(b, in.addr...)
	b = append(b, in.meta...)
	return b, nil
}

// decodeMeta parses what encodeMeta wrote. It checks every length against the
// input and the limits, accepts only the shortest form of each varint (so an
// encoding is canonical), and never panics.
func decodeMeta(b []byte) (info, error) {
	var in info
	if len(b) > MaxNodeMeta {
		return in, fmt.Errorf("memberlist: node metadata is %d bytes, limit %d", len(b), MaxNodeMeta)
	}
	if len(b) > 0 && b[0] != metaVersion {
		if b[0] == 1 {
			return in, fmt.Errorf("memberlist: node metadata version 1, from an older Trellis; this one speaks version %d, and a cluster cannot mix the two: run one version on every member", metaVersion)
		}
		return in, fmt.Errorf("memberlist: node metadata version %d, want %d", b[0], metaVersion)
	}
	if len(b) < metaMinLen {
		return in, fmt.Errorf("memberlist: node metadata is %d bytes, shorter than the %d of the smallest", len(b), metaMinLen)
	}
	if b[1]&^flagLeaving != 0 {
		return in, fmt.Errorf("memberlist: node metadata has unknown flags %#x", b[1])
	}
	in.leaving = b[1]&flagLeaving != 0
	in.inc = binary.BigEndian.Uint64(b[2:])
	rest := b[10:]
	delta, k := binary.Varint(rest)
	if k <= 0 || k != uvarintLen(zigzag(delta)) {
		return in, errors.New("memberlist: node metadata: bad join time")
	}
	in.join = time.Unix(0, int64(in.inc+uint64(delta)))
	rest = rest[k:]
	name, rest, err := lenPrefixed(rest, membership.MaxNameLen, "name")
	if err != nil {
		return in, err
	}
	addr, rest, err := lenPrefixed(rest, membership.MaxAddrLen, "addr")
	if err != nil {
		return in, err
	}
	if room := MaxUserMeta(len(name), len(addr)); len(rest) > room {
		return in, fmt.Errorf("memberlist: node metadata: user meta of %d bytes, limit %d", len(rest), room)
	}
	in.name, in.addr = string(name), string(addr)
	in.meta = append([]byte{}, rest...)
	return in, nil
}

// zigzag returns the unsigned form binary.AppendVarint writes of v.
func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func lenPrefixed(b []byte, limit int, what string) (field, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || k != uvarintLen(n) {
		return nil, nil, fmt.Errorf("memberlist: node metadata: bad %s length", what)
	}
	if n > uint64(limit) || n > uint64(len(b)-k) {
		return nil, nil, fmt.Errorf("memberlist: node metadata: %s of %d bytes (limit %d, %d left)", what, n, limit, len(b)-k)
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

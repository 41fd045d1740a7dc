package memberlist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

// MaxNodeMeta is the most memberlist carries per node (memberlist.MetaMaxSize):
// the encoded Trellis fields and the user metadata must fit in it together.
const MaxNodeMeta = ml.MetaMaxSize

// metaHeaderLen is the fixed part of the encoding: version, flags, ID,
// incarnation, join time.
const metaHeaderLen = 1 + 1 + 8 + 8 + 8

// metaVersion is the version of the node metadata encoding.
const metaVersion = 1

// flagLeaving marks the metadata a member advertises just before a graceful
// leave, so that the others report Left rather than Failed (memberlist itself
// does not tell its users which of the two happened).
const flagLeaving = 1 << 0

// ErrMetaTooLarge is returned (wrapped, with the sizes) when a member's name,
// RPC address and user metadata do not fit in memberlist's node metadata.
var ErrMetaTooLarge = errors.New("memberlist: node metadata too large")

// info is what a member advertises in its memberlist node metadata.
type info struct {
	id      nodeid.ID
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
	n := MaxNodeMeta - metaHeaderLen - uvarintLen(nameLen) - nameLen - uvarintLen(addrLen) - addrLen
	return max(n, 0)
}

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}

// encodeMeta lays out version (1), flags (1), ID (8), incarnation (8), join time
// in Unix nanoseconds (8), then name and address each preceded by its length as
// a uvarint, then the user metadata to the end. All integers are big-endian.
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
	b = binary.BigEndian.AppendUint64(b, uint64(in.id))
	b = binary.BigEndian.AppendUint64(b, in.inc)
	b = binary.BigEndian.AppendUint64(b, uint64(in.join.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(in.name)))
	b = append(b, in.name...)
	b = binary.AppendUvarint(b, uint64(len(in.addr)))
	b = append(b, in.addr...)
	b = append(b, in.meta...)
	return b, nil
}

// decodeMeta parses what encodeMeta wrote. It checks every length against the
// input and the limits, and never panics.
func decodeMeta(b []byte) (info, error) {
	var in info
	if len(b) > MaxNodeMeta {
		return in, fmt.Errorf("memberlist: node metadata is %d bytes, limit %d", len(b), MaxNodeMeta)
	}
	if len(b) < metaHeaderLen {
		return in, fmt.Errorf("memberlist: node metadata is %d bytes, shorter than its %d-byte header", len(b), metaHeaderLen)
	}
	if b[0] != metaVersion {
		return in, fmt.Errorf("memberlist: node metadata version %d, want %d", b[0], metaVersion)
	}
	if b[1]&^flagLeaving != 0 {
		return in, fmt.Errorf("memberlist: node metadata has unknown flags %#x", b[1])
	}
	in.leaving = b[1]&flagLeaving != 0
	in.id = nodeid.ID(binary.BigEndian.Uint64(b[2:]))
	if in.id == nodeid.None {
		return in, errors.New("memberlist: node metadata has no node ID")
	}
	in.inc = binary.BigEndian.Uint64(b[10:])
	in.join = time.Unix(0, int64(binary.BigEndian.Uint64(b[18:])))
	rest := b[metaHeaderLen:]
	name, rest, err := lenPrefixed(rest, membership.MaxNameLen, "name")
	if err != nil {
		return in, err
	}
	addr, rest, err := lenPrefixed(rest, membership.MaxAddrLen, "addr")
	if err != nil {
		return in, err
	}
	in.name, in.addr = string(name), string(addr)
	in.meta = append([]byte{}, rest...)
	return in, nil
}

func lenPrefixed(b []byte, limit int, what string) (field, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("memberlist: node metadata: bad %s length", what)
	}
	if n > uint64(limit) || n > uint64(len(b)-k) {
		return nil, nil, fmt.Errorf("memberlist: node metadata: %s of %d bytes (limit %d, %d left)", what, n, limit, len(b)-k)
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

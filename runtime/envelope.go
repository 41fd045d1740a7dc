package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// Message kinds on a transport connection.
const (
	kindRequest  = 1 // id: call id; payload: request envelope + CBOR arguments
	kindResponse = 2 // id: call id; payload: response envelope + CBOR results or wireError
	kindCancel   = 3 // id: call id; no payload
)

// Envelope flags.
const (
	flagDeadline = 1 << 0 // request: a timeout follows
	flagMetadata = 1 << 1 // metadata follows
	flagError    = 1 << 2 // response: the body is a wireError
	flagRouted   = 1 << 3 // request: dst[8] src[8] ttl[1] follow the flags
)

// routeHeaderSize is the size of the routing fields of a routed request;
// ttlOffset is where a relay finds the hop count to decrement.
const (
	routeHeaderSize = 17
	ttlOffset       = 1 + 16
)

// Limits on metadata, checked when decoding.
const (
	maxMetadataEntries = 64
	maxMetadataBytes   = 16 << 10
)

// A MetadataEntry is one key and value of a message's metadata.
type MetadataEntry struct {
	Key, Value string
}

// Metadata travels with a call and its reply, outside the encoded body:
// authentication tokens, trace ids. Message transformers read and write it;
// client interceptors and starters add to a call's (OutgoingCall.Metadata)
// and read its reply's (OutgoingCall.ReplyMetadata). A call and its reply
// carry metadata of their own: a reply carries what the server's side put
// on it (its message transformer), not the call's metadata back.
//
// A message carries at most 64 entries, whose keys and values total at most
// 16 KiB. Metadata over either limit fails the call before it is sent
// (NotSent holds), when a client interceptor, starter or proxy transformer
// left it; a reply's, left by the server's message transformer, gives the
// caller ErrRejected; a relay interceptor's is dropped for the metadata the
// call arrived with (logged). A message received over either limit breaks
// the protocol (ErrProtocol, the connection is closed).
type Metadata []MetadataEntry

// size is about the memory m holds: its strings and its entries.
func (m Metadata) size() int {
	n := len(m) * int(unsafe.Sizeof(MetadataEntry{}))
	for _, e := range m {
		n += len(e.Key) + len(e.Value)
	}
	return n
}

// Get returns the value of the first entry with key k.
func (m Metadata) Get(k string) (string, bool) {
	for _, e := range m {
		if e.Key == k {
			return e.Value, true
		}
	}
	return "", false
}

// Set replaces the value of key k, or adds it.
func (m *Metadata) Set(k, v string) {
	for i := range *m {
		if (*m)[i].Key == k {
			(*m)[i].Value = v
			return
		}
	}
	*m = append(*m, MetadataEntry{k, v})
}

// request is the decoded envelope of a call.
type request struct {
	routed   bool          // dst, src and ttl are set
	dst, src NodeID        // final destination and origin of a routed call
	ttl      uint8         // hops left
	object   uint64        // 0: the node's services; else an exported object
	method   uint64        // codegen.MethodDesc.ID
	timeout  time.Duration // 0: none
	metadata Metadata
	body     []byte // CBOR arguments (aliases the payload)
}

// appendRequest lays out: flags[1] (dst[8] src[8] ttl[1]) object[uvarint]
// method[8] (timeout[varint]) (metadata) — the CBOR body follows.
func appendRequest(b []byte, r *request) []byte {
	var flags byte
	if r.routed {
		flags |= flagRouted
	}
	if r.timeout != 0 {
		flags |= flagDeadline
	}
	if len(r.metadata) > 0 {
		flags |= flagMetadata
	}
	b = append(b, flags)
	if r.routed {
		b = binary.BigEndian.AppendUint64(b, uint64(r.dst))
		b = binary.BigEndian.AppendUint64(b, uint64(r.src))
		b = append(b, r.ttl)
	}
	b = binary.AppendUvarint(b, r.object)
	b = binary.BigEndian.AppendUint64(b, r.method)
	if r.timeout != 0 {
		b = binary.AppendVarint(b, int64(r.timeout))
	}
	if len(r.metadata) > 0 {
		b = appendMetadata(b, r.metadata)
	}
	return b
}

var errShort = errors.New("truncated envelope")

// parseRequest decodes a request envelope. body aliases p.
func parseRequest(p []byte, r *request) error {
	if len(p) < 1 {
		return errShort
	}
	flags := p[0]
	if flags&^(flagDeadline|flagMetadata|flagRouted) != 0 {
		return fmt.Errorf("unknown request flags %#x", flags)
	}
	p = p[1:]
	r.routed = flags&flagRouted != 0
	if r.routed {
		if len(p) < routeHeaderSize {
			return errShort
		}
		r.dst = NodeID(binary.BigEndian.Uint64(p[0:8]))
		r.src = NodeID(binary.BigEndian.Uint64(p[8:16]))
		r.ttl = p[16]
		if r.dst == 0 || r.src == 0 {
			return fmt.Errorf("routed call with a zero node id")
		}
		if r.ttl > DefaultMaxHops {
			// Its sender set DefaultMaxHops: more would let a routing
			// loop carry it further, and make its hop count negative.
			return fmt.Errorf("routed message with %d hops left, beyond the budget of %d", r.ttl, DefaultMaxHops)
		}
		p = p[routeHeaderSize:]
	}
	var n int
	r.object, n = binary.Uvarint(p)
	if n <= 0 {
		return fmt.Errorf("bad object id")
	}
	p = p[n:]
	if len(p) < 8 {
		return errShort
	}
	r.method = binary.BigEndian.Uint64(p)
	p = p[8:]
	r.timeout = 0
	if flags&flagDeadline != 0 {
		t, n := binary.Varint(p)
		if n <= 0 || t <= 0 {
			return fmt.Errorf("bad timeout")
		}
		r.timeout = time.Duration(t)
		p = p[n:]
	}
	r.metadata = nil
	if flags&flagMetadata != 0 {
		var err error
		if r.metadata, p, err = parseMetadata(p); err != nil {
			return err
		}
	}
	r.body = p
	return nil
}

// response is the decoded envelope of a reply.
type response struct {
	isError  bool
	metadata Metadata
	body     []byte // CBOR results, or a wireError when isError
}

func appendResponse(b []byte, isError bool, md Metadata) []byte {
	var flags byte
	if isError {
		flags |= flagError
	}
	if len(md) > 0 {
		flags |= flagMetadata
	}
	b = append(b, flags)
	if len(md) > 0 {
		b = appendMetadata(b, md)
	}
	return b
}

func parseResponse(p []byte, r *response) error {
	if len(p) < 1 {
		return errShort
	}
	flags := p[0]
	if flags&^(flagError|flagMetadata) != 0 {
		return fmt.Errorf("unknown response flags %#x", flags)
	}
	p = p[1:]
	r.isError = flags&flagError != 0
	r.metadata = nil
	if flags&flagMetadata != 0 {
		var err error
		if r.metadata, p, err = parseMetadata(p); err != nil {
			return err
		}
	}
	r.body = p
	return nil
}

func appendMetadata(b []byte, md Metadata) []byte {
	b = binary.AppendUvarint(b, uint64(len(md)))
	for _, e := range md {
		b = binary.AppendUvarint(b, uint64(len(e.Key)))
		b = append(b, e.Key...)
		b = binary.AppendUvarint(b, uint64(len(e.Value)))
		b = append(b, e.Value...)
	}
	return b
}

// parseMetadata decodes metadata, checking counts and sizes against their
// caps before allocating. The keys and values share one string.
func parseMetadata(p []byte) (Metadata, []byte, error) {
	count, n := binary.Uvarint(p)
	if n <= 0 || count == 0 || count > maxMetadataEntries {
		return nil, nil, fmt.Errorf("bad metadata count")
	}
	p = p[n:]
	// First pass: find the strings and check the limits.
	type span struct{ off, len int }
	var spans [2 * maxMetadataEntries]span
	start, off, total := p, 0, 0
	for i := range 2 * count {
		l, n := binary.Uvarint(p[off:])
		if n <= 0 || l > uint64(len(p)-off-n) {
			return nil, nil, errShort
		}
		total += int(l)
		if total > maxMetadataBytes {
			return nil, nil, fmt.Errorf("metadata exceeds %d bytes", maxMetadataBytes)
		}
		spans[i] = span{off + n, int(l)}
		off += n + int(l)
	}
	all := string(start[:off])
	md := make(Metadata, count)
	for i := range md {
		k, v := spans[2*i], spans[2*i+1]
		md[i] = MetadataEntry{all[k.off : k.off+k.len], all[v.off : v.off+v.len]}
	}
	return md, p[off:], nil
}

// validMetadata checks outgoing metadata against the limits a receiver applies.
func validMetadata(md Metadata) error {
	if len(md) > maxMetadataEntries {
		return fmt.Errorf("%d metadata entries, the limit is %d", len(md), maxMetadataEntries)
	}
	total := 0
	for _, e := range md {
		total += len(e.Key) + len(e.Value)
	}
	if total > maxMetadataBytes {
		return fmt.Errorf("metadata of %d bytes, the limit is %d", total, maxMetadataBytes)
	}
	return nil
}

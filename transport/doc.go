// Package transport carries messages between two Trellis nodes over one TCP
// connection (optionally TLS).
//
// A connection starts with a handshake that checks the magic, the protocol
// version, the cluster label and both node identities, and authenticates
// both ends; a mismatch or a refusal is a clear error on both sides:
//
//	dialer → acceptor   hello: magic, version, label, ids, flags, fresh nonce
//	acceptor → dialer   hello (or a refusal with its reason), settings
//	dialer → acceptor   settings, proof: HMAC of the transcript with the cluster key
//	acceptor → dialer   verdict: its own proof, or a refusal
//
// The settings announce each end's Config.MaxMessageSize, so that Send
// refuses with ErrTooLarge, the connection staying up, a message the peer
// would not read (Conn.MaxSend); they are exchanged when both hellos carry
// a flag for them, and a peer that does not (an older version) is assumed
// to have the default cap. The proofs (Config.Keyring) cover both nonces,
// both ids, the label, the version, the settings and, with TLS, the TLS
// session, so a recorded handshake is worthless; the acceptor proves only to a dialer that proved. With TLS, a
// verified certificate naming a node (NodeURI) binds that node's id and
// authenticates it without a key. A peer that authenticates neither way is
// refused unless Config.Insecure opts out. A Listener bounds what a refused
// handshake costs: a few hundred bytes read, HandshakeTimeout, a cap on
// handshakes in progress, and refusals logged once per source per minute;
// and it holds at most MaxConns accepted connections open at once.
//
// After it, the connection carries length-prefixed frames. Each frame has a
// 16-byte header:
//
//	offset size field
//	0      4    payload length (big endian), at most MaxFramePayload
//	4      1    type: a message kind (1..KindMax) or a control frame
//	5      1    flags: FlagMore when more fragments of the message follow
//	6      2    reserved, zero
//	8      8    id: the message id (a call id, a stream id...)
//
// A message larger than MaxFramePayload is split into fragments, and a single
// writer goroutine interleaves the fragments of different messages, so one big
// message never stalls small ones. Fragments belong to the message with the
// same kind and id; messages with the same kind and id are never interleaved,
// so they arrive in the order sent. The writer batches small frames and
// flushes when it has nothing more to write; a large payload is written from
// the message's own buffer, with what is batched before it, in one vectored
// write. Bulk data (SendBulk) goes after the other messages queued, and a
// stream's pump may write it itself while the connection is idle
// (SendBulkInline). One reader goroutine decodes frames and hands whole
// messages to a Handler; a BodyHandler may instead read the payload of a
// single-frame message itself, straight from the socket into a buffer of
// its choice (a stream's waiting Read). Lengths are checked against their caps
// (MaxFramePayload, Config.MaxMessageSize, Config.MaxPartialBytes) before
// anything is allocated; a malformed frame closes the connection with a
// *ProtocolError that says what was wrong.
//
// Control frames (kinds above KindMax) carry no payload: ping and pong,
// whose id is a nonce, and GoAway.
//
// What a node holds for its peers is bounded (Config.Budget, shared by all
// of a node's connections): partly received messages, what Handlers charge
// (Conn.Charge), and the replies each connection owes its peer
// (Conn.SendReply). A peer that does not read its replies is not read
// either once it is owed MaxQueuedBytes (TCP then slows it down), and is
// disconnected with ErrPeerStalled when nothing can be written to it for
// StallTimeout.
//
// Keepalive pings detect a dead peer; Close drains what is queued and says
// goodbye (a GoAway frame) before closing. The package knows nothing of
// services or encodings: message kinds and payloads belong to its user.
package transport

// Package attack is a hostile Trellis peer: it speaks the wire protocol itself
// (frames, request envelopes, CBOR, membership heartbeats) to attack a node
// the way issue 10 ("Safe to expose") lists, for a bounded time each. It is a
// test tool, not part of Trellis's API; scripts/attack.sh drives it through
// the command in cmd/trellis-attack, which starts a target node and a
// legitimate caller in their own processes and measures what each attack
// costs them.
//
// Two kinds of attacker are played. An outsider has no cluster key: it can
// only open connections and send what it has (a made-up hello, or a
// handshake recorded from a member). A member holds the key: it completes a
// real handshake with package transport, through a relay in this process,
// then takes the TCP connection over and writes raw frames on it (the
// handshake authenticates the start of a connection, nothing after it), and
// it signs membership packets with the key.
package attack

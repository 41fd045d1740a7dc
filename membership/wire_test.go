package membership

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
)

var wireKey = []byte("0123456789abcdef-wire")

func samplePackets(t testing.TB) map[string][]byte {
	k, err := newKeyring("wire", [][]byte{wireKey})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(p packet, peers []peerEntry) []byte {
		p.tag, p.from, p.inc, p.seq = k.tag, 0x1122334455667788, 42, 7
		b, err := appendPacket(nil, &p, peers)
		if err != nil {
			t.Fatal(err)
		}
		return k.sign(b)
	}
	return map[string][]byte{
		"heartbeat": enc(packet{typ: msgHeartbeat, start: 1_700_000_000_123, name: []byte("node-1"),
			addr: []byte("10.0.0.1:9000"), meta: []byte("zone=a")}, nil),
		"leaving":    enc(packet{typ: msgHeartbeat, flags: flagLeaving, name: []byte("n")}, nil),
		"deaf":       enc(packet{typ: msgHeartbeat, flags: flagDeaf, name: []byte("n")}, nil),
		"probe":      enc(packet{typ: msgProbe, target: 9, nonce: 1234}, nil),
		"ack":        enc(packet{typ: msgAck, target: 9, targetInc: 3, nonce: 1234, ageMs: 250}, nil),
		"peers":      enc(packet{typ: msgPeers}, []peerEntry{{1, netip.MustParseAddrPort("10.0.0.1:7947")}, {2, netip.MustParseAddrPort("[fd00::2]:7947")}}),
		"emptypeers": enc(packet{typ: msgPeers}, nil),
		"conflict":   enc(packet{typ: msgConflict, target: 9, targetInc: 1 << 60, targetSeq: 77}, nil),
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	for name, b := range samplePackets(t) {
		t.Run(name, func(t *testing.T) {
			var p packet
			if err := decodePacket(b, &p); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if p.from != 0x1122334455667788 || p.inc != 42 || p.seq != 7 {
				t.Fatalf("header = %x %d %d", p.from, p.inc, p.seq)
			}
			var peers []peerEntry
			p.forEachPeer(func(id nodeid.ID, ap netip.AddrPort) { peers = append(peers, peerEntry{id, ap}) })
			again, err := appendPacket(nil, &p, peers)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(again, b[:len(b)-tagLen]) {
				t.Fatalf("re-encoding differs:\n%x\n%x", again, b[:len(b)-tagLen])
			}
		})
	}
	var p packet
	if err := decodePacket(samplePackets(t)["heartbeat"], &p); err != nil ||
		string(p.name) != "node-1" || string(p.addr) != "10.0.0.1:9000" || string(p.meta) != "zone=a" || p.start != 1_700_000_000_123 {
		t.Fatalf("heartbeat fields: %+v, %v", p, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	hb := samplePackets(t)["heartbeat"]
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(hb)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errShort},
		{"short", hb[:headerLen+tagLen-1], errShort},
		{"long", make([]byte, MaxPacketSize+1), errLong},
		{"magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), errMagic},
		{"version", mod(func(b []byte) []byte { b[2] = 2; return b }), errVersion},
		{"type", mod(func(b []byte) []byte { b[3] = 99; return b }), errType},
		{"flags", mod(func(b []byte) []byte { b[headerLen] = 0x80; return b }), errFlags},
		{"name too long", mod(func(b []byte) []byte { b[headerLen+9] = MaxNameLen + 1; return b }), errLimit},
		{"name past end", mod(func(b []byte) []byte { b[headerLen+9] = 60; return b }), errTruncated},
		{"trailing", append(bytes.Clone(hb[:len(hb)-tagLen]), append([]byte{0}, hb[len(hb)-tagLen:]...)...), errTrailing},
		{"truncated probe", func() []byte {
			b := bytes.Clone(samplePackets(t)["probe"])
			return append(b[:headerLen+8], b[len(b)-tagLen:]...)
		}(), errTruncated},
		{"peers count over limit", func() []byte {
			b := bytes.Clone(samplePackets(t)["emptypeers"])
			b[headerLen] = maxPeers + 1
			return b
		}(), errLimit},
		{"peers bad ip length", func() []byte {
			b := bytes.Clone(samplePackets(t)["peers"])
			b[headerLen+1+8] = 5
			return b
		}(), errPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p packet
			if err := decodePacket(tc.b, &p); !errors.Is(err, tc.want) {
				t.Fatalf("decode = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	var pkts [][]byte
	for _, b := range samplePackets(t) {
		pkts = append(pkts, b)
	}
	garbage := []byte("garbage that is long enough to be looked at properly......")
	var p packet
	allocs := testing.AllocsPerRun(200, func() {
		for _, b := range pkts {
			if decodePacket(b, &p) != nil {
				panic("decode failed")
			}
			p.forEachPeer(func(nodeid.ID, netip.AddrPort) {})
		}
		_ = decodePacket(garbage, &p)
	})
	if allocs != 0 {
		t.Fatalf("decoding allocates %v times per run, want 0", allocs)
	}
}

func TestEncodeLimits(t *testing.T) {
	for _, p := range []packet{
		{typ: msgHeartbeat, name: make([]byte, MaxNameLen+1)},
		{typ: msgHeartbeat, addr: make([]byte, MaxAddrLen+1)},
		{typ: msgHeartbeat, meta: make([]byte, MaxMetaLen+1)},
		{typ: msgHeartbeat, flags: 4},
		{typ: 77},
	} {
		if b, err := appendPacket([]byte("keep"), &p, nil); err == nil || string(b) != "keep" {
			t.Errorf("appendPacket(%v) = %q, %v; want an error and dst untouched", p.typ, b, err)
		}
	}
	if _, err := appendPacket(nil, &packet{typ: msgPeers}, make([]peerEntry, maxPeers+1)); err == nil {
		t.Error("too many peers accepted")
	}
	// The largest legal heartbeat fits a packet.
	big := packet{typ: msgHeartbeat, name: make([]byte, MaxNameLen), addr: make([]byte, MaxAddrLen), meta: make([]byte, MaxMetaLen)}
	b, err := appendPacket(nil, &big, nil)
	if err != nil || len(b)+tagLen > MaxPacketSize {
		t.Fatalf("largest heartbeat: %d bytes, %v", len(b)+tagLen, err)
	}
	// So do maxPeers IPv6 entries.
	peers := make([]peerEntry, maxPeers)
	for i := range peers {
		peers[i] = peerEntry{nodeid.ID(i + 1), netip.MustParseAddrPort("[fd00::1]:7947")}
	}
	if _, err := appendPacket(nil, &packet{typ: msgPeers}, peers); err != nil {
		t.Fatalf("full peers message: %v", err)
	}
}

func TestHeartbeatSize(t *testing.T) {
	// The figure used in FIGURES.md: name "node01", address "10.77.0.1:7001", no
	// metadata.
	p := packet{typ: msgHeartbeat, name: []byte("node01"), addr: []byte("10.77.0.1:7001")}
	b, _ := appendPacket(nil, &p, nil)
	if got := len(b) + tagLen; got != 81 {
		t.Fatalf("heartbeat is %d bytes, FIGURES.md says 81", got)
	}
}

func FuzzDecodeHeartbeat(f *testing.F) {
	for _, b := range samplePackets(f) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	k, _ := newKeyring("wire", [][]byte{wireKey})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p packet
		err := decodePacket(b, &p)
		_ = k.verify(b)
		if err != nil {
			return
		}
		// Every slice stays inside the packet.
		for _, s := range [][]byte{p.name, p.addr, p.meta, p.peers} {
			if len(s) > len(b) {
				t.Fatalf("field longer than the packet")
			}
		}
		// A packet that decodes is canonical: re-encoding gives the same bytes.
		var peers []peerEntry
		p.forEachPeer(func(id nodeid.ID, ap netip.AddrPort) { peers = append(peers, peerEntry{id, ap}) })
		again, err := appendPacket(nil, &p, peers)
		if err != nil {
			t.Fatalf("decoded packet does not re-encode: %v", err)
		}
		if !bytes.Equal(again, b[:len(b)-tagLen]) {
			t.Fatalf("not canonical:\n%x\n%x", again, b[:len(b)-tagLen])
		}
		if binary.BigEndian.Uint16(b) != uint16(magic0)<<8|magic1 {
			t.Fatalf("accepted bad magic")
		}
	})
}

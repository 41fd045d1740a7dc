package attack

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/attack/targetsvc"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/wire"
	"github.com/trellisrpc/trellis/transport"
)

// The attacker's encoding of the wire protocol must be the real one, or its
// attacks test nothing: these tests fail when the protocol changes under it.

const testLabel = "attack-test"

var testKey = []byte("0123456789abcdef0123456789abcdef")

func testRing(t *testing.T) *keyring.Ring {
	t.Helper()
	r, err := keyring.New(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func startTarget(t *testing.T) *runtime.Node {
	t.Helper()
	n, err := runtime.NewNode(runtime.Config{Name: "target", Addr: "127.0.0.1:0", Label: testLabel, Keyring: testRing(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	if err := targetsvc.RegisterTarget(n, targetsvc.Impl{}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A member's connection taken over after the handshake carries raw calls, and
// its recorded handshake opens a connection of its own.
func TestDialMemberRawCall(t *testing.T) {
	n := startTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, recorded, err := DialMember(ctx, n.Addr().String(), transport.Config{Label: testLabel, Keyring: testRing(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !bytes.HasPrefix(recorded, []byte("TRLS")) {
		t.Fatalf("recorded handshake %q does not start with the magic", recorded)
	}
	args := wire.AppendString(wire.AppendArrayHeader(nil, 1), "raw-echo")
	if err := c.write(call(7, request{method: methodEcho}, args)); err != nil {
		t.Fatal(err)
	}
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := c.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	if f.kind != kindResponse || f.id != 7 || isErrorResponse(f.payload) || !bytes.Contains(f.payload, []byte("raw-echo")) {
		t.Fatalf("reply kind %d id %d payload %q", f.kind, f.id, f.payload)
	}
}

// A heartbeat signed by the attacker is accepted by a membership node with the
// same key.
func TestSignedHeartbeatAccepted(t *testing.T) {
	m, err := membership.New(membership.Config{Name: "target", Keys: [][]byte{testKey}, ClusterLabel: testLabel,
		DisableMulticast: true, BindAddr: "127.0.0.1:0", Seeds: []string{"127.0.0.1:1"}, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sub := m.Subscribe(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	id := nodeid.New()
	h := heartbeat{label: testLabel, from: id, inc: 1, seq: 1, start: time.Now(), name: "forger", addr: "evil:1"}
	sendUDP(t, m.Local().PacketAddr, signedHeartbeat(h, testKey))
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("the heartbeat was not accepted: %v (stats %+v)", err, m.Stats())
		}
		if ev.Kind == membership.Joined && ev.Member.ID == id && ev.Member.Addr == "evil:1" {
			return
		}
	}
}

func sendUDP(t *testing.T, to netip.AddrPort, b []byte) {
	t.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := uc.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

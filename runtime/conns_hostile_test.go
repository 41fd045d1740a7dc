package runtime

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/transport"
)

// A member that opens connection after connection, each with a node id of
// its own, cannot make a node hold more than MaxConns of them: the next is
// refused in the handshake with a reason that says so, and the node still
// answers the peers it holds.
func TestNodeMaxConns(t *testing.T) {
	const limit = 4
	n, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring, MaxConns: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	if err := n.Register(echoDesc, struct{}{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	honest, err := NewNode(Config{Name: "honest", Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer honest.Close(context.Background())
	if _, err := honest.Connect(ctx, n.Addr().String()); err != nil {
		t.Fatal(err)
	}
	for i := range limit - 1 {
		c, err := transport.Dial(ctx, n.Addr().String(), transport.Config{Self: NodeID(700 + i), Keyring: testKeyring}, n.ID())
		if err != nil {
			t.Fatalf("connection %d within the limit: %v", i, err)
		}
		defer c.Abort(nil)
	}
	// A dialer's handshake ends before the node counts its connection.
	waitUntil(t, "the node to hold the connections", func() bool { return len(n.Peers()) == limit })
	_, err = transport.Dial(ctx, n.Addr().String(), transport.Config{Self: 799, Keyring: testKeyring}, n.ID())
	if err == nil || !strings.Contains(err.Error(), "MaxConns") {
		t.Fatalf("connection beyond the limit: %v; want a refusal naming MaxConns", err)
	}
	in := struct {
		_ struct{} `cbor:",toarray"`
		S string
	}{S: "still here"}
	out := in
	out.S = ""
	if err := newClient(honest, n.ID(), echoDesc).do(ctx, echoDesc.Methods[0], &in, &out); err != nil || out.S != in.S {
		t.Fatalf("call of a peer held: %q, %v", out.S, err)
	}
}

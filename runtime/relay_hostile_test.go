package runtime

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// A neighbour that sends routed calls to a node that never answers them
// cannot make the relay hold a record for each without limit: beyond
// MaxConcurrentCalls in progress, the relay refuses them at once.
func TestRelayedCallsBounded(t *testing.T) {
	const limit, extra = 64, 10
	n, err := NewNode(Config{Name: "relay", Addr: "127.0.0.1:0", Insecure: true, MaxConcurrentCalls: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	a := dialRaw(t, n, 600)
	dialRaw(t, n, 601) // reads the relayed calls and never answers them
	var b bytes.Buffer
	for i := range limit + extra {
		b.Write(rawFrame(kindRequest, uint64(i+1), appendRequest(nil, &request{routed: true, dst: 601, src: 600, ttl: 8, method: 42})))
	}
	a.write(t, b.Bytes())
	refused := map[uint64]bool{}
	for len(refused) < extra {
		select {
		case id := <-a.replies:
			if id <= limit {
				t.Fatalf("call %d, within the limit, was answered", id)
			}
			refused[id] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("%d calls beyond the limit refused, want %d", len(refused), extra)
		}
	}
	p, q := n.peer(600), n.peer(601)
	p.mu.Lock()
	relayed := len(p.relayed)
	p.mu.Unlock()
	q.mu.Lock()
	pending := len(q.calls)
	q.mu.Unlock()
	if relayed != limit || pending != limit {
		t.Errorf("the relay holds %d relayed calls and %d calls awaiting a reply, want %d", relayed, pending, limit)
	}
}

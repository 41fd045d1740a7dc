package runtime

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
)

// A peer whose calls each carry the most metadata allowed (16 KiB), to a
// method that takes its time, cannot make the node hold it beyond its
// share of the node's memory budget: the metadata counts with the
// arguments, and a call beyond the share is refused with ErrOverloaded.
func TestCallMetadataCharged(t *testing.T) {
	const limit = 1 << 20
	release := make(chan struct{})
	defer close(release)
	slow := &codegen.ServiceDesc{Name: "test.Slow", Methods: []*codegen.MethodDesc{{
		Name: "Slow", ID: 45,
		Handler: func(ctx context.Context, impl any, call codegen.ServerCall) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return call.Reply(&struct{}{})
		},
	}}}
	n, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Insecure: true, MaxPeerMemory: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	if err := n.Register(slow, struct{}{}); err != nil {
		t.Fatal(err)
	}
	var md Metadata
	for i := range maxMetadataEntries {
		md = append(md, MetadataEntry{fmt.Sprintf("k%02d", i), strings.Repeat("v", maxMetadataBytes/maxMetadataEntries-3)})
	}
	if err := validMetadata(md); err != nil {
		t.Fatal(err)
	}
	a := dialRaw(t, n, 600)
	const calls = 2 * limit / maxMetadataBytes // twice what fits
	for id := range uint64(calls) {
		a.write(t, rawFrame(kindRequest, id+1, append(appendRequest(nil, &request{method: 45, metadata: md}), 0x80)))
	}
	select {
	case <-a.replies: // a refusal: every call accepted waits for release
	case <-time.After(5 * time.Second):
		t.Fatalf("%d calls carrying %d KiB of metadata each were all accepted (the budget holds %d of %d bytes)",
			calls, maxMetadataBytes>>10, n.tcfg.Budget.Used(), limit)
	}
	if used := n.tcfg.Budget.Used(); used > limit {
		t.Errorf("the node holds %d bytes for the peer, over its budget of %d", used, limit)
	}
}

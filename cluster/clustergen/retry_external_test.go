package clustergen_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster/clustergen"
	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// A call refused for want of a marshal transformer is a mistake of
// configuration: a balancer does not make it again on another member, even
// though it was not sent.
func TestNoTransformerNotRetried(t *testing.T) {
	ring, err := keyring.New([]byte("clustergen-test-cluster-key-0123"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := runtime.NewNode(runtime.Config{Name: "caller", Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// No transformer for *testsvc.Handle on n: the call fails before it is
	// sent, whatever its target.
	_, err = testsvc.NewHandlesProxy(n, 4242).Rename(ctx, testsvc.Holder{}, "")
	if !errors.Is(err, runtime.ErrNoTransformer) || !runtime.NotSent(err) {
		t.Fatalf("Rename: %v, want ErrNoTransformer, not sent", err)
	}
	for _, flags := range []codegen.MethodFlags{0, codegen.Idempotent} {
		if clustergen.Retryable(err, flags) {
			t.Errorf("retryable(%v, %v) = true", err, flags)
		}
	}
}

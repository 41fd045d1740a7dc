package clustergen

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// TestRetryable checks which failed calls a balancer makes again: the
// network tests of package cluster show it with real calls.
func TestRetryable(t *testing.T) {
	notSent := fmt.Errorf("%w (S.M)", ErrNoMember) // runtime.NotSent errors are made by the runtime only
	mayHaveRun := fmt.Errorf("call: %w", runtime.ErrShuttingDown)
	remote := &runtime.RemoteError{Message: "boom"}
	tests := []struct {
		name  string
		err   error
		flags codegen.MethodFlags
		want  bool
	}{
		{"not sent", notSent, 0, true},
		{"too many in flight", fmt.Errorf("%w (S.M)", ErrTooManyInFlight), 0, true},
		{"not sent, one-shot", notSent, codegen.OneShot, false},
		{"may have run", mayHaveRun, 0, false},
		{"may have run, idempotent", mayHaveRun, codegen.Idempotent, true},
		{"unreachable after sending, idempotent", fmt.Errorf("x: %w", runtime.ErrUnreachable), codegen.Idempotent, true},
		{"the implementation answered, idempotent", remote, codegen.Idempotent, false},
		{"cancelled", fmt.Errorf("x: %w", runtime.ErrCanceled), codegen.Idempotent, false},
		{"deadline", context.DeadlineExceeded, codegen.Idempotent, false},
		{"an application error", errors.New("no such key"), codegen.Idempotent, false},
	}
	for _, tc := range tests {
		if got := retryable(tc.err, tc.flags); got != tc.want {
			t.Errorf("%s: retryable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

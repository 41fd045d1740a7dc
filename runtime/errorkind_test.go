package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	trellis "github.com/trellisrpc/trellis/runtime"
)

func TestErrorKind(t *testing.T) {
	call := func(err error) error { return &trellis.CallError{Method: "S.M", Err: err} }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, trellis.KindOK},
		{call(trellis.ErrUnreachable), trellis.KindUnreachable},
		{call(trellis.ErrNoRoute), trellis.KindNoRoute},
		{call(trellis.ErrCanceled), trellis.KindCanceled},
		{call(trellis.ErrDeadlineExceeded), trellis.KindDeadline},
		{context.DeadlineExceeded, trellis.KindDeadline},
		{call(trellis.ErrRemotePanic), trellis.KindRemotePanic},
		{call(fmt.Errorf("%w: bad frame", trellis.ErrProtocol)), trellis.KindProtocol},
		{call(trellis.ErrUnknownMethod), trellis.KindUnknownMethod},
		{call(trellis.ErrReleased), trellis.KindReleased},
		{call(trellis.ErrClosed), trellis.KindClosed},
		{call(trellis.ErrShuttingDown), trellis.KindShuttingDown},
		{call(trellis.ErrOverloaded), trellis.KindOverloaded},
		{call(fmt.Errorf("%w: node a has none for T", trellis.ErrNoTransformer)), trellis.KindNoTransformer},
		{call(fmt.Errorf("%w: 70 MiB of arguments", trellis.ErrTooLarge)), trellis.KindTooLarge},
		{call(fmt.Errorf("%w: %w", trellis.ErrRejected, &trellis.RemoteError{Message: "bad auth"})), trellis.KindRejected},
		{call(fmt.Errorf("%w: node a: arguments: bad handle", trellis.ErrTransformFailed)), trellis.KindTransformFailed},
		{call(errors.New("something else of the machinery")), trellis.KindOther},
		{errors.New("the implementation's own"), trellis.KindApplication},
	} {
		if got := trellis.ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

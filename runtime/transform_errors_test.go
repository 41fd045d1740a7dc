package runtime_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// seen records what a message transformer was shown.
type seen struct {
	mu   sync.Mutex
	msgs []string
}

func (s *seen) add(side string, m *trellis.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	md, _ := m.Metadata.Get("served-by")
	e := side
	if m.Reply {
		e += " reply"
	}
	if m.Error {
		e += " error"
	}
	if md != "" {
		e += " md=" + md
	}
	s.msgs = append(s.msgs, e)
}

func (s *seen) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := strings.Join(s.msgs, ", ")
	s.msgs = nil
	return out
}

// TestNodeTransformerSeesErrorReplies checks that the node's message
// transformer sees the error replies of the calls it serves (with
// Message.Error set) and may put metadata on them, as on results; that a
// failure of its Outgoing on an error reply still gives the caller an
// error naming both, with the connection kept; and that a call refused
// before dispatch does not pass Outgoing.
func TestNodeTransformerSeesErrorReplies(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	for _, n := range []*trellis.Node{p.client, p.server} {
		if err := trellis.RegisterError(n, "test.NotFound", testsvc.ErrNotFound); err != nil {
			t.Fatal(err)
		}
	}
	var log seen
	var failOut, refuseIn bool // set before each call, read on the server
	p.server.SetInterceptor(trellis.TransformerFuncs{
		In: func(m *trellis.Message) error {
			log.add("server-in", m)
			if refuseIn {
				return errors.New("bad auth")
			}
			return nil
		},
		Out: func(m *trellis.Message) error {
			log.add("server-out", m)
			if failOut {
				return errors.New("cannot sign")
			}
			m.Metadata.Set("served-by", "server")
			return nil
		},
	})
	trellis.ProxyOf(p.kitchen).SetTransformer(trellis.TransformerFuncs{
		Out: func(m *trellis.Message) error { log.add("client-out", m); return nil },
		In:  func(m *trellis.Message) error { log.add("client-in", m); return nil },
	})

	for _, tc := range []struct {
		name              string
		failOut, refuseIn bool
		call              func() error
		want              string // what the transformers saw
		check             func(err error) string
	}{{
		name: "results",
		call: func() error { _, _, err := p.kitchen.Echo(ctx, "x", 1); return err },
		want: "client-out, server-in, server-out reply, client-in reply md=server",
		check: func(err error) string {
			if err != nil {
				return "unexpected error"
			}
			return ""
		},
	}, {
		name: "application error",
		call: func() error { return p.kitchen.Fail(ctx, "notfound") },
		want: "client-out, server-in, server-out reply error, client-in reply error md=server",
		check: func(err error) string {
			if !errors.Is(err, testsvc.ErrNotFound) || trellis.ErrorKind(err) != trellis.KindApplication || trellis.NotSent(err) {
				return "want the registered application error, sent"
			}
			return ""
		},
	}, {
		name: "panic",
		call: func() error { return p.kitchen.Panic(ctx, "boom") },
		want: "client-out, server-in, server-out reply error, client-in reply error md=server",
		check: func(err error) string {
			if !errors.Is(err, trellis.ErrRemotePanic) {
				return "want ErrRemotePanic"
			}
			return ""
		},
	}, {
		name:    "outgoing fails on an error reply",
		failOut: true,
		call:    func() error { return p.kitchen.Fail(ctx, "notfound") },
		want:    "client-out, server-in, server-out reply error, client-in reply error",
		check: func(err error) string {
			if !errors.Is(err, trellis.ErrRejected) || trellis.ErrorKind(err) != trellis.KindRejected || trellis.NotSent(err) ||
				!strings.Contains(err.Error(), "cannot sign") || !strings.Contains(err.Error(), "not found") {
				return "want ErrRejected, sent, naming the transformer's error and the call's"
			}
			return ""
		},
	}, {
		name:    "outgoing fails on results",
		failOut: true,
		call:    func() error { _, _, err := p.kitchen.Echo(ctx, "x", 1); return err },
		want:    "client-out, server-in, server-out reply, client-in reply error",
		check: func(err error) string {
			if !errors.Is(err, trellis.ErrRejected) || trellis.NotSent(err) || !strings.Contains(err.Error(), "cannot sign") {
				return "want ErrRejected, sent, with the transformer's message"
			}
			return ""
		},
	}, {
		name:     "incoming refuses",
		refuseIn: true,
		call:     func() error { return p.kitchen.Nothing(ctx) },
		want:     "client-out, server-in, client-in reply error",
		check: func(err error) string {
			if !errors.Is(err, trellis.ErrRejected) || trellis.ErrorKind(err) != trellis.KindRejected || !trellis.NotSent(err) ||
				!strings.Contains(err.Error(), "bad auth") {
				return "want ErrRejected, not sent, with the transformer's message"
			}
			return ""
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			failOut, refuseIn = tc.failOut, tc.refuseIn
			err := tc.call()
			if got := log.take(); got != tc.want {
				t.Errorf("transformers saw [%s], want [%s]", got, tc.want)
			}
			if why := tc.check(err); why != "" {
				t.Errorf("err = %v (kind %s, not sent %v): %s", err, trellis.ErrorKind(err), trellis.NotSent(err), why)
			}
			// The connection is kept: the next call goes through on it.
			failOut, refuseIn = false, false
			if _, _, err := p.kitchen.Echo(ctx, "after", 2); err != nil {
				t.Fatalf("the call after: %v", err)
			}
			log.take()
		})
	}
}

// registerPicky registers on n a transformer for *testsvc.Handle whose out
// refuses handles named "poison" and whose in refuses snapshots named
// "refused".
func registerPicky(t *testing.T, n *trellis.Node) {
	t.Helper()
	err := trellis.RegisterTransformer(n,
		func(h *testsvc.Handle) (testsvc.HandleSnapshot, error) {
			if h.Name() == "poison" {
				return testsvc.HandleSnapshot{}, errors.New("cannot snapshot poison")
			}
			return testsvc.HandleSnapshot{Name: h.Name()}, nil
		},
		func(s testsvc.HandleSnapshot) (*testsvc.Handle, error) {
			if s.Name == "refused" {
				return nil, errors.New("unknown handle refused")
			}
			return testsvc.NewHandle(s.Name), nil
		})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMarshalTransformerFailureFailsOnlyTheCall checks that an error of a
// marshal transformer, on either side and in either direction, fails the
// call with ErrTransformFailed naming the type, the method and the node,
// and keeps the connection (the bytes were well-formed).
func TestMarshalTransformerFailureFailsOnlyTheCall(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	for _, n := range []*trellis.Node{p.client, p.server} {
		registerPicky(t, n)
	}
	if err := testsvc.RegisterHandles(p.server, testsvc.HandlesImpl{}); err != nil {
		t.Fatal(err)
	}
	h := testsvc.NewHandlesProxy(p.client, p.server.ID())
	for _, tc := range []struct {
		name     string
		handle   string // the argument's handle
		prefix   string // the server renames it with this prefix
		node     string // the node whose transformer fails
		where    string
		notSent  bool
		function string
	}{
		{"caller's out on an argument", "poison", "", "client", "arguments", true, "transforming"},
		{"server's in on an argument", "refused", "", "server", "arguments", false, "restoring"},
		{"server's out on a result", "son", "poi", "server", "results", false, "transforming"},
		{"caller's in on a result", "used", "ref", "client", "results", false, "restoring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Rename(ctx, testsvc.Holder{One: testsvc.NewHandle(tc.handle)}, tc.prefix)
			if !errors.Is(err, trellis.ErrTransformFailed) || errors.Is(err, trellis.ErrProtocol) ||
				trellis.ErrorKind(err) != trellis.KindTransformFailed || trellis.NotSent(err) != tc.notSent {
				t.Fatalf("err = %v (kind %s, not sent %v), want ErrTransformFailed (not sent %v)", err, trellis.ErrorKind(err), trellis.NotSent(err), tc.notSent)
			}
			for _, want := range []string{"*testsvc.Handle", "Handles.Rename", "node " + tc.node, tc.where, tc.function} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if !p.client.Connected(p.server.ID()) {
				t.Fatal("the connection was closed")
			}
			out, err := h.Rename(ctx, testsvc.Holder{One: testsvc.NewHandle("fine")}, "x-")
			if err != nil || out.One.Name() != "x-fine" {
				t.Fatalf("the call after: %+v, %v", out, err)
			}
		})
	}

	// Arguments that do not decode at all still break the protocol: the
	// call fails with ErrProtocol and the connection is closed.
	i := slices.IndexFunc(testsvc.HandlesService.Methods, func(m *codegen.MethodDesc) bool { return m.Name == "Rename" })
	if i < 0 {
		t.Fatal("Handles has no method Rename")
	}
	rename := testsvc.HandlesService.Methods[i]
	c := rawClient(p.client, p.server.ID(), testsvc.HandlesService)
	err := c.Call(ctx, rename, "not the arguments of Rename", nil)
	if !errors.Is(err, trellis.ErrProtocol) || errors.Is(err, trellis.ErrTransformFailed) {
		t.Fatalf("undecodable arguments: %v, want ErrProtocol", err)
	}
	// The server closes the connection after its error reply: the client
	// sees it shortly after the reply.
	for deadline := time.Now().Add(5 * time.Second); p.client.Connected(p.server.ID()); {
		if time.Now().After(deadline) {
			t.Fatal("the connection is still up 5 s after undecodable arguments")
		}
		time.Sleep(5 * time.Millisecond) // polling a state: the node has no event for a lost connection
	}
}

// TestClientInterceptorSeesReplyMetadata checks that a client interceptor
// reads the metadata the server's message transformer put on the reply,
// on results and on errors, in OutgoingCall.ReplyMetadata.
func TestClientInterceptorSeesReplyMetadata(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	p.server.SetInterceptor(trellis.TransformerFuncs{Out: func(m *trellis.Message) error {
		m.Metadata.Set("served-by", "server")
		return nil
	}})
	var got []string // one entry per call, read after next returns
	p.client.Intercept(func(ctx context.Context, call *trellis.OutgoingCall, next func(context.Context) error) error {
		err := next(ctx)
		v, _ := call.ReplyMetadata.Get("served-by")
		got = append(got, v)
		return err
	}, nil, nil)
	if _, _, err := p.kitchen.Echo(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	if err := p.kitchen.Fail(ctx, "plain"); err == nil {
		t.Fatal("Fail did not fail")
	}
	p.server.SetInterceptor(nil)
	if err := p.kitchen.Nothing(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"server", "server", ""}; !slices.Equal(got, want) {
		t.Errorf("client interceptor read reply metadata %q, want %q", got, want)
	}
}

// TestTimeCrossing checks what the package documentation says of a
// time.Time that crosses: instant and offset kept (Equal holds), the
// location's name (but offset 0 arrives as UTC) and the monotonic reading
// not, the zero time zero.
func TestTimeCrossing(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	paris := time.FixedZone("CET", 3600) // a named zone, as time.LoadLocation gives
	for _, sent := range []time.Time{
		time.Date(2026, 12, 5, 12, 0, 0, 123456789, paris),
		time.Now(), // with a monotonic reading
		{},
	} {
		got, err := p.kitchen.RoundTrip(ctx, testsvc.Everything{When: sent})
		if err != nil {
			t.Fatal(err)
		}
		_, sentOffset := sent.Zone()
		name, offset := got.When.Zone()
		if !got.When.Equal(sent) || offset != sentOffset || got.When.IsZero() != sent.IsZero() {
			t.Errorf("sent %v, got %v: want an equal instant with offset %d", sent, got.When, sentOffset)
		}
		if sentOffset != 0 && name != "" {
			t.Errorf("sent %v, got %v: the zone's name %q crossed, the documentation says it does not", sent, got.When, name)
		}
	}
}

package runtime_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
)

var errUnauthorized = errors.New("unauthorized")

// xor scrambles a body; applying it twice restores it.
func xor(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = b[i] ^ 0x5a
	}
	return out
}

func TestMessageTransformers(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	for _, n := range []*trellis.Node{p.client, p.server} {
		if err := trellis.RegisterError(n, "test.Unauthorized", errUnauthorized); err != nil {
			t.Fatal(err)
		}
	}
	// The server checks a token, unscrambles calls and scrambles replies.
	var served atomic.Int64
	p.server.SetInterceptor(trellis.TransformerFuncs{
		In: func(m *trellis.Message) error {
			if tok, _ := m.Metadata.Get("auth"); tok != "s3cret" {
				return errUnauthorized
			}
			if m.Method.Name != "Echo" || m.Reply {
				return errors.New("interceptor saw the wrong message")
			}
			m.Body = xor(m.Body)
			served.Add(1)
			return nil
		},
		Out: func(m *trellis.Message) error {
			m.Metadata.Set("served-by", "server")
			m.Body = xor(m.Body)
			return nil
		},
	})

	// Without the transformer: refused, with the registered error.
	if _, _, err := p.kitchen.Echo(ctx, "x", 1); !errors.Is(err, errUnauthorized) {
		t.Fatalf("call without a token: %v, want errUnauthorized", err)
	}

	var servedBy atomic.Value
	trellis.ProxyOf(p.kitchen).SetTransformer(trellis.TransformerFuncs{
		Out: func(m *trellis.Message) error {
			m.Metadata.Set("auth", "s3cret")
			m.Body = xor(m.Body)
			return nil
		},
		In: func(m *trellis.Message) error {
			v, _ := m.Metadata.Get("served-by")
			servedBy.Store(v)
			if !m.Error {
				m.Body = xor(m.Body)
			}
			return nil
		},
	})
	s, n, err := p.kitchen.Echo(ctx, "through transformers", 42)
	if err != nil || s != "through transformers" || n != 42 {
		t.Fatalf("Echo = %q, %d, %v", s, n, err)
	}
	if servedBy.Load() != "server" || served.Load() != 1 {
		t.Errorf("reply metadata %v, served %d; want server, 1", servedBy.Load(), served.Load())
	}

	// An outgoing transformer can reject a call before it is sent.
	errStop := errors.New("stopped here")
	trellis.ProxyOf(p.kitchen).SetTransformer(trellis.TransformerFuncs{Out: func(*trellis.Message) error { return errStop }})
	if _, _, err := p.kitchen.Echo(ctx, "x", 1); !errors.Is(err, errStop) {
		t.Fatalf("rejected call: %v, want errStop", err)
	}
	if served.Load() != 1 {
		t.Errorf("a rejected call reached the server")
	}
	// Removing the transformer restores the plain path (and the server refuses it).
	trellis.ProxyOf(p.kitchen).SetTransformer(nil)
	if _, _, err := p.kitchen.Echo(ctx, "x", 1); !errors.Is(err, errUnauthorized) {
		t.Fatalf("call after removing the transformer: %v", err)
	}
}

func TestTransformerOption(t *testing.T) {
	p := newPair(t)
	var saw atomic.Int64
	k := rawClient(p.client, p.server.ID(), testsvc.KitchenService, trellis.WithTransformer(trellis.TransformerFuncs{
		Out: func(m *trellis.Message) error { saw.Add(1); return nil },
	}))
	if err := k.Call(testCtx(t), trellis.ProxyOf(p.kitchen).Service().Methods[0], nil, nil); err == nil {
		t.Log("call succeeded")
	}
	if saw.Load() != 1 {
		t.Fatalf("the transformer given at creation saw %d messages, want 1", saw.Load())
	}
}

package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/internal/testsvc"
	trellis "github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/wire"
)

// rawArgs is a call's arguments already encoded: what a hostile peer sends.
type rawArgs []byte

func (r rawArgs) AppendCBOR(b []byte) []byte       { return append(b, r...) }
func (r rawArgs) DecodeCBOR(d *wire.Decoder) error { return errors.New("not decoded") }

// amplifier returns the encoding of a [][]string of inner arrays of 1<<20
// empty strings each, about size bytes in all: the message that decodes
// into 16 times its size.
func amplifier(size int) []byte {
	const inner = 1 << 20
	n := size / inner
	b := wire.AppendArrayHeader(make([]byte, 0, n*(inner+5)+5), n)
	empties := bytes.Repeat([]byte{0x60}, inner) // ""
	for range n {
		b = wire.AppendArrayHeader(b, inner)
		b = append(b, empties...)
	}
	return b
}

func method(t *testing.T, svc *codegen.ServiceDesc, name string) *codegen.MethodDesc {
	t.Helper()
	for _, m := range svc.Methods {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("%s has no method %s", svc.Name, name)
	return nil
}

// TestDecodeBudgetRefusesAmplification sends, over a real connection, 16
// MiB messages of ~16 million empty strings ([][]string), which would
// decode into ~270 MiB: to a method whose arguments have a generated
// decoder and to one decoded by reflection. Each is refused with an error
// that names the budget, without being decoded: the process allocates
// less than the message's own size more than it does for a message of the
// same size refused at its first item (a byte string where an integer is
// expected), which measures what sending and receiving cost. The node
// keeps serving.
func TestDecodeBudgetRefusesAmplification(t *testing.T) {
	const size = 16 << 20
	nested := amplifier(size)
	wrong := wire.AppendBytes(nil, make([]byte, len(nested)-8))
	field := func(name string, v []byte) []byte {
		b := wire.AppendMapHeader(nil, 1)
		b = wire.AppendString(b, name)
		return append(b, v...)
	}
	tests := []struct {
		name, method string
		args         func(field []byte) []byte
	}{
		// Plain has a generated decoder; Everything (with a time.Time)
		// does not.
		{"generated decoder", "RoundTripPlain", func(f []byte) []byte { return append(append(wire.AppendArrayHeader(nil, 3), f...), 0xf6, 0xf6) }},
		{"reflective decoder", "RoundTrip", func(f []byte) []byte { return append(wire.AppendArrayHeader(nil, 1), f...) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logText{}
			p := newPairLogged(t, logs)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // 16 MiB messages, with -race on a busy machine
			defer cancel()
			m := method(t, testsvc.KitchenService, tt.method)
			c := rawClient(p.client, p.server.ID(), testsvc.KitchenService)
			call := func(args []byte) (_ uint64, err error) {
				defer func() {
					// The server closes the connection: reconnect once it has.
					for deadline := time.Now().Add(10 * time.Second); p.client.Connected(p.server.ID()); time.Sleep(10 * time.Millisecond) {
						if time.Now().After(deadline) {
							t.Fatal("the server did not close the connection of an undecodable message")
						}
					}
					if _, err2 := p.client.Connect(ctx, p.server.Addr().String()); err2 != nil {
						t.Fatalf("reconnecting after %v: %v", err, err2) // the server closes the connection of a bad message
					}
				}()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				err = c.Call(ctx, m, rawArgs(args), nil)
				runtime.ReadMemStats(&after)
				return after.TotalAlloc - before.TotalAlloc, err
			}
			// The server answers a message it cannot decode, then closes
			// the connection: the answer may be lost (ErrUnreachable).
			base, err := call(tt.args(field("I", wrong)))
			if !errors.Is(err, trellis.ErrProtocol) && !errors.Is(err, trellis.ErrUnreachable) {
				t.Fatalf("a byte string for an integer: %v, want ErrProtocol", err)
			}
			start := time.Now()
			allocated, err := call(tt.args(field("Nested", nested)))
			t.Logf("refused in %v: %v; %d MiB allocated by the whole process, %d MiB for a message of the same size refused at once",
				time.Since(start), err, allocated>>20, base>>20)
			switch {
			case errors.Is(err, trellis.ErrProtocol) && strings.Contains(err.Error(), "budget"):
			case errors.Is(err, trellis.ErrUnreachable) && logs.contains("budget"):
			default:
				logs.mu.Lock()
				t.Logf("server logs: %q", logs.lines)
				logs.mu.Unlock()
				t.Fatalf("call with a %d MiB amplifying message: %v, want ErrProtocol naming the budget", size>>20, err)
			}
			if allocated > base+size {
				t.Errorf("%d MiB allocated while refusing a %d MiB message, %d MiB for one refused at once", allocated>>20, size>>20, base>>20)
			}
			if s, n, err := p.kitchen.Echo(ctx, "ok", 1); err != nil || s != "ok" || n != 1 {
				t.Fatalf("Echo after the refusal: %q %d %v", s, n, err)
			}
		})
	}
}

// TestDecodeBudgetAcceptsDenseMessages checks that legitimate messages
// whose decoded form is larger than their encoding, up to the default
// factor, still decode: small integers (8 times their encoding) and
// one-byte strings (8.5 times).
func TestDecodeBudgetAcceptsDenseMessages(t *testing.T) {
	p := newPair(t)
	ctx := testCtx(t)
	const n = 1 << 18 // 2 MiB decoded from 256 KiB: beyond the budget's floor
	xs := make([]int, n)
	if sum, err := p.kitchen.Sum(ctx, xs...); err != nil || sum != 0 {
		t.Fatalf("Sum of %d zeros: %d, %v", n, sum, err)
	}
	var plain testsvc.Plain
	plain.Nested = [][]string{make([]string, n)}
	for i := range plain.Nested[0] {
		plain.Nested[0][i] = "x"
	}
	got, _, _, err := p.kitchen.RoundTripPlain(ctx, plain, nil, nil)
	if err != nil || len(got.Nested) != 1 || len(got.Nested[0]) != n {
		t.Fatalf("RoundTripPlain of %d one-byte strings: %v", n, err)
	}
}

// logText is a slog.Handler that keeps the text of records and their
// attributes.
type logText struct {
	mu    sync.Mutex
	lines []string
}

func (l *logText) Enabled(context.Context, slog.Level) bool { return true }
func (l *logText) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.Key + "=" + a.Value.String()
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return nil
}
func (l *logText) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logText) WithGroup(string) slog.Handler      { return l }

func (l *logText) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// newPairLogged is newPair with the server's logs kept in logs.
func newPairLogged(t *testing.T, logs *logText) *pair {
	t.Helper()
	// 16 MiB messages under -race on a busy machine may stall a node for
	// seconds: keepalives must not end the connections meanwhile.
	const keepalive = time.Minute
	server, err := trellis.NewNode(trellis.Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring, Logger: slog.New(logs), KeepaliveTimeout: keepalive})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		server.Close(ctx)
	})
	impl := testsvc.NewImpl()
	if err := testsvc.RegisterKitchen(server, impl); err != nil {
		t.Fatal(err)
	}
	client, err := trellis.NewNode(trellis.Config{Name: "client", Keyring: testKeyring, KeepaliveTimeout: keepalive})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	if _, err := client.Connect(testCtx(t), server.Addr().String()); err != nil {
		t.Fatal(err)
	}
	return &pair{server: server, client: client, impl: impl, kitchen: testsvc.NewKitchenProxy(client, server.ID())}
}

package runtime

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
)

// growDesc is a service whose method Grow answers a string of the length
// asked for, or echoes its argument: a small call with a big reply, or a
// big call.
var growDesc = &codegen.ServiceDesc{Name: "test.Grow", Methods: []*codegen.MethodDesc{{
	Name: "Grow", ID: 1,
	Handler: func(ctx context.Context, impl any, call codegen.ServerCall) error {
		var a growArgs
		if err := call.Decode(&a); err != nil {
			return err
		}
		if a.N > 0 {
			a.S = strings.Repeat("x", a.N)
		}
		return call.Reply(&a)
	},
}}}

type growArgs struct {
	_ struct{} `cbor:",toarray"`
	N int
	S string
}

// growPair starts a server serving growDesc and a client connected to it,
// with the given MaxMessageSize (0: the default) and loggers, closed when
// the test ends, and returns the client's Client for growDesc.
func growPair(t *testing.T, serverMax, clientMax int, serverLogs, clientLogs *logRecorder) *Client {
	t.Helper()
	server, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring, MaxMessageSize: serverMax, Logger: slog.New(serverLogs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(context.Background()) })
	if err := server.Register(growDesc, struct{}{}); err != nil {
		t.Fatal(err)
	}
	client, err := NewNode(Config{Name: "client", Keyring: testKeyring, MaxMessageSize: clientMax, Logger: slog.New(clientLogs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := client.Connect(ctx, server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return newClient(client, id, growDesc)
}

// TestTooLarge sends an argument and asks for a reply over MaxMessageSize:
// each fails at once with ErrTooLarge (not ErrUnreachable, not a deadline),
// is logged by the side that refused it, and the connection stays up for
// the next call.
func TestTooLarge(t *testing.T) {
	const limit = 1 << 20
	serverLogs, clientLogs := &logRecorder{}, &logRecorder{}
	c := growPair(t, limit, limit, serverLogs, clientLogs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name string
		args growArgs
		logs *logRecorder
		log  string
	}{
		{"argument", growArgs{S: strings.Repeat("a", limit+1)}, clientLogs, "call refused: arguments too large"},
		{"reply", growArgs{N: limit + 1}, serverLogs, "reply refused: results too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			var res growArgs
			err := c.do(ctx, growDesc.Methods[0], &tt.args, &res)
			elapsed := time.Since(start)
			var ce *CallError
			if !errors.Is(err, ErrTooLarge) || !errors.As(err, &ce) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("Call: %v, want a *CallError wrapping ErrTooLarge", err)
			}
			if n := strings.Count(err.Error(), ErrTooLarge.Error()); n != 1 {
				t.Errorf("the error says %q %d times, want once: %v", ErrTooLarge, n, err)
			}
			if elapsed > time.Second {
				t.Errorf("ErrTooLarge came after %v, want within a second", elapsed)
			}
			if !tt.logs.contains(tt.log) {
				t.Errorf("no log line %q on the refusing side", tt.log)
			}
			// The connection is still up: a call that fits is answered.
			if err := c.do(ctx, growDesc.Methods[0], &growArgs{N: 10}, &res); err != nil || len(res.S) != 10 {
				t.Fatalf("the next call: %v, %d bytes", err, len(res.S))
			}
			if !c.node.Connected(c.target) {
				t.Fatal("the connection was closed")
			}
		})
	}
}

// TestTooLargeForPeer: nodes with different MaxMessageSize. A message over
// the receiver's cap is refused by the sender with ErrTooLarge (arguments:
// before sending, NotSent holding; results: the server sends ErrTooLarge
// instead), naming the receiver's cap, and the connection stays up. Before,
// it was sent, and the receiver dropped the connection with a protocol
// error (the caller saw ErrUnreachable).
func TestTooLargeForPeer(t *testing.T) {
	const small, size = 64 << 10, 80_000
	tests := []struct {
		name                 string
		serverMax, clientMax int
		args                 growArgs
		notSent              bool
		logs                 string // "server" or "client": the side that refuses
		log                  string
	}{
		{"result over the client's cap", 0, small, growArgs{N: size}, false, "server", "reply refused: results too large"},
		{"argument over the server's cap", small, 0, growArgs{S: strings.Repeat("a", size)}, true, "client", "call refused: arguments too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverLogs, clientLogs := &logRecorder{}, &logRecorder{}
			c := growPair(t, tt.serverMax, tt.clientMax, serverLogs, clientLogs)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var res growArgs
			err := c.do(ctx, growDesc.Methods[0], &tt.args, &res)
			if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("Call: %v, want ErrTooLarge", err)
			}
			if NotSent(err) != tt.notSent {
				t.Errorf("NotSent is %v, want %v: %v", NotSent(err), tt.notSent, err)
			}
			if want := "the cap is 65536 (the MaxMessageSize of node "; !strings.Contains(err.Error(), want) {
				t.Errorf("the error does not say %q: %v", want, err)
			}
			logs := map[string]*logRecorder{"server": serverLogs, "client": clientLogs}[tt.logs]
			if !logs.contains(tt.log) {
				t.Errorf("no log line %q on the %s", tt.log, tt.logs)
			}
			if err := c.do(ctx, growDesc.Methods[0], &growArgs{N: small / 2}, &res); err != nil || len(res.S) != small/2 {
				t.Fatalf("the next call: %v, %d bytes", err, len(res.S))
			}
			if !c.node.Connected(c.target) {
				t.Fatal("the connection was closed")
			}
		})
	}
}

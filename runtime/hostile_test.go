package runtime

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

// recorder is a transport.Handler that records what arrives.
type recorder struct {
	mu     sync.Mutex
	msgs   []string
	closed chan error
}

func newRecorder() *recorder { return &recorder{closed: make(chan error, 1)} }

func (r *recorder) HandleMessage(kind transport.Kind, id uint64, payload []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, string(payload))
	return nil
}
func (r *recorder) HandleGoAway()          {}
func (r *recorder) HandleClosed(err error) { r.closed <- err }

// logRecorder is a slog.Handler that keeps messages and their "err"/"reason".
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "reason" {
			line += " " + a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }
func (l *logRecorder) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

var echoDesc = &codegen.ServiceDesc{Name: "test.Echo", Methods: []*codegen.MethodDesc{{
	Name: "Echo", ID: 42,
	Handler: func(ctx context.Context, impl any, call codegen.ServerCall) error {
		var s struct {
			_ struct{} `cbor:",toarray"`
			S string
		}
		if err := call.Decode(&s); err != nil {
			return err
		}
		return call.Reply(&s)
	},
}}}

// TestHostileMessagesCloseTheConnection sends well-framed messages whose
// contents are wrong: each closes the connection with a logged reason, and
// the node keeps serving others.
func TestHostileMessagesCloseTheConnection(t *testing.T) {
	logs := &logRecorder{}
	server, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close(context.Background())
	if err := server.Register(echoDesc, struct{}{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		kind    transport.Kind
		payload []byte
		log     string
	}{
		{"garbage CBOR arguments", kindRequest, append(appendRequest(nil, &request{method: 42}), 0xff, 0x00, 0x13), "undecodable arguments"},
		{"arguments of the wrong type", kindRequest, append(appendRequest(nil, &request{method: 42}), 0x81, 0x01), "undecodable arguments"},
		{"bad envelope", kindRequest, []byte{0x80}, "unknown request flags"},
		{"forged hop budget", kindRequest, append(appendRequest(nil, &request{routed: true, dst: 5, src: 6, ttl: 255, method: 42}), 0x80), "255 hops left, beyond the budget of 16"},
		{"unknown kind", 99, nil, "unknown message kind 99"},
		{"reply to nothing with garbage", kindResponse, []byte{0xff}, "unknown response flags"},
		{"cancel with a payload", kindCancel, []byte{1}, "cancel frame with a payload"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := transport.Dial(ctx, server.Addr().String(), transport.Config{Self: NodeID(77 + i), Keyring: testKeyring}, server.ID())
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder()
			c.Start(rec)
			defer c.Abort(nil)
			buf := transport.GetBuffer()
			buf.Write(tt.payload)
			if err := c.Send(ctx, tt.kind, 1, buf); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-rec.closed:
				if !errors.Is(err, transport.ErrPeerGone) {
					t.Logf("closed with %v", err)
				}
			case <-ctx.Done():
				t.Fatal("the server did not close the connection")
			}
			if !logs.contains(tt.log) {
				t.Errorf("no log line contains %q; logs: %q", tt.log, logs.lines)
			}
		})
	}
	// The node still serves a well-behaved caller.
	client, err := NewNode(Config{Name: "client", Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := client.Connect(ctx, server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	in := struct {
		_ struct{} `cbor:",toarray"`
		S string
	}{S: "ok"}
	out := in
	out.S = ""
	if err := newClient(client, id, echoDesc).do(ctx, echoDesc.Methods[0], &in, &out); err != nil || out.S != "ok" {
		t.Fatalf("call after hostile peers: %q, %v", out.S, err)
	}
}

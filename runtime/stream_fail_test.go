package runtime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// closingReader records that it was closed.
type closingReader struct {
	io.Reader
	closed atomic.Bool
}

func (r *closingReader) Close() error {
	r.closed.Store(true)
	return nil
}

// A pump that fails to send a chunk ends the receiver's Read with
// ErrStreamReset and the reason, logs it, and closes its source. Before,
// it forgot the stream without a word, and the Read waited for ever.
func TestStreamSendFailureReachesReader(t *testing.T) {
	logs := &logRecorder{}
	server, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close(context.Background())
	client, err := NewNode(Config{Name: "client", Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Connect(ctx, server.Addr().String()); err != nil {
		t.Fatal(err)
	}
	fault := errors.New("injected send failure")
	server.streams.chunkErr.Store(&fault)
	src := &closingReader{Reader: strings.NewReader(strings.Repeat("y", 70_000))}
	ref, err := server.exportStream(ctx, src, client.ID())
	if err != nil {
		t.Fatal(err)
	}
	rd, err := client.importStream(ref, server.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(rd)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		rd.Close()
		<-done
		t.Fatal("the Read did not end within 10 s")
	}
	if !errors.Is(err, ErrStreamReset) {
		t.Errorf("Read: %v, want ErrStreamReset", err)
	}
	for _, want := range []string{"node server could not send chunk 0 of stream", "injected send failure"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Read: %v, want it to say %q", err, want)
		}
	}
	waitUntil(t, "the source to be closed", src.closed.Load)
	if !logs.contains("stream failed") {
		t.Error("the sender logged nothing")
	}
	waitUntil(t, "the stream tables to empty", func() bool {
		a, b := server.StreamStats()
		c, d := client.StreamStats()
		return a+b+c+d == 0
	})
}

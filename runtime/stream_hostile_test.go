package runtime

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/wire"
)

// A sender that splits its window into one-byte chunks makes the node hold
// about the window, not a queue entry and an allocation per chunk; and an
// empty chunk, which no sender sends (it would hold an entry without
// counting against the window), closes the connection with a logged reason.
func TestStreamTinyChunksBounded(t *testing.T) {
	t.Run("one-byte chunks", func(t *testing.T) {
		n := rawNode(t, nil)
		raw := dialRaw(t, n, 500)
		rd, s := importRaw(t, n, 500, 1)
		const chunks = initialWindow
		var b bytes.Buffer
		for i := range chunks {
			b.Write(dataFrame(1, uint64(i), 0, []byte{byte(i)}))
		}
		raw.write(t, b.Bytes())
		waitUntil(t, "the chunks to arrive", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.next == chunks || s.err != nil
		})
		s.mu.Lock()
		entries, queued, err := len(s.queue), s.queued, s.err
		s.mu.Unlock()
		if err != nil || queued != chunks {
			t.Fatalf("%d bytes queued, stream error %v; want %d bytes and no error", queued, err, chunks)
		}
		if entries > 1 {
			t.Errorf("%d one-byte chunks are held in %d queue entries, want them in one", chunks, entries)
		}
		got := make([]byte, chunks+1)
		k, err := rd.Read(got)
		if err != nil || k != chunks {
			t.Fatalf("Read = %d, %v; want %d bytes", k, err, chunks)
		}
		for i := range k {
			if got[i] != byte(i) {
				t.Fatalf("byte %d is %d, want %d", i, got[i], byte(i))
			}
		}
	})
	t.Run("empty chunks", func(t *testing.T) {
		logs := &logRecorder{}
		n := rawNode(t, slog.New(logs))
		raw := dialRaw(t, n, 501)
		_, s := importRaw(t, n, 501, 1)
		var b bytes.Buffer
		for i := range 1000 {
			b.Write(dataFrame(1, uint64(i), 0, nil))
		}
		go raw.nc.Write(b.Bytes()) // the node may close the connection before reading all
		raw.waitClosed(t)
		waitUntil(t, "the reason to be logged", func() bool { return logs.contains("chunk 0 holds no data") })
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.queue) != 0 {
			t.Errorf("%d empty chunks queued", len(s.queue))
		}
	})
}

// closeCounter is a stream source that counts its Closes.
type closeCounter struct {
	io.Reader
	closed *atomic.Int32
}

func (c closeCounter) Close() error { c.closed.Add(1); return nil }

// A peer that asks for streams and neither reads nor closes them cannot
// make the node hold their sources without limit: beyond
// MaxStreamsPerPeer unfinished streams, the next one is refused and its
// source closed; once the peer closes one, another may be sent.
func TestStreamsToOnePeerBounded(t *testing.T) {
	const limit, extra = 8, 4
	var closed atomic.Int32
	dump := &codegen.ServiceDesc{Name: "test.Dump", Methods: []*codegen.MethodDesc{{
		Name: "Dump", ID: 43,
		Handler: func(ctx context.Context, impl any, call codegen.ServerCall) error {
			ref, err := call.ExportReader(closeCounter{bytes.NewReader(make([]byte, 1<<10)), &closed})
			if err != nil {
				return err
			}
			res := struct {
				_ struct{} `cbor:",toarray"`
				R codegen.StreamRef
			}{R: ref}
			return call.Reply(&res)
		},
	}}}
	n, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Insecure: true, MaxStreamsPerPeer: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	if err := n.Register(dump, struct{}{}); err != nil {
		t.Fatal(err)
	}
	a := dialRaw(t, n, 600)
	call := func(id uint64) {
		t.Helper()
		a.write(t, rawFrame(kindRequest, id, append(appendRequest(nil, &request{method: 43}), 0x80)))
		select {
		case <-a.replies:
		case <-time.After(5 * time.Second):
			t.Fatalf("call %d: no reply", id)
		}
	}
	for id := range uint64(limit + extra) {
		call(id + 1)
	}
	if sending, _ := n.StreamStats(); sending != limit || closed.Load() != extra {
		t.Fatalf("%d streams held for the peer, %d sources closed; want %d and %d", sending, closed.Load(), limit, extra)
	}
	// The peer closes stream 1: one more may be sent.
	a.write(t, rawFrame(kindStream, 1, streamMsg(opCancel, 1, nil)))
	waitUntil(t, "the cancelled stream to end", func() bool { s, _ := n.StreamStats(); return s == limit-1 })
	call(100)
	if sending, _ := n.StreamStats(); sending != limit || closed.Load() != extra+1 {
		t.Fatalf("after a cancel: %d streams held, %d sources closed; want %d and %d", sending, closed.Load(), limit, extra+1)
	}
}

// A peer that sends calls carrying streams to a method that does not read
// them cannot make the node hold a full window of data for each: the
// streams from one node share maxConnWindow, beyond which a stream starts
// with minWindow; beyond MaxStreamsPerPeer unfinished streams, one more is
// refused; and a stream ended while its data waits unread still counts.
func TestStreamsFromOnePeerBounded(t *testing.T) {
	const limit = maxConnWindow/initialWindow + 8 // 8 streams beyond the shared window
	release := make(chan struct{})
	defer close(release)
	hold := &codegen.ServiceDesc{Name: "test.Hold", Methods: []*codegen.MethodDesc{{
		Name: "Hold", ID: 44,
		Handler: func(ctx context.Context, impl any, call codegen.ServerCall) error {
			var args struct {
				_ struct{} `cbor:",toarray"`
				R codegen.StreamRef
			}
			if err := call.Decode(&args); err != nil {
				return err
			}
			r, err := call.ImportReader(args.R)
			if err != nil {
				return err
			}
			defer r.Close()
			select { // never reads
			case <-release:
			case <-ctx.Done():
			}
			return call.Reply(&struct{}{})
		},
	}}}
	n, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Insecure: true, MaxStreamsPerPeer: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	if err := n.Register(hold, struct{}{}); err != nil {
		t.Fatal(err)
	}
	const from = 600
	a := dialRaw(t, n, from)
	call := func(stream uint64) []byte {
		args := wire.AppendArrayHeader(nil, 1)
		args = wire.AppendArrayHeader(args, 2)
		args = wire.AppendUint(wire.AppendUint(args, from), stream)
		return rawFrame(kindRequest, stream, append(appendRequest(nil, &request{method: 44}), args...))
	}
	counts := func() (streams, window int) {
		n.streams.mu.Lock()
		defer n.streams.mu.Unlock()
		return n.streams.receiving[from], n.streams.windows[from]
	}
	for id := range uint64(limit) {
		a.write(t, call(id+1))
	}
	waitUntil(t, "the streams to be received", func() bool { s, _ := counts(); return s == limit })
	if _, w := counts(); w != maxConnWindow+8*minWindow {
		t.Errorf("the node granted %d bytes to %d streams, want %d", w, limit, maxConnWindow+8*minWindow)
	}
	// Stream 1 sends its window and ends: it still counts while its data
	// waits, so one more stream is refused.
	var b bytes.Buffer
	for off := 0; off < initialWindow; off += streamChunk {
		b.Write(dataFrame(1, uint64(off/streamChunk), 0, make([]byte, min(streamChunk, initialWindow-off))))
	}
	b.Write(dataFrame(1, uint64((initialWindow+streamChunk-1)/streamChunk), dataEOF, nil))
	a.write(t, b.Bytes())
	a.write(t, call(limit+1))
	select {
	case id := <-a.replies:
		if id != limit+1 {
			t.Fatalf("call %d answered, want the refusal of call %d", id, limit+1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("one stream beyond the limit was not refused")
	}
	if s, w := counts(); s != limit || w != maxConnWindow+8*minWindow {
		t.Errorf("after a refusal: %d streams and a window of %d, want %d and %d", s, w, limit, maxConnWindow+8*minWindow)
	}
}

package runtime

import (
	"bytes"
	"log/slog"
	"testing"
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

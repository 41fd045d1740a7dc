package transport

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// taker is a Handler that takes the payload of every message it can.
type taker struct {
	*recorder
	conn  *Conn
	taken chan *Payload // nil entries: the payload could not be taken
}

func (h *taker) HandleMessage(kind Kind, id uint64, payload []byte) error {
	h.taken <- h.conn.TakePayload()
	return h.recorder.HandleMessage(kind, id, payload)
}

// A taken payload keeps its bytes while the reader goes on with new
// messages; a fragmented message's payload cannot be taken.
func TestTakePayload(t *testing.T) {
	checkLeaks(t)
	d, a := pair(t, testConfig(1, nil), testConfig(2, nil))
	h := &taker{recorder: newRecorder(8), conn: a, taken: make(chan *Payload, 8)}
	a.Start(h)
	d.Start(newRecorder(1))
	msgs := []struct {
		size     int
		takeable bool
	}{
		{size: 100 << 10, takeable: true},
		{size: 10, takeable: true},
		{size: 200 << 10, takeable: true},
		{size: MaxFramePayload + 1, takeable: false}, // two fragments
	}
	var kept []*Payload
	var want [][]byte
	for i, m := range msgs {
		p := bytes.Repeat([]byte{byte('a' + i)}, m.size)
		if err := d.Send(ctxT(t), 1, uint64(i+1), bufferOf(p)); err != nil {
			t.Fatal(err)
		}
		got := <-h.taken
		h.next(t)
		if (got != nil) != m.takeable {
			t.Fatalf("message %d of %d bytes: taken %v, want %v", i, m.size, got != nil, m.takeable)
		}
		if got != nil {
			kept, want = append(kept, got), append(want, p)
		}
	}
	for i, p := range kept {
		if !bytes.Equal(p.Bytes(), want[i]) {
			t.Errorf("taken payload %d changed after later messages arrived", i)
		}
		p.Release()
	}
}

// countingReader returns up to step bytes per Read, then err.
type countingReader struct {
	left, step, reads, bad int
	err                    error
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.reads++
	if r.bad != 0 {
		return r.bad, nil
	}
	n := min(len(p), r.step, r.left)
	r.left -= n
	if r.left == 0 {
		return n, r.err
	}
	return n, nil
}

func TestBufferReadOnce(t *testing.T) {
	tests := []struct {
		name      string
		r         countingReader
		max       int
		wantN     int
		wantErr   string
		wantReads int
	}{
		{name: "one short read", r: countingReader{left: 1000, step: 10}, max: 100, wantN: 10, wantReads: 1},
		{name: "bounded by max", r: countingReader{left: 1000, step: 1000}, max: 100, wantN: 100, wantReads: 1},
		{name: "data with EOF", r: countingReader{left: 5, step: 10, err: io.EOF}, max: 100, wantN: 5, wantErr: "EOF", wantReads: 1},
		{name: "data with an error", r: countingReader{left: 5, step: 10, err: errors.New("disk on fire")}, max: 100, wantN: 5, wantErr: "disk on fire", wantReads: 1},
		{name: "a Read claiming too much", r: countingReader{bad: 1 << 20}, max: 100, wantN: 0, wantErr: "returned 1048576", wantReads: 1},
		{name: "a negative Read", r: countingReader{bad: -1}, max: 100, wantN: 0, wantErr: "returned -1", wantReads: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := GetBuffer()
			defer PutBuffer(b)
			b.WriteString("env:")
			b.Grow(tt.max + bytes.MinRead)
			before := b.Cap()
			n, err := b.ReadOnce(&tt.r, tt.max)
			if n != tt.wantN || b.Len() != 4+tt.wantN || tt.r.reads != tt.wantReads {
				t.Errorf("ReadOnce = %d (buffer %d bytes, %d Reads), want %d (%d bytes, %d Reads)", n, b.Len(), tt.r.reads, tt.wantN, 4+tt.wantN, tt.wantReads)
			}
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ReadOnce error %v, want %q", err, tt.wantErr)
			}
			if b.Cap() != before {
				t.Errorf("the buffer grew from %d to %d bytes", before, b.Cap())
			}
			if !strings.HasPrefix(b.String(), "env:") {
				t.Errorf("the bytes before were changed: %q", b.String()[:4])
			}
		})
	}
}

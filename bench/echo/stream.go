package echo

import (
	"context"
	"io"
)

// Streamer serves the stream figures: a remote io.Reader, pulled by the
// caller, against a plain TCP copy of the same bytes.
type Streamer interface {
	// Dump returns a reader of n bytes of the Pattern.
	Dump(ctx context.Context, n int64) (io.Reader, error)
}

// StreamImpl is the Streamer the Trellis server runs.
type StreamImpl struct{}

// Dump implements Streamer.
func (StreamImpl) Dump(_ context.Context, n int64) (io.Reader, error) {
	return NewPattern(n), nil
}

// patternBlock is the repeating unit of a Pattern.
var patternBlock = func() (b [4096]byte) {
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

// A Pattern is a reader of N bytes of a cheap deterministic pattern (a
// 4 KiB block repeated): the source of both the Trellis stream and the
// plain TCP copy. Byte i of the stream is byte(i*7) (i mod 4096).
type Pattern struct {
	n, off int64
}

// NewPattern returns a Pattern of n bytes.
func NewPattern(n int64) *Pattern { return &Pattern{n: n} }

// Read implements io.Reader.
func (p *Pattern) Read(b []byte) (int, error) {
	left := p.n - p.off
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > left {
		b = b[:left]
	}
	for i := 0; i < len(b); {
		i += copy(b[i:], patternBlock[(p.off+int64(i))%int64(len(patternBlock)):])
	}
	p.off += int64(len(b))
	return len(b), nil
}

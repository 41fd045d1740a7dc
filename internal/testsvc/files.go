package testsvc

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Files -output files_trellis.go

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
)

// Files passes streams both ways.
type Files interface {
	// Dump returns n pseudo-random bytes from seed (a cheap repeating
	// pattern when seed is negative); if failAt > 0 the stream fails with
	// "disk on fire" after failAt bytes.
	Dump(ctx context.Context, n, seed, failAt int64) (io.Reader, error)
	// Load reads r to its end and returns its length and SHA-256.
	Load(ctx context.Context, r io.Reader) (int64, []byte, error)
	// LoadSome reads n bytes of r, then closes it.
	LoadSome(ctx context.Context, r io.Reader, n int64) (int64, error)
}

// FilesImpl implements Files.
type FilesImpl struct {
	// SourcesClosed counts the Dump sources that were closed.
	SourcesClosed atomic.Int64
	// Last is the source of the last Dump.
	Last atomic.Pointer[Source]
}

// Dump implements Files.
func (f *FilesImpl) Dump(ctx context.Context, n, seed, failAt int64) (io.Reader, error) {
	s := &Source{N: n, FailAt: failAt, rng: rand.NewChaCha8(seedBytes(seed)), pattern: seed < 0, closed: &f.SourcesClosed}
	f.Last.Store(s)
	return s, nil
}

// Load implements Files.
func (f *FilesImpl) Load(ctx context.Context, r io.Reader) (int64, []byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, h.Sum(nil), err
}

// LoadSome implements Files.
func (f *FilesImpl) LoadSome(ctx context.Context, r io.Reader, n int64) (int64, error) {
	got, err := io.CopyN(io.Discard, r, n)
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
	return got, err
}

func seedBytes(seed int64) (b [32]byte) {
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	return b
}

// Source is a reader of N deterministic pseudo-random bytes.
type Source struct {
	N, FailAt int64
	read      int64
	rng       *rand.ChaCha8
	pattern   bool // a repeating pattern instead of random bytes
	closed    *atomic.Int64
	// Read counts the bytes read so far (for tests of flow control).
	Reads atomic.Int64
}

// NewSource returns a Source of n bytes from seed (a cheap repeating
// pattern when seed is negative).
func NewSource(n, seed int64, closed *atomic.Int64) *Source {
	return &Source{N: n, rng: rand.NewChaCha8(seedBytes(seed)), pattern: seed < 0, closed: closed}
}

var patternBytes = func() (b [4096]byte) {
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

// ErrOnFire is the error of a failing Source.
var ErrOnFire = errors.New("disk on fire")

// Read implements io.Reader.
func (s *Source) Read(p []byte) (int, error) {
	if s.FailAt > 0 && s.read >= s.FailAt {
		return 0, ErrOnFire
	}
	left := s.N - s.read
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	if s.FailAt > 0 && int64(len(p)) > s.FailAt-s.read {
		p = p[:s.FailAt-s.read]
	}
	if s.pattern {
		for i := 0; i < len(p); i += len(patternBytes) {
			copy(p[i:], patternBytes[:])
		}
	} else {
		s.rng.Read(p)
	}
	s.read += int64(len(p))
	s.Reads.Add(int64(len(p)))
	return len(p), nil
}

// Close implements io.Closer.
func (s *Source) Close() error {
	if s.closed != nil {
		s.closed.Add(1)
	}
	return nil
}

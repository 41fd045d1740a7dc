package testsvc

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Handles -transformed Handle,Tally,Blob -output handles_trellis.go

import (
	"context"
	"io"
	"sync"
)

// Handle cannot be serialized as it is (its state is unexported); tests
// register a marshal transformer that replaces it by a HandleSnapshot.
type Handle struct {
	mu   sync.Mutex
	name string
}

// NewHandle returns a handle called name.
func NewHandle(name string) *Handle { return &Handle{name: name} }

// Name returns the handle's name.
func (h *Handle) Name() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.name
}

// HandleSnapshot is the wire form of a Handle.
type HandleSnapshot struct {
	Name string
}

// Holder carries handles at several depths.
type Holder struct {
	Label string
	One   *Handle
	Many  []map[string]*Handle
	Arr   [2]*Handle
}

// Handles passes values that hold Handles.
type Handles interface {
	// Rename returns h with every handle renamed with a prefix.
	Rename(ctx context.Context, h Holder, prefix string) (Holder, error)
	// Bump adds d to the counter behind t and returns its value.
	Bump(ctx context.Context, t *Tally, d int) (int, error)
	// Size reads b to its end and returns its length.
	Size(ctx context.Context, b *Blob) (int64, error)
}

// Tally wraps a live Counter; tests register a marshal transformer that
// passes it as a Counter reference.
type Tally struct{ c Counter }

// NewTally returns a Tally over c.
func NewTally(c Counter) *Tally { return &Tally{c: c} }

// Counter returns the counter behind t.
func (t *Tally) Counter() Counter { return t.c }

// Blob wraps a reader; tests register a marshal transformer that passes it
// as a stream.
type Blob struct{ r io.Reader }

// NewBlob returns a Blob reading r.
func NewBlob(r io.Reader) *Blob { return &Blob{r: r} }

// Reader returns the reader behind b.
func (b *Blob) Reader() io.Reader { return b.r }

// HandlesImpl implements Handles.
type HandlesImpl struct{}

// Bump implements Handles.
func (HandlesImpl) Bump(ctx context.Context, t *Tally, d int) (int, error) {
	return t.Counter().Add(ctx, d)
}

// Size implements Handles.
func (HandlesImpl) Size(ctx context.Context, b *Blob) (int64, error) {
	return io.Copy(io.Discard, b.Reader())
}

// Rename implements Handles.
func (HandlesImpl) Rename(ctx context.Context, h Holder, prefix string) (Holder, error) {
	rename := func(x *Handle) *Handle {
		if x == nil {
			return nil
		}
		return NewHandle(prefix + x.Name())
	}
	out := Holder{Label: h.Label, One: rename(h.One)}
	for _, m := range h.Many {
		var nm map[string]*Handle
		if m != nil {
			nm = make(map[string]*Handle, len(m))
			for k, v := range m {
				nm[k] = rename(v)
			}
		}
		out.Many = append(out.Many, nm)
	}
	for i, x := range h.Arr {
		out.Arr[i] = rename(x)
	}
	return out, nil
}

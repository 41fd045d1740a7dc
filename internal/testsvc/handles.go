package testsvc

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Handles -transformed Handle -output handles_trellis.go

import (
	"context"
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
}

// HandlesImpl implements Handles.
type HandlesImpl struct{}

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

package kv

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// A Map is an in-memory Store. Keys and values must not contain a tab or a
// newline, which separate them in the line format.
type Map struct {
	mu sync.RWMutex
	m  map[string]string
}

// NewMap returns an empty Map.
func NewMap() *Map { return &Map{m: make(map[string]string)} }

// Put sets key to value.
func (m *Map) Put(key, value string) {
	m.mu.Lock()
	m.m[key] = value
	m.mu.Unlock()
}

// Len returns the number of entries.
func (m *Map) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m)
}

// WriteTo writes the entries present when it is called to w as lines
// "key\tvalue\n" sorted by key, and returns the number of bytes written.
func (m *Map) WriteTo(w io.Writer) (int64, error) {
	m.mu.RLock()
	keys := make([]string, 0, len(m.m))
	values := make(map[string]string, len(m.m)) // strings are shared, not copied
	for k, v := range m.m {
		keys = append(keys, k)
		values[k] = v
	}
	m.mu.RUnlock()
	slices.Sort(keys)

	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	for _, k := range keys {
		c, err := fmt.Fprintf(bw, "%s\t%s\n", k, values[k])
		n += int64(c)
		if err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// Restore reads lines "key\tvalue\n" from r to its end and puts them into
// m; it returns the number of entries read. If progress is not nil, it is
// called after each entry with the bytes and entries read so far.
func (m *Map) Restore(r io.Reader, progress func(bytes, entries int64)) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var bytes, entries int64
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			return entries, fmt.Errorf("kv: line %d has no tab", entries+1)
		}
		m.Put(key, value)
		bytes += int64(len(sc.Bytes())) + 1
		entries++
		if progress != nil {
			progress(bytes, entries)
		}
	}
	return entries, sc.Err()
}

// Summary returns the Summary of m's state.
func (m *Map) Summary() Summary {
	h := sha256.New()
	n, _ := m.WriteTo(h) // a hash never fails
	return Summary{Entries: m.Len(), Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}
}

// Dump implements Store. The lines are written into a pipe by a goroutine
// as the caller reads them; if the caller stops early, the runtime closes
// the returned reader (the source of the stream), which ends the goroutine.
func (m *Map) Dump(ctx context.Context) (io.Reader, error) {
	pr, pw := io.Pipe()
	go func() {
		_, err := m.WriteTo(pw)
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	return pr, nil
}

// Load implements Store.
func (m *Map) Load(ctx context.Context, r io.Reader) (int64, error) {
	return m.Restore(r, nil)
}

// Sum implements Store.
func (m *Map) Sum(ctx context.Context) (Summary, error) { return m.Summary(), nil }

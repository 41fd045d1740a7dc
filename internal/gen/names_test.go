package gen

import (
	"go/token"
	"slices"
	"testing"
)

func TestLowerPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"Store": "store", "HTTPServer": "httpServer", "URL": "url", "store": "store",
		"A": "a", "IOReader": "ioReader", "ÉtatStore": "étatStore", "X1": "x1",
	} {
		if got := lowerPrefix(in); got != want {
			t.Errorf("lowerPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFieldNames(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"key", "e"}, []string{"Key", "E"}},
		{[]string{"", "_", "x"}, []string{"A1", "A2", "X"}},
		{[]string{"key", "Key"}, []string{"A1", "A2"}},
		{[]string{"a2", "_"}, []string{"A1", "A2"}},
		{[]string{"_", "a1"}, []string{"A1", "A2"}},
		{[]string{"_x", "名前", "größe"}, []string{"A1", "A2", "Größe"}},
		{[]string{"a3", "b", "_"}, []string{"A1", "B", "A3"}},
	} {
		if got := fieldNames(c.in); !slices.Equal(got, c.want) {
			t.Errorf("fieldNames(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFresh(t *testing.T) {
	s := nameSet{"err": true, "a1": true}
	for _, c := range []struct{ want, fallback, got string }{
		{"key", "a1", "key"},
		{"key", "a2", "a2"},
		{"err", "a3", "a3"},
		{"", "a1", "a1_"},
		{"_", "a1", "a1__"},
		{"func", "a4", "a4"},
	} {
		if got := s.fresh(c.want, c.fallback); got != c.got {
			t.Errorf("fresh(%q, %q) = %q, want %q", c.want, c.fallback, got, c.got)
		}
	}
}

func TestCanImport(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{"example.com/a", "example.com/b", true},
		{"example.com/a", "example.com/a/internal/x", true},
		{"example.com/a/b", "example.com/a/internal/x", true},
		{"example.com/b", "example.com/a/internal/x", false},
		{"example.com/ab", "example.com/a/internal/x", false},
		{"example.com/a", "internal/abi", false},
		{"example.com/a/internal/x/y", "example.com/a/internal/x/internal/z", true},
		{"example.com/a/internal/y", "example.com/a/internal/x/internal/z", false},
	} {
		if got := canImport(c.from, c.to); got != c.ok {
			t.Errorf("canImport(%q, %q) = %v, want %v", c.from, c.to, got, c.ok)
		}
	}
}

func TestRelativeTo(t *testing.T) {
	for _, c := range []struct{ dir, file, want string }{
		{"/m/svc", "/m/svc/svc.go", "svc.go"},
		{"/m/svc", "/m/svc/sub/x.go", "sub/x.go"},
		{"/m/svc", "/m/other/x.go", "/m/other/x.go"},
		{"/m/svc", "rel.go", "rel.go"},
		{"", "/m/x.go", "/m/x.go"},
	} {
		if got := relativeTo(c.dir, c.file); got != c.want {
			t.Errorf("relativeTo(%q, %q) = %q, want %q", c.dir, c.file, got, c.want)
		}
	}
}

func TestParsePosition(t *testing.T) {
	for in, want := range map[string]token.Position{
		"/a/b.go:3:9": {Filename: "/a/b.go", Line: 3, Column: 9},
		"/a/b.go:3":   {Filename: "/a/b.go", Line: 3},
		"c:/x.go:1:2": {Filename: "c:/x.go", Line: 1, Column: 2},
		"":            {},
		"-":           {},
		"nonsense":    {},
	} {
		if got := parsePosition(in); got != want {
			t.Errorf("parsePosition(%q) = %+v, want %+v", in, got, want)
		}
	}
}

// TestProblemsSorted checks that problems come sorted by position (those
// without one first) and without duplicates.
func TestProblemsSorted(t *testing.T) {
	l := &problemList{dir: "/m"}
	l.addf(token.Position{Filename: "/m/b.go", Line: 1, Column: 1}, "b1")
	l.addf(token.Position{Filename: "/m/a.go", Line: 10, Column: 2}, "a10")
	l.addf(token.Position{Filename: "/m/a.go", Line: 2, Column: 5}, "a2c5")
	l.addf(token.Position{}, "nowhere")
	l.addf(token.Position{Filename: "/m/a.go", Line: 2, Column: 1}, "a2c1")
	l.addf(token.Position{Filename: "/m/a.go", Line: 2, Column: 1}, "a2c1")
	got := l.err().Error()
	want := "nowhere\na.go:2:1: a2c1\na.go:2:5: a2c5\na.go:10:2: a10\nb.go:1:1: b1"
	if got != want {
		t.Errorf("problems:\n%s\nwant:\n%s", got, want)
	}
	if (&problemList{}).err() != nil {
		t.Error("an empty problem list is an error")
	}
}

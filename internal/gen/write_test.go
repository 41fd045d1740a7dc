package gen

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteFile checks that writeFile replaces content, keeps the mode of
// the file it replaces, leaves no temporary file behind and does not touch
// a file that already has the content.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.go")
	if err := writeFile(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("new file: %v, mode %v, want 0644", err, fi.Mode())
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, []byte("two")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(got) != "two" || fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten file: %q, mode %v; want \"two\", 0600", got, fi.Mode())
	}

	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(old) {
		t.Errorf("writing the same content touched the file (mtime %v, want %v)", fi.ModTime(), old)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left in %s: %v", dir, entries)
	}

	if err := writeFile(filepath.Join(dir, "missing", "out.go"), []byte("x")); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

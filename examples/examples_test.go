// Package examples_test runs every example under examples/ (those without
// tests of their own) as the README says to, and compiles the README's
// quick start.
package examples_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// examples are the commands run here, each with a line its output must
// hold. examples/sessions has tests of its own.
var examples = []struct {
	dir, want string
	args      []string
}{
	{"hello", "", nil},
	{"callback", "", nil},
	{"dump", "", nil},
	{"transform", "", nil},
	{"ring", "3 members (leader LeaderNode), 3 edges, ready", []string{"-status", "127.0.0.1:0"}},
	{"kv", "moved, all of them kv3's", []string{"-keys", "60"}},
}

func TestExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every example")
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{"sessions": true}
	for _, ex := range examples {
		covered[ex.dir] = true
	}
	for _, e := range entries {
		if e.IsDir() && !covered[e.Name()] && !strings.HasPrefix(e.Name(), "quickstart") {
			t.Errorf("examples/%s is run by no test: add it to examples", e.Name())
		}
	}

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator))
	for _, ex := range examples {
		build.Args = append(build.Args, "./"+ex.dir)
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the examples: %v\n%s", err, out)
	}
	for _, ex := range examples {
		t.Run(ex.dir, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(bin, ex.dir), ex.args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			cmd.WaitDelay = 5 * time.Second
			if err := cmd.Run(); err != nil {
				t.Fatalf("go run ./examples/%s: %v\n%s", ex.dir, err, out.String())
			}
			if !strings.Contains(out.String(), ex.want) {
				t.Fatalf("go run ./examples/%s printed no %q:\n%s", ex.dir, ex.want, out.String())
			}
		})
	}
}

// quickStart is the package around the README's quick start.
const quickStart = `package quickstart

import (
	"context"
	"fmt"
	"log"

	"github.com/trellisrpc/trellis/cluster"
	kv "github.com/trellisrpc/trellis/examples/kv/kvstore"
)

func run(ctx context.Context, key []byte, seeds []string, myStore kv.Store) {
%s}
`

// TestQuickStartCompiles builds the README's quick start, which must stay
// the short way to run a clustered service (at most 15 lines).
func TestQuickStartCompiles(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- quick start: compiled by examples/examples_test.go -->\n```go\n")
	if !ok {
		t.Fatal("README.md has no quick start marked for this test")
	}
	code, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatal("the quick start's code block does not end")
	}
	if n := strings.Count(code, "\n"); n > 15 {
		t.Errorf("the quick start has %d lines, at most 15 wanted", n)
	}
	dir, err := os.MkdirTemp(".", "quickstart")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	src := strings.Replace(quickStart, "%s", code, 1)
	if err := os.WriteFile(filepath.Join(dir, "quickstart.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "vet", "./"+dir).CombinedOutput(); err != nil {
		t.Fatalf("the quick start does not compile: %v\n%s\n%s", err, out, src)
	}
}

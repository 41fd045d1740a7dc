package gen

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// repoRoot returns the root of the trellis module, found from the test's
// own directory (go test runs tests in their package's directory).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !bytes.Contains(mod, []byte("module github.com/trellisrpc/trellis\n")) {
		t.Fatalf("%s is not the root of github.com/trellisrpc/trellis (go.mod: %v)", dir, err)
	}
	return dir
}

// goEnv is the environment for go commands run on temporary modules: module
// mode, no network (every dependency is in the module cache), no workspace.
func goEnv() []string {
	return append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
}

// newModule writes a module example.com/m into a temporary directory, with
// files (paths relative to the module root) and a replace directive that
// points github.com/trellisrpc/trellis at this repository, and returns the
// module root.
func newModule(t testing.TB, files map[string]string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	gomod := "module example.com/m\n\ngo 1.26\n\nrequire github.com/trellisrpc/trellis v0.0.0\n\nreplace github.com/trellisrpc/trellis => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"go.mod": gomod, "go.sum": string(sum)}
	for name, content := range files {
		all[name] = content
	}
	for name, content := range all {
		writeTestFile(t, filepath.Join(dir, name), content)
	}
	return dir
}

// writeTestFile writes content to path, creating directories as needed.
func writeTestFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runGo runs the go command with args in dir and returns its combined
// output, failing the test on error.
func runGo(t testing.TB, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = goEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// generateIn runs Generate on the package in dir with the test environment.
func generateIn(t testing.TB, dir string, types ...string) (*Output, error) {
	t.Helper()
	return Generate(context.Background(), Config{Dir: dir, Types: types, Env: goEnv()})
}

// runIn runs Run on the package in dir and fails the test on error.
func runIn(t testing.TB, dir string, types ...string) *Output {
	t.Helper()
	o, err := Run(context.Background(), Config{Dir: dir, Types: types, Env: goEnv()})
	if err != nil {
		t.Fatalf("generating %s in %s: %v", strings.Join(types, ","), dir, err)
	}
	return o
}

// problemsOf returns the problems of err, failing the test if err is not a
// Problems.
func problemsOf(t testing.TB, err error) Problems {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not a Problems", err, err)
	}
	return ps
}

// positionOf returns "file:line:col" of the first occurrence of marker in
// src, the content of file. A "^" in marker marks the position to return;
// without one, it is the start of the marker.
func positionOf(t testing.TB, file, src, marker string) string {
	t.Helper()
	offset := strings.Index(marker, "^")
	if offset < 0 {
		offset = 0
	}
	i := strings.Index(src, strings.Replace(marker, "^", "", 1))
	if i < 0 {
		t.Fatalf("marker %q not in %s", marker, file)
	}
	i += offset
	line := strings.Count(src[:i], "\n") + 1
	col := i - strings.LastIndex(src[:i], "\n")
	return file + ":" + strconv.Itoa(line) + ":" + strconv.Itoa(col)
}

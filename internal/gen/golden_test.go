package gen

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of proxygen's tests")

// TestGolden generates the code for the representative service in
// testdata/kv and compares it with testdata/kv/trellis_gen.go, which is
// proxygen's own output committed as the golden file (go test -update
// rewrites it). The golden package is then built and vetted, so the golden
// file is known to compile against the current runtime.
func TestGolden(t *testing.T) {
	dir := filepath.Join("testdata", "kv")
	golden := filepath.Join(dir, DefaultOutput)
	o, err := Generate(context.Background(), Config{Dir: dir, Types: []string{"Watcher", "Store"}})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if *update {
		if err := os.WriteFile(golden, o.Source, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(o.Source, want) {
		t.Errorf("generated code differs from %s (run go test -update to accept it):\n%s", golden, diff(string(want), string(o.Source)))
	}
	// -mod=readonly overrides the -mod=mod of goEnv: the repository's own
	// go.mod must not change.
	runGo(t, repoRoot(t), "build", "-mod=readonly", "./internal/gen/testdata/kv/...")
	runGo(t, repoRoot(t), "vet", "-mod=readonly", "./internal/gen/testdata/kv/...")
}

// diff returns the lines around the first difference between want and got.
func diff(want, got string) string {
	wl, gl := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			return "line " + strconv.Itoa(i+1) + ":\n- " + string(w) + "\n+ " + string(g)
		}
	}
	return "(no line differs)"
}

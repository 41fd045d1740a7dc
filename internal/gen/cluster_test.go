package gen

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterProxyFlags checks what proxygen reads for cluster proxies: the
// //trellis:idempotent directive and the streams that make a call
// one-shot; and that -cluster=false leaves cluster proxies out, import
// included.
func TestClusterProxyFlags(t *testing.T) {
	dir := filepath.Join("testdata", "kv")
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := load(context.Background(), abs, filepath.Join(abs, DefaultOutput), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	services, err := analyze(l, abs, []string{"Store", "Watcher"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method             string
		idempotent, oneOff bool
	}{
		{"Get", true, false}, // its doc comment has the directive
		{"Put", false, false},
		{"Load", false, true}, // passes an io.Reader
		{"Dump", false, false},
		{"Ping", false, false},
	}
	for _, tc := range tests {
		var found bool
		for _, m := range services[0].methods {
			if m.name == tc.method {
				found = true
				if m.idempotent != tc.idempotent || m.oneShot != tc.oneOff {
					t.Errorf("%s: idempotent %v one-shot %v, want %v %v", tc.method, m.idempotent, m.oneShot, tc.idempotent, tc.oneOff)
				}
			}
		}
		if !found {
			t.Errorf("no method %s", tc.method)
		}
	}

	o, err := Generate(context.Background(), Config{Dir: dir, Types: []string{"Watcher", "Store"}, NoClusterProxy: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"ClusterProxy", clusterPath} {
		if strings.Contains(string(o.Source), s) {
			t.Errorf("with NoClusterProxy the generated code still has %q", s)
		}
	}
}

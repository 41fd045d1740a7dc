package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/cluster/status"
)

// fakeNode serves a status that the test changes.
type fakeNode struct {
	mu sync.Mutex
	s  status.Snapshot
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/status.json" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	json.NewEncoder(w).Encode(f.s)
}

func (f *fakeNode) set(s status.Snapshot) {
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
}

// ring returns the status of node A of a ring of the named members.
func ring(epoch uint64, names ...string) status.Snapshot {
	s := status.Snapshot{Node: "id-A", Name: "A", Leader: "id-A", Epoch: epoch, Strategy: "ring", Ready: true}
	for i, n := range names {
		s.Members = append(s.Members, status.Member{ID: "id-" + n, Name: n, State: "alive", Incarnation: 7, Self: n == "A", Leader: n == "A", InTopology: true})
		next := names[(i+1)%len(names)]
		if len(names) > 2 || i == 0 {
			s.Edges = append(s.Edges, status.Edge{A: "id-" + n, B: "id-" + next, State: "remote"})
		}
	}
	return s
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestStatus(t *testing.T) {
	f := &fakeNode{}
	f.set(ring(3, "A", "B", "C", "D"))
	srv := httptest.NewServer(f)
	defer srv.Close()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"status", srv.URL}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"leader A", "epoch 3 (ring)", "ready", "A * (this node)", "D ", "alive", "4 edges", "A -- B  (remote)", "C -- D  (remote)", "A -- D  (remote)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestUnreachableNode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, cmd := range []string{"status", "watch"} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{cmd, addr}, &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), "node unreachable at http://"+addr+"/status.json") || !strings.Contains(errOut.String(), "refused") {
			t.Errorf("%s of a dead node: exit %d, stderr %q; want 1 and a clear message", cmd, code, errOut.String())
		}
	}
}

func TestNotAStatusPage(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"status", srv.URL}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "404") {
		t.Errorf("exit %d, stderr %q; want 1 and the HTTP status", code, errOut.String())
	}
}

func TestWatchFollowsChanges(t *testing.T) {
	f := &fakeNode{}
	f.set(ring(3, "A", "B", "C", "D"))
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"watch", "-interval", "10ms", srv.URL}, &out, &errOut) }()
	waitFor := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok(out.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("watch did not print %s:\n%s\nstderr: %s", what, out.String(), errOut.String())
			}
			time.Sleep(5 * time.Millisecond) // polling output: there is no event to await
		}
	}
	waitFor("the first status", func(s string) bool { return strings.Contains(s, "epoch 3") })
	f.set(ring(4, "A", "B", "C"))
	waitFor("the change", func(s string) bool { return strings.Contains(s, "epoch 4") })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("watch ended with %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not stop when cancelled")
	}
	if n := strings.Count(out.String(), "== "); n != 2 {
		t.Errorf("watch printed %d statuses, want 2 (one per change):\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "3 edges") {
		t.Errorf("the second status lacks the ring of three:\n%s", out.String())
	}
}

func TestArguments(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage"},
		{[]string{"status"}, 2, "usage"},
		{[]string{"frobnicate", "x:1"}, 2, "unknown command"},
		{[]string{"watch", "-interval", "0s", "x:1"}, 2, "-interval must be positive"},
		{[]string{"status", "http://"}, 2, "not a node's status address"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tt.args, &out, &errOut); code != tt.code || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("trellis %q: exit %d, stderr %q; want %d and %q", tt.args, code, errOut.String(), tt.code, tt.want)
		}
	}
}

func TestStatusURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":          "http://127.0.0.1:8080/status.json",
		"http://127.0.0.1:8080/":  "http://127.0.0.1:8080/status.json",
		"http://h:1/trellis":      "http://h:1/trellis/status.json",
		"https://h:1/status.json": "https://h:1/status.json",
	} {
		if got, err := statusURL(in); err != nil || got != want {
			t.Errorf("statusURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestEdgeCount(t *testing.T) {
	for _, tc := range []struct {
		members []string
		want    string
	}{
		{[]string{"A"}, "topology, epoch 1: 0 edges"},
		{[]string{"A", "B"}, "topology, epoch 1: 1 edge\n"},
		{[]string{"A", "B", "C"}, "topology, epoch 1: 3 edges"},
	} {
		s := ring(1, tc.members...)
		if len(tc.members) == 1 {
			s.Edges = nil // a member alone has no edge
		}
		var b bytes.Buffer
		printStatus(&b, s)
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%d members: output lacks %q:\n%s", len(tc.members), tc.want, b.String())
		}
	}
}

package runtime

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
)

// The monitor ticks while calls are served and sleeps once none has been
// for inlineIdle, so an idle node has no timer running.
func TestInlineMonitorSleepsWhenIdle(t *testing.T) {
	m := newInlineMonitor()
	stop := make(chan struct{})
	ended := make(chan struct{})
	go func() { m.run(stop); close(ended) }()
	defer func() { close(stop); <-ended }()

	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for the monitor to %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range 2 { // it wakes again after sleeping
		m.arms.Add(1)
		m.wake <- struct{}{}
		waitUntil("start ticking", m.active.Load)
		start := time.Now()
		waitUntil("sleep", func() bool { return !m.active.Load() })
		if d := time.Since(start); d < inlineIdle/2 {
			t.Errorf("the monitor slept %v after the last call, want about %v", d, inlineIdle)
		}
	}
}

// A method whose call outlasts the reader's budget has its next calls
// served aside, each short one bringing inline serving back one call.
func TestSlowMethodServedAside(t *testing.T) {
	release, blocking := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	m := &codegen.MethodDesc{Name: "Maybe", ID: 7, Handler: func(ctx context.Context, impl any, call codegen.ServerCall) error {
		if held.CompareAndSwap(false, true) {
			close(blocking)
			<-release // the first call blocks
		}
		return nil
	}}
	svc := &codegen.ServiceDesc{Name: "test.Aside", Methods: []*codegen.MethodDesc{m}}
	server, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close(context.Background())
	if err := server.Register(svc, struct{}{}); err != nil {
		t.Fatal(err)
	}
	entry := server.services.Load().methods[m.ID]
	client, err := NewNode(Config{Name: "client", Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := client.Connect(ctx, server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(client, id, svc)
	first := make(chan error, 1)
	go func() { first <- c.do(ctx, m, nil, nil) }()
	<-blocking
	// While the first call blocks, reading moves on: the second call gets
	// through, and the method is then served aside.
	if err := c.do(ctx, m, nil, nil); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The server marks the method once the call's reply is sent.
	deadline := time.Now().Add(5 * time.Second)
	for entry.aside.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if a := entry.aside.Load(); a < asideCalls-1 {
		t.Fatalf("after a call that outlasted the budget, %d calls to serve aside, want about %d", a, asideCalls)
	}
	// Short calls bring inline serving back (some may outlast the budget
	// on a loaded machine: they do not count).
	calls := 0
	for ; entry.aside.Load() > 0 && calls < 20*asideCalls; calls++ {
		if err := c.do(ctx, m, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if a := entry.aside.Load(); a != 0 || calls < asideCalls {
		t.Errorf("after %d short calls, %d calls still to serve aside; want 0 after at least %d", calls, a, asideCalls)
	}
}

package runtime

import (
	"testing"
	"time"
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

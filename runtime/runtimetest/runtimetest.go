// Package runtimetest helps users test code built on Trellis.
package runtimetest

import (
	"fmt"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime"
)

// AssertNoLeaks fails t unless, within timeout, no node in nodes exports,
// imports or is about to release any reference. It runs the garbage
// collector while it waits, so that proxies nobody holds any more are
// released.
func AssertNoLeaks(t testing.TB, timeout time.Duration, nodes ...*runtime.Node) {
	t.Helper()
	if err := WaitNoLeaks(timeout, nodes...); err != nil {
		t.Fatal(err)
	}
}

// WaitNoLeaks waits until no node in nodes holds any reference state, at
// most timeout, and says what remains if some does.
func WaitNoLeaks(timeout time.Duration, nodes ...*runtime.Node) error {
	deadline := time.Now().Add(timeout)
	for {
		goruntime.GC()
		var left []string
		for _, n := range nodes {
			if s := n.RefStats(); s != (runtime.RefStats{}) {
				left = append(left, fmt.Sprintf("node %s: %+v", n.Name(), s))
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("references left after %v: %s", timeout, strings.Join(left, "; "))
		}
		time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine: nothing to await
	}
}

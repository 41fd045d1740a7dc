package runtime_test

import (
	"testing"

	"github.com/trellisrpc/trellis/internal/testsvc"
)

// TestServicesChanged: the channel ServicesChanged returns is closed by the
// next registration or unregistration, and not by one that fails.
func TestServicesChanged(t *testing.T) {
	n := newNode(t, "n", "")
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	for i, step := range []struct {
		name    string
		do      func() error
		changes bool
	}{
		{"register", func() error { return testsvc.RegisterKitchen(n, testsvc.NewImpl()) }, true},
		{"register twice", func() error { return testsvc.RegisterKitchen(n, testsvc.NewImpl()) }, false},
		{"unregister", func() error { return n.Unregister(testsvc.KitchenService.Name) }, true},
		{"unregister twice", func() error { return n.Unregister(testsvc.KitchenService.Name) }, false},
	} {
		ch := n.ServicesChanged()
		if closed(ch) {
			t.Fatalf("step %d (%s): the channel is closed before any change", i, step.name)
		}
		err := step.do()
		if (err == nil) != step.changes {
			t.Fatalf("step %d (%s): %v", i, step.name, err)
		}
		if closed(ch) != step.changes {
			t.Errorf("step %d (%s): channel closed %v, want %v", i, step.name, closed(ch), step.changes)
		}
		if again := n.ServicesChanged(); step.changes && again == ch {
			t.Errorf("step %d (%s): ServicesChanged returned the closed channel again", i, step.name)
		}
	}
}

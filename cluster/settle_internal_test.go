package cluster

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// lonelyCluster returns a cluster of one member, N1, that discovers no
// other and is not started; its node is closed when the test ends.
func lonelyCluster(t *testing.T) *Cluster {
	t.Helper()
	node, err := runtime.NewNode(runtime.Config{Name: "N1", ID: 1, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(context.Background()) })
	c, err := New(Config{Node: node, Discovery: noDiscovery{membership.Member{ID: 1, Name: "N1"}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSettleWakesAtTheCommit: a cluster proxy's call that finds no member
// waits in Settle, which returns at the very instant the member settles
// (its first commit, every member of it known), not at a later poll; and
// not before. The fake clock of a synctest bubble tells the two apart.
func TestSettleWakesAtTheCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := lonelyCluster(t)
		defer c.closeTopics() // a Settle still waiting returns
		c.mu.Lock()
		c.started = time.Now() // as Start does, without its goroutines
		c.mu.Unlock()

		done := make(chan bool, 1)
		go func() { done <- proxySource{c}.Settle(context.Background()) }()
		time.Sleep(c.cfg.JoinGrace / 2) // fake time: nothing has settled
		synctest.Wait()
		select {
		case ok := <-done:
			t.Fatalf("Settle returned %v before the member settled", ok)
		default:
		}

		top := topology.Topology{Epoch: 1, Strategy: "ring", Members: []topology.Member{{ID: 1}}}
		c.mu.Lock()
		c.committed = top
		c.committedLocked(top)
		c.mu.Unlock()
		synctest.Wait() // the clock stands still
		select {
		case ok := <-done:
			if !ok {
				t.Fatal("Settle reported that the member did not settle")
			}
		default:
			t.Fatal("Settle did not return at the commit")
		}
	})
}

// TestSettleGivesUp: Settle does not wait past a joining member's time to
// be cascaded a topology, nor once the cluster is closed.
func TestSettleGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := lonelyCluster(t)
		c.mu.Lock()
		c.started = time.Now()
		c.mu.Unlock()
		start := time.Now()
		if (proxySource{c}).Settle(context.Background()) {
			t.Fatal("Settle reported settling without a commit")
		}
		if got, want := time.Since(start), c.cfg.JoinGrace+2*c.cfg.PhaseTimeout; got != want {
			t.Errorf("Settle gave up after %v, want %v", got, want)
		}

		c.mu.Lock()
		c.started = time.Now()
		c.mu.Unlock()
		done := make(chan bool, 1)
		go func() { done <- proxySource{c}.Settle(context.Background()) }()
		synctest.Wait()
		c.closeTopics()
		synctest.Wait()
		select {
		case ok := <-done:
			if ok {
				t.Fatal("Settle on a closed cluster reported settling")
			}
		default:
			t.Fatal("Settle did not return when the cluster closed")
		}
	})
}

package transport

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// TestNodeBudgetBoundsFragments has N peers, each on its own connection,
// open messages whose fragments never complete, each trying to hold its
// whole MaxPartialBytes: together they would hold N times it, but the
// node's Budget bounds what all hold, and the connections beyond their
// share are closed with a reason.
func TestNodeBudgetBoundsFragments(t *testing.T) {
	checkLeaks(t)
	const (
		perConn = 16 << 20 // each connection's own cap
		limit   = 16 << 20 // the node's budget: one connection's cap for all
		conns   = 6
		frag    = MaxFramePayload
	)
	logs := newLogRecorder()
	budget := NewBudget(limit)
	cfg := testConfig(2, logs)
	cfg.MaxPartialBytes = perConn
	cfg.MaxMessageSize = perConn
	cfg.Budget = budget
	l := listen(t, cfg)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	var peak int64
	var pmu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // the budget's peak while the peers send
		defer close(sampled)
		for {
			u := budget.Used()
			pmu.Lock()
			peak = max(peak, u)
			pmu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()

	var wg sync.WaitGroup
	var accepted []*Conn
	for i := range conns {
		nc := rawDial(t, l.Addr().String(), nodeid.ID(100+i), "test-cluster")
		a := accept(t, l)
		a.Start(newRecorder(1))
		closeAtEnd(t, a)
		accepted = append(accepted, a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, frag)
			// 64 messages, each fragment leaving it open, until the
			// connection is closed or each holds perConn.
			for sent := 0; sent < 2*perConn; {
				for id := range uint64(64) {
					if _, err := nc.Write(frameBytes(1, FlagMore, 1000+id, payload)); err != nil {
						return
					}
					sent += frag
				}
			}
		}()
	}
	wg.Wait()
	// Every connection is closed by now or holds what it could.
	deadline := time.Now().Add(waitLimit)
	for logs.count("share of the node's budget") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the log has no event to wait for beyond its lines
	}
	close(stop)
	<-sampled
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if peak > limit {
		t.Errorf("the connections held %d bytes at the peak, the node's budget is %d", peak, limit)
	}
	if n := logs.count("share of the node's budget"); n == 0 {
		t.Error("no connection was closed for exceeding its share of the node's budget")
	}
	// Without the budget the connections would hold conns × perConn (96 MiB).
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 3*limit {
		t.Errorf("the heap grew by %d MiB, the budget is %d MiB", grown>>20, limit>>20)
	}
	// Everything is given back once the connections end.
	for _, a := range accepted {
		a.Abort(nil)
		a.Wait()
	}
	if u := budget.Used(); u != 0 {
		t.Errorf("%d bytes still charged to the budget after every connection ended", u)
	}
}

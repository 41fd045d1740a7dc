package replica_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/replica"
	"github.com/trellisrpc/trellis/replica/internal/farmtest"
	"github.com/trellisrpc/trellis/replica/internal/peer"
	"github.com/trellisrpc/trellis/topology"
)

// cpuTime returns the CPU time the process has used (every node of the
// farm runs in it, so it covers the caller and the servers alike).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs op b.N times and reports the median latency and the CPU
// time per op.
func measure(b *testing.B, op func(i int) error) {
	lat := make([]time.Duration, 0, b.N)
	cpu := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkSessionWrite compares a write acknowledged by two synchronous
// backups with a plain call to a neighbour, in the same farm:
//
//	go test -run '^$' -bench SessionWrite -benchtime 2000x ./replica
func BenchmarkSessionWrite(b *testing.B) {
	f := farmtest.New(b, 3, replica.Config{})
	s := f.Servers[0]
	ctx := context.Background()
	value := make([]byte, 256) // a small session
	b.Run("plain-call", func(b *testing.B) {
		nb := s.Topology().Neighbours(s.Node().ID())[0]
		p := peer.NewPeerProxy(s.Node(), nb)
		measure(b, func(int) error {
			_, err := p.Lookup(ctx, "absent", false)
			if err != nil && !isNotFound(err) {
				return err
			}
			return nil
		})
	})
	b.Run("write-2-backups", func(b *testing.B) {
		key := s.Store.NewKey()
		if _, err := s.Store.Create(ctx, key, value); err != nil {
			b.Fatal(err)
		}
		measure(b, func(int) error {
			_, err := s.Store.Put(ctx, key, value)
			return err
		})
	})
}

func isNotFound(err error) bool { return errors.Is(err, replica.ErrNotFound) }

// BenchmarkSessionUpdates64 measures read-modify-write throughput with 64
// concurrent clients, each on its own session, spread over the farm's
// nodes (so most updates are proxied to the owner):
//
//	go test -run '^$' -bench SessionUpdates64 -benchtime 5s ./replica
func BenchmarkSessionUpdates64(b *testing.B) {
	f := farmtest.New(b, 3, replica.Config{})
	ctx := context.Background()
	const clients = 64
	keys := make([]string, clients)
	for i := range keys {
		s := f.Servers[i%3]
		keys[i] = s.Store.NewKey()
		if _, err := s.Store.Create(ctx, keys[i], []byte("0")); err != nil {
			b.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	per := b.N/clients + 1
	b.ResetTimer()
	t0 := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				s := f.Servers[(i+j)%3]
				if _, err := s.Store.Update(ctx, keys[i], func(old []byte, _ bool) ([]byte, error) {
					return append(old[:0:0], '1'), nil
				}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*clients)/time.Since(t0).Seconds(), "updates/s")
}

// TestFiguresKillToRead measures, over several kills, the time from the
// owner's kill to the first successful read of its entry on another node.
// It runs only with TRELLIS_FIGURES=1:
//
//	TRELLIS_FIGURES=1 go test -run FiguresKillToRead -v ./replica
func TestFiguresKillToRead(t *testing.T) {
	if os.Getenv("TRELLIS_FIGURES") == "" {
		t.Skip("figures: set TRELLIS_FIGURES=1")
	}
	const kills = 10
	var times, commits []time.Duration
	for k := range kills {
		f := farmtest.New(t, 4, replica.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		owner := f.Servers[1]
		key := owner.Store.NewKey()
		if _, err := owner.Store.Create(ctx, key, []byte(fmt.Sprint(k))); err != nil {
			t.Fatal(err)
		}
		reader := f.Servers[3]
		t0 := time.Now()
		owner.Kill()
		committed := make(chan time.Duration, 1)
		go func() {
			// When the reader commits a topology without the owner:
			// failure detection and the cascade, before any takeover.
			reader.Wait(ctx, func(t topology.Topology) bool { return !t.Contains(owner.Node().ID()) })
			committed <- time.Since(t0)
		}()
		for {
			rctx, rcancel := context.WithTimeout(ctx, time.Second)
			it, err := reader.Store.Get(rctx, key)
			rcancel()
			if err == nil && string(it.Value) == fmt.Sprint(k) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("kill %d: no read within 30 s: %v", k, err)
			}
		}
		times = append(times, time.Since(t0))
		commits = append(commits, <-committed)
		cancel()
		for _, s := range f.Live() {
			s.Kill()
		}
	}
	slices.Sort(times)
	slices.Sort(commits)
	t.Logf("owner killed → topology without it committed at the reader, %d kills: min %v, p50 %v, max %v",
		kills, commits[0].Round(time.Millisecond), commits[len(commits)/2].Round(time.Millisecond), commits[len(commits)-1].Round(time.Millisecond))
	t.Logf("p50 kill → read ÷ p50 kill → commit: %.2f×", float64(times[len(times)/2])/float64(commits[len(commits)/2]))
	t.Logf("owner killed → first successful read elsewhere, %d kills: min %v, p50 %v, max %v",
		kills, times[0].Round(time.Millisecond), times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
}

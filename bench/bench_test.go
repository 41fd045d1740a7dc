package main

// In-process variants: server and client in the test process, so the
// allocations reported by -benchmem are client and server together. The
// figures that count are those of `go run .` (separate processes); these are
// for quick A/B checks while tuning:
//
//	go test -run '^$' -bench 'Echo/trellis' -benchmem

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

func startInProcess(tb testing.TB, s *system) caller {
	tb.Helper()
	addr, stop, err := s.serve("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cl, err := s.dial(context.Background(), addr)
	if err != nil {
		stop()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cl.Close()
		stop()
	})
	return cl
}

// TestEcho checks that every system echoes both payloads, sequentially and
// concurrently.
func TestEcho(t *testing.T) {
	ctx := context.Background()
	for _, s := range systems {
		t.Run(s.name, func(t *testing.T) {
			cl := startInProcess(t, s)
			for _, pn := range []string{"small", "large"} {
				p := payloads[pn]
				errs := make(chan error, 8)
				for w := range 8 {
					go func() {
						req := p.req(0)
						for i := range 50 {
							req.ID = int64(w)<<32 | int64(i)
							resp, err := cl.Echo(ctx, &req)
							if err == nil {
								err = verify(&req, &resp)
							}
							if err != nil {
								errs <- fmt.Errorf("%s: %v", pn, err)
								return
							}
						}
						errs <- nil
					}()
				}
				for range 8 {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkEcho: Echo/SYSTEM/PAYLOAD/{seq,par64}.
func BenchmarkEcho(b *testing.B) {
	ctx := context.Background()
	for _, s := range systems {
		b.Run(s.name, func(b *testing.B) {
			cl := startInProcess(b, s)
			for _, pn := range []string{"small", "large"} {
				p := payloads[pn]
				b.Run(pn, func(b *testing.B) {
					b.Run("seq", func(b *testing.B) {
						b.ReportAllocs()
						req := p.req(0)
						for i := 0; b.Loop(); i++ {
							req.ID = int64(i)
							resp, err := cl.Echo(ctx, &req)
							if err == nil {
								err = verify(&req, &resp)
							}
							if err != nil {
								b.Fatal(err)
							}
						}
					})
					b.Run("par64", func(b *testing.B) {
						b.ReportAllocs()
						// 64 callers on GOMAXPROCS 2, as in the main benchmark.
						b.SetParallelism(max(1, 64/testingProcs()))
						cpu := selfCPU()
						defer func() {
							// Client and server together, as in the run's total.
							b.ReportMetric(float64(selfCPU()-cpu)/float64(b.N), "cpu-ns/op")
						}()
						b.RunParallel(func(pb *testing.PB) {
							req := p.req(0)
							for i := int64(0); pb.Next(); i++ {
								req.ID = i
								resp, err := cl.Echo(ctx, &req)
								if err == nil {
									err = verify(&req, &resp)
								}
								if err != nil {
									b.Error(err)
									return
								}
							}
						})
					})
				})
			}
		})
	}
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }

package topology

import "testing"

// BenchmarkComputeRoutes measures what a node does on each membership
// change at N = 64: compute the topology from the previous one, then its
// own routing table.
func BenchmarkComputeRoutes(b *testing.B) {
	ms := testMembers(64)
	for _, s := range builtin() {
		b.Run(s.Name(), func(b *testing.B) {
			prev := Compute(s, ms[:63], nil)
			b.ReportAllocs()
			for b.Loop() {
				top := Compute(s, ms, &prev)
				Routes(top, ms[32].ID)
			}
		})
	}
}

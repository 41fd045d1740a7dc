package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// fixedDiscovery lists a fixed membership.
type fixedDiscovery struct{ ms []membership.Member }

func (d fixedDiscovery) Start(context.Context) error       { return nil }
func (d fixedDiscovery) Local() membership.Member          { return d.ms[0] }
func (d fixedDiscovery) Members() []membership.Member      { return d.ms }
func (d fixedDiscovery) Leader() (membership.Member, bool) { return d.ms[0], true }
func (d fixedDiscovery) Subscribe(int) *membership.Subscription {
	return membership.NewEventHub().Subscribe(1)
}
func (d fixedDiscovery) Leave(context.Context) error { return nil }
func (d fixedDiscovery) Close() error                { return nil }

// A leader whose strategy cannot serve the membership pushes nothing and
// says why, once, at error level.
func TestLeaderRefusesOversizedBus(t *testing.T) {
	ms := make([]membership.Member, topology.MaxBusMembers+1)
	for i := range ms {
		ms[i] = membership.Member{ID: nodeid.ID(i + 1), Name: "n", Addr: "127.0.0.1:1", State: membership.StateAlive}
	}
	var buf bytes.Buffer
	c := &Cluster{cfg: Config{Strategy: topology.Bus{}, Policy: topology.Majority{}}, disc: fixedDiscovery{ms}, self: 1,
		log: slog.New(slog.NewTextHandler(&buf, nil))}
	c.lead(context.Background())
	c.lead(context.Background())
	out := buf.String()
	if strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "bus serves at most 128 members, 129 asked for") {
		t.Errorf("log after two attempts:\n%s\nwant one error naming the limit", out)
	}
	if c.Topology().Epoch != 0 || c.pending != nil {
		t.Errorf("a topology was pushed: committed %v, pending %v", c.Topology(), c.pending)
	}
}

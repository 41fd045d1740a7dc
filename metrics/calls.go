package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// methodMetrics holds one method's figures, with its labels.
type methodMetrics struct {
	service, method string
	client, server  *side
}

// method returns the figures of m, made on first use. The methods seen so
// far are in an immutable map replaced on each new one: a lookup is a load
// and a map access keyed by a pointer, with no lock.
func (c *Collector) method(svc *codegen.ServiceDesc, m *codegen.MethodDesc) *methodMetrics {
	if mm, ok := (*c.methods.Load())[m]; ok {
		return mm
	}
	return c.addMethod(svc, m)
}

// addMethod makes the figures of a method seen for the first time. It is
// kept out of method, whose frame stays small: a call served on a fresh
// goroutine (runtime's calls served aside) would otherwise grow its stack,
// by copying it, in method's prologue on every call.
//
//go:noinline
func (c *Collector) addMethod(svc *codegen.ServiceDesc, m *codegen.MethodDesc) *methodMetrics {
	c.methodsMu.Lock()
	defer c.methodsMu.Unlock()
	old := *c.methods.Load()
	if mm, ok := old[m]; ok {
		return mm
	}
	service := "?"
	if svc != nil {
		service = svc.Name
	}
	mm := &methodMetrics{
		service: service,
		method:  m.Name,
		client:  newSide(c.stripes.N(), len(c.bounds)),
		server:  newSide(c.stripes.N(), len(c.bounds)),
	}
	next := make(map[*codegen.MethodDesc]*methodMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[m] = mm
	c.methods.Store(&next)
	return mm
}

// callObserver measures the calls a node makes and serves: a
// runtime.CallObserver, which the node calls directly when a call ends,
// where an interceptor would wrap the call in two more frames.
type callObserver struct{ c *Collector }

// CallMade measures a call made.
func (o callObserver) CallMade(_ context.Context, call *runtime.OutgoingCall, err error) {
	c := o.c
	s := c.method(call.Service, call.Method).client
	d := call.Duration // timed by the node, which reads the clock once for it
	if err != nil {
		s.fail(runtime.ErrorKind(err)) // before it is counted as ended (side.outcomes)
	}
	// The stripe of the processor the call ends on.
	st := s.stripes[c.stripes.Pick()]
	st.ended[bucket(c.bounds, d)].Add(1)
	st.nanos.Add(uint64(max(d, 0)))
	if call.Routed {
		st.routed.Add(1)
	}
	if call.RequestBytes > 0 {
		st.sent.Add(uint64(call.RequestBytes))
	}
	if call.ReplyBytes > 0 {
		st.recv.Add(uint64(call.ReplyBytes))
	}
}

// CallServed measures a call served.
func (o callObserver) CallServed(_ context.Context, call *runtime.IncomingCall, err error) {
	c := o.c
	s := c.method(call.Service, call.Method).server
	d := call.Duration // timed by the node, which reads the clock anyway
	if err != nil {
		s.fail(runtime.ErrorKind(err)) // before it is counted as ended (side.outcomes)
	}
	st := s.stripes[c.stripes.Pick()]
	st.ended[bucket(c.bounds, d)].Add(1)
	st.nanos.Add(uint64(max(d, 0)))
	st.countHops(call.Hops)
	if call.RequestBytes > 0 {
		st.recv.Add(uint64(call.RequestBytes))
	}
	if call.ReplyBytes > 0 {
		st.sent.Add(uint64(call.ReplyBytes))
	}
}

// interceptRelay counts a call relayed.
func (c *Collector) interceptRelay(call *runtime.RelayedCall) func(error) {
	c.relayed.Inc()
	return c.relayEnded
}

func (c *Collector) relayEnded(err error) {
	if err != nil {
		c.relayedFailures.Inc()
	}
}

// collectCalls sends the call metrics: per method and side, the stripes
// summed.
func (c *Collector) collectCalls(ch chan<- prometheus.Metric) {
	var routed uint64
	var hops [numHops + 1]uint64
	var hopsSum uint64
	for _, mm := range *c.methods.Load() {
		cs, ss := mm.client.snapshot(), mm.server.snapshot()
		c.collectSide(ch, mm, mm.client, cs, c.clientCalls, c.clientLatency, c.clientSent, c.clientReceived)
		c.collectSide(ch, mm, mm.server, ss, c.serverCalls, c.serverLatency, c.serverSent, c.serverReceived)
		routed += cs.routed
		for i, k := range ss.hops {
			hops[i] += k
		}
		hopsSum += ss.hopsSum
	}
	made, serving := c.cfg.Node.CallsInFlight() // the node's call tables: nothing to count per call
	ch <- prometheus.MustNewConstMetric(c.clientInFlight, prometheus.GaugeValue, float64(made))
	ch <- prometheus.MustNewConstMetric(c.serverInFlight, prometheus.GaugeValue, float64(serving))
	ch <- prometheus.MustNewConstMetric(c.routed, prometheus.CounterValue, float64(routed))
	hb := make(map[float64]uint64, numHops)
	var cum uint64
	for i := range numHops {
		cum += hops[i]
		hb[float64(i+1)] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.hops, cum+hops[numHops], float64(hopsSum), hb)
}

// collectSide sends one method's metrics on one side.
func (c *Collector) collectSide(ch chan<- prometheus.Metric, mm *methodMetrics, s *side, sn sideSnapshot, calls, latency, sent, received *prometheus.Desc) {
	if sn.count == 0 {
		return // no call of the method ended on this side
	}
	ok, failed := s.outcomes(sn)
	ch <- prometheus.MustNewConstMetric(calls, prometheus.CounterValue, float64(ok), mm.service, mm.method, runtime.KindOK)
	for kind, k := range failed {
		ch <- prometheus.MustNewConstMetric(calls, prometheus.CounterValue, float64(k), mm.service, mm.method, kind)
	}
	buckets := make(map[float64]uint64, len(c.cfg.Buckets))
	var cum uint64
	for i, b := range c.cfg.Buckets {
		cum += sn.ended[i]
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(latency, sn.count, time.Duration(sn.nanos).Seconds(), buckets, mm.service, mm.method)
	ch <- prometheus.MustNewConstMetric(sent, prometheus.CounterValue, float64(sn.sent), mm.service, mm.method)
	ch <- prometheus.MustNewConstMetric(received, prometheus.CounterValue, float64(sn.recv), mm.service, mm.method)
}

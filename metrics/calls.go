package metrics

import (
	"context"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// method returns the metrics of m, resolving their labels on first use.
func (c *Collector) method(svc *codegen.ServiceDesc, m *codegen.MethodDesc) *methodMetrics {
	if mm, ok := c.methods.Load(m); ok {
		return mm.(*methodMetrics)
	}
	service := "?"
	if svc != nil {
		service = svc.Name
	}
	mm := &methodMetrics{
		service:        service,
		method:         m.Name,
		clientOK:       c.clientCalls.WithLabelValues(service, m.Name, runtime.KindOK),
		serverOK:       c.serverCalls.WithLabelValues(service, m.Name, runtime.KindOK),
		clientLatency:  c.clientLatency.WithLabelValues(service, m.Name),
		serverLatency:  c.serverLatency.WithLabelValues(service, m.Name),
		clientSent:     c.clientSent.WithLabelValues(service, m.Name),
		clientReceived: c.clientReceived.WithLabelValues(service, m.Name),
		serverReceived: c.serverReceived.WithLabelValues(service, m.Name),
		serverSent:     c.serverSent.WithLabelValues(service, m.Name),
	}
	actual, _ := c.methods.LoadOrStore(m, mm)
	return actual.(*methodMetrics)
}

// interceptClient measures a call made.
func (c *Collector) interceptClient(ctx context.Context, call *runtime.OutgoingCall, next func(context.Context) error) error {
	mm := c.method(call.Service, call.Method)
	c.clientActive.Add(1)
	start := c.now()
	err := next(ctx)
	mm.clientLatency.Observe((c.now() - start).Seconds())
	c.clientActive.Add(-1)
	if err == nil {
		mm.clientOK.Inc()
	} else {
		c.clientCalls.WithLabelValues(mm.service, mm.method, runtime.ErrorKind(err)).Inc()
	}
	if call.Routed {
		c.routed.Inc()
	}
	if call.RequestBytes > 0 {
		mm.clientSent.Add(float64(call.RequestBytes))
	}
	if call.ReplyBytes > 0 {
		mm.clientReceived.Add(float64(call.ReplyBytes))
	}
	return err
}

// interceptServer measures a call served.
func (c *Collector) interceptServer(ctx context.Context, call *runtime.IncomingCall, next func(context.Context) error) error {
	mm := c.method(call.Service, call.Method)
	c.serverActive.Add(1)
	start := c.now()
	err := next(ctx)
	mm.serverLatency.Observe((c.now() - start).Seconds())
	c.serverActive.Add(-1)
	if err == nil {
		mm.serverOK.Inc()
	} else {
		c.serverCalls.WithLabelValues(mm.service, mm.method, runtime.ErrorKind(err)).Inc()
	}
	c.hops.Observe(float64(call.Hops))
	mm.serverReceived.Add(float64(call.RequestBytes))
	mm.serverSent.Add(float64(call.ReplyBytes))
	return err
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

// Package tracing traces Trellis calls with OpenTelemetry: a client span per
// call made, a server span per call served (the child of the caller's span)
// and, on every node that relays a call toward a node that is not its
// neighbour, a relay span between the two, so that each hop of a routed call
// is visible. The W3C trace context travels in the call's metadata (the
// "traceparent" and "tracestate" entries); relays read and rewrite it in the
// envelope without decoding the call's body. Failed calls are recorded on
// their spans with their kind (runtime.ErrorKind).
//
// Sampling is decided where a trace starts, by the caller's TracerProvider
// (for example sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))).
// Servers and relays follow the sampled flag of the trace context they
// receive: a call its caller did not sample gets no span on them (and its
// context still reaches the calls its handler makes), so an unsampled
// call costs them little more than reading the flag.
//
// Spans are exported by the TracerProvider's span processors. Batcher is
// one that suits high call rates: it wakes its goroutine once per batch,
// where the SDK's batch span processor wakes it once per span.
//
// The calls of Trellis's own control plane (a cluster cascading its
// topology calls the service
// "github.com/trellisrpc/trellis/generated/controlplane.Cascade") are traced
// like the application's: with a sampler that records every trace, each
// cascade appears as traces of its own, rooted at the leader's calls.
//
// The package is opt-in: a program that does not import it links no
// OpenTelemetry code. Instrument installs a call starter (see
// runtime.CallStarter) and a relay interceptor on a node.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// ScopeName is the instrumentation scope of the tracer the package uses.
const ScopeName = "github.com/trellisrpc/trellis/tracing"

// Config configures the tracing of a node.
type Config struct {
	// TracerProvider provides the tracer (default: otel.GetTracerProvider()).
	// Its sampler decides which calls are recorded; the trace context is
	// carried either way, so the servers and relays of a call follow the
	// caller's decision.
	TracerProvider trace.TracerProvider
	// Propagator writes and reads the trace context in call metadata
	// (default: propagation.TraceContext{}, the W3C format).
	Propagator propagation.TextMapPropagator
	// RootRatio, if above 0, is the share of the calls made without a
	// trace in their context that start one (a cheap draw per call, before
	// any span is made); the others carry no trace context and cost almost
	// nothing. A node then starts no trace of its own for the calls it
	// serves: a call that arrives without a trace context is not traced.
	// With 0 (the default) every call gets a span and the TracerProvider's
	// sampler decides, on clients and servers alike. Calls made within a
	// trace always follow it.
	RootRatio float64
}

// A tracer traces the calls of one node: it is a runtime.CallStarter, and
// holds what its relay interceptor needs.
type tracer struct {
	rootRatio float64
	t         trace.Tracer
	prop      propagation.TextMapPropagator
	node      runtime.NodeID
	methods   sync.Map // *codegen.MethodDesc -> *methodSpans, made once
	fields    []string // the metadata keys prop reads
}

// Span options, made once.
var (
	kindClient   = trace.WithSpanKind(trace.SpanKindClient)
	kindServer   = trace.WithSpanKind(trace.SpanKindServer)
	kindInternal = trace.WithSpanKind(trace.SpanKindInternal)
)

// Instrument traces the calls node makes, serves and relays, from now on:
// it installs a call starter (runtime.CallStarter, with Node.Observe) and a
// relay interceptor (Node.Intercept). The starter runs inside the node's
// client and server interceptors: spans time the call proper, not the
// interceptors; the interceptors do not find the span in their context (a
// client interceptor finds the caller's, if any); a call an interceptor
// refuses without calling next gets no span. Instrument a node once: each
// call installs another starter, which records every span again.
func Instrument(node *runtime.Node, cfg Config) error {
	if node == nil {
		return errors.New("tracing: Instrument: nil node")
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.TraceContext{}
	}
	if cfg.RootRatio < 0 || cfg.RootRatio > 1 {
		return fmt.Errorf("tracing: Instrument: RootRatio %v is not between 0 and 1", cfg.RootRatio)
	}
	tr := &tracer{t: cfg.TracerProvider.Tracer(ScopeName), prop: cfg.Propagator, node: node.ID(), rootRatio: cfg.RootRatio,
		fields: cfg.Propagator.Fields()}
	node.Observe(tr)
	node.Intercept(nil, nil, tr.relay)
	return nil
}

// carrier adapts call metadata to a propagation.TextMapCarrier.
type carrier struct{ md *runtime.Metadata }

func (c carrier) Get(key string) string {
	v, _ := c.md.Get(key)
	return v
}

func (c carrier) Set(key, value string) { c.md.Set(key, value) }

func (c carrier) Keys() []string {
	keys := make([]string, len(*c.md))
	for i, e := range *c.md {
		keys[i] = e.Key
	}
	return keys
}

// methodSpans is what the spans of one method's calls share.
type methodSpans struct {
	// name names them as OpenTelemetry's RPC conventions do: service/method.
	name string
	// attrs are their first attributes: rpc.system, rpc.service and
	// rpc.method.
	attrs [3]attribute.KeyValue
	// client and server hold the spans' whole attribute sets, per peer
	// (and hops), made once: a sampled call allocates none.
	client, server attrSets
}

// maxAttrSets bounds, give or take the calls adding one at the same time,
// the attribute sets an attrSets keeps; beyond, a sampled call makes its
// own. Sets are never dropped: a method called by or to many nodes over
// the node's life keeps at most this many on each side (about 0.5 KB
// each).
const maxAttrSets = 1024

// peerKey identifies an attribute set: the peer of the call and, on the
// server, the connections the call crossed.
type peerKey struct {
	node runtime.NodeID
	hops int
}

// attrSets keeps the attribute sets of one method's spans on one side.
// They are shared and never changed: a span (of the OpenTelemetry SDK,
// and of any TracerProvider that keeps to the API's contract) copies the
// attributes it is given.
type attrSets struct {
	sets sync.Map // peerKey -> []attribute.KeyValue
	n    atomic.Int32
}

// clientAttrs returns the attributes of a client span of the method's
// calls to target.
func (ms *methodSpans) clientAttrs(target runtime.NodeID) []attribute.KeyValue {
	key := peerKey{node: target}
	if kvs, ok := ms.client.sets.Load(key); ok {
		return kvs.([]attribute.KeyValue)
	}
	kvs := append(ms.attrs[:len(ms.attrs):len(ms.attrs)], attribute.String("trellis.target", target.String()))
	return ms.client.keep(key, kvs)
}

// serverAttrs returns the attributes of a server span of the method's
// calls from caller that crossed hops connections.
func (ms *methodSpans) serverAttrs(caller runtime.NodeID, hops int) []attribute.KeyValue {
	key := peerKey{node: caller, hops: hops}
	if kvs, ok := ms.server.sets.Load(key); ok {
		return kvs.([]attribute.KeyValue)
	}
	kvs := append(ms.attrs[:len(ms.attrs):len(ms.attrs)], attribute.String("trellis.caller", caller.String()), attribute.Int("trellis.hops", hops))
	return ms.server.keep(key, kvs)
}

// keep stores kvs under key, unless the sets are full, and returns the set
// stored under key.
func (a *attrSets) keep(key peerKey, kvs []attribute.KeyValue) []attribute.KeyValue {
	if a.n.Load() >= maxAttrSets {
		return kvs
	}
	actual, loaded := a.sets.LoadOrStore(key, kvs)
	if !loaded {
		a.n.Add(1)
	}
	return actual.([]attribute.KeyValue)
}

// method returns what the spans of m's calls share, made on first use.
func (tr *tracer) method(svc *codegen.ServiceDesc, m *codegen.MethodDesc) *methodSpans {
	if ms, ok := tr.methods.Load(m); ok {
		return ms.(*methodSpans)
	}
	service, name := "", m.Name
	if svc != nil {
		service, name = svc.Name, svc.Name+"/"+m.Name
	}
	ms := &methodSpans{name: name, attrs: [3]attribute.KeyValue{
		attribute.String("rpc.system", "trellis"),
		attribute.String("rpc.service", service),
		attribute.String("rpc.method", m.Name),
	}}
	actual, _ := tr.methods.LoadOrStore(m, ms)
	return actual.(*methodSpans)
}

// end records err on span, if any, and ends it.
func end(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attribute.String("trellis.error_kind", runtime.ErrorKind(err)))
	}
	span.End()
}

// The starter's methods are split in two: a small function for the calls
// that record nothing (with RootRatio, nearly all), and the recording part
// in a function of its own. A served call may run on a fresh goroutine,
// whose stack grows (by copying) the first time the calls on it go deeper
// than it is: the propagator and the span machinery are deep, and reaching
// them for every call made those copies a large part of the cost of
// tracing.

// StartCall starts the client span of a call made (runtime.CallStarter),
// unless the call starts no trace: then the tracer is not told of its end.
func (tr *tracer) StartCall(ctx context.Context, call *runtime.OutgoingCall) (context.Context, bool) {
	if tr.rootRatio > 0 && !trace.SpanContextFromContext(ctx).IsValid() && rand.Float64() >= tr.rootRatio {
		return ctx, false // not chosen to start a trace
	}
	return tr.startClient(ctx, call), true
}

// startClient starts the client span of a call made and writes its
// context in the call's metadata.
//
//go:noinline
func (tr *tracer) startClient(ctx context.Context, call *runtime.OutgoingCall) context.Context {
	ms := tr.method(call.Service, call.Method)
	ctx, span := tr.t.Start(ctx, ms.name, kindClient)
	if span.IsRecording() {
		span.SetAttributes(ms.clientAttrs(call.Target)...)
	}
	tr.prop.Inject(ctx, carrier{&call.Metadata})
	return ctx
}

// CallMade ends the client span StartCall started (runtime.CallObserver).
func (tr *tracer) CallMade(ctx context.Context, call *runtime.OutgoingCall, err error) {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() && call.Routed {
		span.SetAttributes(attribute.Bool("trellis.routed", true))
	}
	end(span, err)
}

// StartServing follows a served call's trace context and starts its span,
// the child of the caller's (runtime.CallStarter); the tracer is told of
// the call's end only if it records a span.
func (tr *tracer) StartServing(ctx context.Context, call *runtime.IncomingCall) (context.Context, bool) {
	if tr.rootRatio > 0 && !tr.carried(call.Metadata) {
		return ctx, false // no trace context, and this node starts no trace
	}
	return tr.startServer(ctx, call)
}

// carried reports whether md holds any of the propagator's fields.
func (tr *tracer) carried(md runtime.Metadata) bool {
	for _, e := range md {
		for _, f := range tr.fields {
			if e.Key == f {
				return true
			}
		}
	}
	return false
}

// startServer follows a served call's trace context and starts its span.
//
//go:noinline
func (tr *tracer) startServer(ctx context.Context, call *runtime.IncomingCall) (context.Context, bool) {
	ctx = tr.prop.Extract(ctx, carrier{&call.Metadata})
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.IsSampled() || !sc.IsValid() && tr.rootRatio > 0 {
		// The trace's root decided not to record it, or the call is not
		// traced and this node starts no trace: record nothing here, but
		// keep the context for the calls the handler makes.
		return ctx, false
	}
	ms := tr.method(call.Service, call.Method)
	ctx, span := tr.t.Start(ctx, ms.name, kindServer)
	if span.IsRecording() {
		span.SetAttributes(ms.serverAttrs(call.Caller, call.Hops)...)
	}
	return ctx, true
}

// CallServed ends the server span StartServing started
// (runtime.CallObserver).
func (tr *tracer) CallServed(ctx context.Context, call *runtime.IncomingCall, err error) {
	end(trace.SpanFromContext(ctx), err)
}

// relay traces a call relayed: a span child of the previous hop's, whose
// context replaces the previous one in the metadata sent on.
func (tr *tracer) relay(call *runtime.RelayedCall) func(error) {
	ctx := tr.prop.Extract(context.Background(), carrier{&call.Metadata})
	if sc := trace.SpanContextFromContext(ctx); !sc.IsValid() || !sc.IsSampled() {
		return nil // an untraced or unsampled call passes as it is
	}
	ctx, span := tr.t.Start(ctx, "trellis.relay", kindInternal)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("trellis.source", call.Source.String()),
			attribute.String("trellis.destination", call.Destination.String()),
			attribute.String("trellis.from", call.From.String()),
			attribute.String("trellis.to", call.To.String()),
			attribute.Int("trellis.hops", call.Hops),
		)
	}
	tr.prop.Inject(ctx, carrier{&call.Metadata})
	return func(err error) { end(span, err) }
}

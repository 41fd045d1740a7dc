package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/trellisrpc/trellis/cluster/clustergen"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// Errors of cluster proxies. Both mean that the call was not sent.
var (
	// ErrNoMember: no live member advertises the service (with the
	// proxy's signatures).
	ErrNoMember = clustergen.ErrNoMember
	// ErrTooManyInFlight: every member serving the service has
	// MaxInFlight calls of this proxy in progress.
	ErrTooManyInFlight = clustergen.ErrTooManyInFlight
)

// A Policy chooses the member that serves a call of a cluster proxy. The
// fourth policy, by key, is set with ByKey, which also says what the key
// of a call is.
type Policy uint8

const (
	// Nearest chooses a member with the fewest hops from this one in the
	// committed topology, then the fewest calls of the proxy in flight,
	// ties taken in turn. This member, when it serves the service, is
	// nearest (zero hops): its implementation is called directly, as a
	// Go method, in the caller's goroutine and with its context: the
	// arguments are not copied (a pointer, slice or map argument is
	// shared), runtime.CallInfoFrom reports no call, and the node's
	// interceptors do not see it (metrics, tracing and the status page
	// count only the calls that go to other members).
	Nearest Policy = iota
	// RoundRobin chooses the members in turn.
	RoundRobin
	// LocalFirst calls this member's implementation when it serves the
	// service, and the nearest member otherwise.
	LocalFirst
	// byKey is the policy of ByKey, which also sets the KeyFunc.
	byKey
)

// String returns the policy's name.
func (p Policy) String() string {
	switch p {
	case Nearest:
		return "nearest"
	case RoundRobin:
		return "round-robin"
	case LocalFirst:
		return "local-first"
	case byKey:
		return "by-key"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// A KeyFunc returns the key of a call for ByKey: method is the method's
// name, args are the call's arguments after the context, in order.
type KeyFunc func(method string, args []any) string

// FirstArgument is the KeyFunc that uses the first argument after the
// context, formatted with fmt.Sprint (a string is used as it is).
func FirstArgument(method string, args []any) string {
	if len(args) == 0 {
		return ""
	}
	if s, ok := args[0].(string); ok {
		return s
	}
	return fmt.Sprint(args[0])
}

// A ProxyOption configures a cluster proxy.
type ProxyOption func(*proxyOptions)

// proxyOptions is what ProxyOption values set: the options of the proxy's
// balancer, which lives in package clustergen with the generated code.
type proxyOptions = clustergen.Options

// WithPolicy sets how the proxy chooses a member for each call (default
// Nearest).
func WithPolicy(p Policy) ProxyOption {
	return func(o *proxyOptions) { o.Policy = clustergen.Policy(p) }
}

// ByKey makes the proxy shard its calls by key: f returns each call's key
// (nil means FirstArgument), and the key is mapped to a member with
// rendezvous hashing. A call that must be retried goes to the key's next
// member in the same hashing order.
func ByKey(f KeyFunc) ProxyOption {
	if f == nil {
		f = FirstArgument
	}
	return func(o *proxyOptions) { o.Policy, o.Key = clustergen.ByKey, f }
}

// A Retry says how a call that was not sent is retried on another member:
// at most Attempts tries in all, the n-th retry after a random delay of up
// to Base × 2ⁿ⁻¹ (at most Max), never past the call's deadline.
//
// A call is retried when it was not sent (runtime.NotSent) or found no
// member, unless its context ended, the proxy's node is closed, or this
// node refused it for its own configuration (runtime.ErrNoTransformer:
// every member would be called alike). A call that may have run is
// retried only if its method is marked //trellis:idempotent and it failed
// for the connection or the member (runtime.ErrUnreachable,
// ErrShuttingDown, ErrOverloaded, ErrNoRoute), not with an answer of the
// implementation. A call that passes a stream (an io.Reader argument) is
// never retried: its stream cannot be read twice.
type Retry struct {
	Attempts  int
	Base, Max time.Duration
}

// DefaultRetry is the retry policy of a cluster proxy.
var DefaultRetry = Retry{Attempts: 5, Base: 10 * time.Millisecond, Max: 500 * time.Millisecond}

// WithRetry sets the retry policy (Attempts 1 turns retries off).
func WithRetry(r Retry) ProxyOption {
	return func(o *proxyOptions) { o.Retry = clustergen.Retry(r) }
}

// MaxInFlight caps the calls of the proxy in progress on one member: a
// member at the cap is passed over, and when all are, the call fails with
// ErrTooManyInFlight (not sent, so retried after a delay). Zero, the
// default, means no cap.
func MaxInFlight(n int) ProxyOption {
	return func(o *proxyOptions) { o.MaxInFlight = n }
}

// WithClientOptions passes options to the plain proxy of each member (a
// timeout, a message transformer...).
func WithClientOptions(opts ...runtime.ProxyOption) ProxyOption {
	return func(o *proxyOptions) { o.Client = append(o.Client, opts...) }
}

// Serving returns the members that cluster proxies for svc choose from:
// this member if it serves svc, and the members of the committed topology
// that advertise svc, oldest first. WaitServing waits until there are
// enough of them.
func (c *Cluster) Serving(svc *codegen.ServiceDesc) []Member {
	_, serving := proxySource{c}.Serving(svc)
	out := make([]Member, len(serving))
	for i, m := range serving {
		out[i] = memberOf(m)
	}
	return out
}

// WaitServing waits until cluster proxies for svc choose from at least n
// members (see Serving): this member if it serves svc, and members of the
// committed topology that advertise svc. It returns them, or, when ctx is
// done first, those serving svc so far with ctx's error; once the cluster
// is closed (Close, Leave) it fails with ErrSubscriptionClosed, as Wait
// does.
//
// A member advertises a service as soon as it is registered on its node
// (or unregistered), and the others see it a network delay later with the
// built-in membership (a heartbeat interval later at most, when the
// member's metadata had just changed), a gossip round later with
// memberlist. Until then cluster proxies spread their
// calls over the members whose services have arrived: right after Join,
// perhaps over this member alone (ByKey then sends it every key). So a
// member that calls the others as soon as it starts registers its own
// services, then waits for the members it needs:
//
//	c, err := cluster.Join(ctx, opts)
//	kv.RegisterStore(c.Node(), store)
//	_, err = c.WaitServing(ctx, kv.StoreService, 3) // 3 members serve Store
//
// Waiting for the services also waits for the topology: a member counts
// only once it is in this member's committed topology.
func (c *Cluster) WaitServing(ctx context.Context, svc *codegen.ServiceDesc, n int) ([]Member, error) {
	if svc == nil {
		return nil, errors.New("cluster: WaitServing: nil service")
	}
	// This member's own registrations count at once, even if they were
	// made a moment ago and watchServices has not advertised them yet.
	c.advertiseServices()
	for {
		changed := c.viewChanged()
		serving := c.Serving(svc)
		if len(serving) >= n {
			return serving, nil
		}
		select {
		case <-changed:
		case <-c.closed:
			return serving, fmt.Errorf("cluster: waiting for %d members serving %s (%d so far): %w", n, svc.Name, len(serving), ErrSubscriptionClosed)
		case <-ctx.Done():
			return serving, fmt.Errorf("cluster: waiting for %d members serving %s (%d so far): %w", n, svc.Name, len(serving), ctx.Err())
		}
	}
}

// KeyOwner returns the member that a by-key proxy for svc sends key to
// (tries first), and false if no live member serves svc.
func (c *Cluster) KeyOwner(svc *codegen.ServiceDesc, key string) (Member, bool) {
	_, serving := proxySource{c}.Serving(svc)
	m, ok := clustergen.Owner(serving, key)
	if !ok {
		return Member{}, false
	}
	return memberOf(m), true
}

// A Result is one member's answer to CallAll.
type Result[R any] struct {
	Member Member
	Value  R
	Err    error
}

// CallAll calls f concurrently with the service of every live member
// serving it (this member's implementation directly), and returns every
// member's result or error, in the order of the members (oldest first).
// p is a cluster proxy, made by a generated NewFooClusterProxy function.
// Nothing is retried. A nil f fails every member's call.
func CallAll[S, R any](ctx context.Context, p clustergen.Proxy[S], f func(context.Context, S) (R, error)) []Result[R] {
	if f == nil {
		f = func(context.Context, S) (R, error) {
			var zero R
			return zero, errors.New("cluster: CallAll: nil function")
		}
	}
	replies := clustergen.All(ctx, p.TrellisBalancer(), f)
	out := make([]Result[R], len(replies))
	for i, r := range replies {
		out[i] = Result[R]{Member: memberOf(r.Member), Value: r.Value, Err: r.Err}
	}
	return out
}

// proxySource is a cluster as its proxies see it (clustergen.Source).
type proxySource struct{ c *Cluster }

// Node returns the member's node.
func (s proxySource) Node() *runtime.Node { return s.c.node }

// Version returns the generation of the members' view.
func (s proxySource) Version() uint64 { return s.c.views.gen.Load() }

// Serving returns the members that a proxy for svc may call: this member
// if svc is registered on its node, and the members of the committed
// topology (with a route to them) that advertise svc.
func (s proxySource) Serving(svc *codegen.ServiceDesc) (uint64, []clustergen.Member) {
	v := s.c.view()
	hash := ServiceHash(svc)
	var out []clustergen.Member
	for i, m := range v.members {
		if m.Local {
			if _, ok := s.c.node.Implementation(svc); !ok {
				continue
			}
		} else if v.hops[i] == unknownHops || !m.serves(svc.Name, hash) {
			continue // not in the committed topology yet (no route to it), or not serving svc
		}
		out = append(out, clustergen.Member{ID: m.ID, Local: m.Local, Hops: v.hops[i], Info: m})
	}
	return v.gen, out
}

// memberOf returns the Member that Serving put in m.
func memberOf(m clustergen.Member) Member {
	if mem, ok := m.Info.(Member); ok {
		return mem
	}
	return Member{ID: m.ID, Local: m.Local}
}

// Settle waits, while the member has not settled since it started (it has
// committed no topology, or its membership has not heard yet from every
// member of the one it committed, so that it does not know what they
// serve), until it has, or the cluster is closed, or has been running for
// longer than a joining member takes to be cascaded a topology (JoinGrace
// and both phases of a cascade), or ctx is done. It reports whether the
// member settled meanwhile. So a member that has just joined, and serves
// nothing itself, can call at once.
func (s proxySource) Settle(ctx context.Context) bool {
	c := s.c
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if started.IsZero() || s.settled() {
		return false
	}
	wait := time.Until(started.Add(c.cfg.JoinGrace + 2*c.cfg.PhaseTimeout))
	if wait <= 0 {
		return false
	}
	end := time.NewTimer(wait)
	defer end.Stop()
	for {
		// A commit and every membership event change the view: take
		// the channel first, so that no change in between goes unseen.
		changed := c.viewChanged()
		if s.settled() {
			return true
		}
		select {
		case <-changed:
		case <-end.C:
			return false
		case <-c.closed:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// settled reports whether the member has committed a topology and its
// membership lists every member of it (with the services it advertises).
func (s proxySource) settled() bool {
	t := s.c.Topology()
	if t.Epoch == 0 {
		return false
	}
	v := s.c.view()
	for _, m := range t.Members {
		if !slices.ContainsFunc(v.members, func(vm Member) bool { return vm.ID == m.ID }) {
			return false
		}
	}
	return true
}

// Defaults returns the options a proxy starts from.
func (s proxySource) Defaults() clustergen.Options {
	return clustergen.Options{Retry: clustergen.Retry(DefaultRetry)}
}

// link is embedded in Cluster (see there).
type link = clustergen.Link

package clustergen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// A Balancer sends the calls of one cluster proxy (a FooClusterProxy, made
// by NewFooClusterProxy) to the members that serve service S, one member
// per call, retrying safely on another member. Its methods are safe for
// concurrent use.
type Balancer[S any] struct {
	src  Source
	svc  *codegen.ServiceDesc
	opts Options
	next atomic.Uint64 // round-robin position

	mu      sync.Mutex               // serialises rebuilding targets
	targets map[nodeid.ID]*target[S] // kept across versions: proxies and counts survive changes
	cur     atomic.Pointer[targetSet[S]]
}

// A target is a member serving the service.
type target[S any] struct {
	member   Member
	score    uint64 // the member's ID hashed, for rendezvous hashing
	svc      S
	impl     any // the local implementation svc is, when member.Local
	inFlight atomic.Int32
}

// targetSet is the targets of one version of the Source.
type targetSet[S any] struct {
	version uint64
	list    []*target[S]
}

// NewBalancer returns a balancer over the members of c that serve svc, for
// the cluster proxy of S, configured by the Source's defaults and then
// opts (cluster.ProxyOption values). Generated NewFooClusterProxy
// functions call it.
func NewBalancer[S any, O ~func(*Options)](c Cluster, svc *codegen.ServiceDesc, opts ...O) *Balancer[S] {
	src := c.source()
	b := &Balancer[S]{src: src, svc: svc, opts: src.Defaults(), targets: make(map[nodeid.ID]*target[S])}
	for _, o := range opts {
		o(&b.opts)
	}
	if b.opts.Retry.Attempts < 1 {
		b.opts.Retry.Attempts = 1
	}
	return b
}

// targetsNow returns the members serving the service now.
func (b *Balancer[S]) targetsNow() *targetSet[S] {
	v := b.src.Version()
	if ts := b.cur.Load(); ts != nil && ts.version == v {
		return ts
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ts := b.cur.Load(); ts != nil && ts.version == b.src.Version() {
		return ts
	}
	v, members := b.src.Serving(b.svc)
	ts := &targetSet[S]{version: v}
	keep := make(map[nodeid.ID]*target[S], len(members))
	for _, m := range members {
		t := b.target(m)
		if t == nil {
			continue
		}
		keep[m.ID] = t
		ts.list = append(ts.list, t)
	}
	b.targets = keep
	b.cur.Store(ts)
	return ts
}

// target returns the target for member m, the one of the last version
// when it still fits (its proxy and count survive), or nil if m's service
// is not an S.
func (b *Balancer[S]) target(m Member) *target[S] {
	var impl any
	if m.Local {
		var ok bool
		if impl, ok = b.src.Node().Implementation(b.svc); !ok {
			return nil
		}
	}
	if t := b.targets[m.ID]; t != nil && t.member.Local == m.Local && sameImpl(t.impl, impl) {
		t.member = m
		return t
	}
	t := &target[S]{member: m, score: mix(uint64(m.ID)), impl: impl}
	var ok bool
	if m.Local {
		t.svc, ok = impl.(S)
	} else {
		t.svc, ok = runtime.NewProxy(b.src.Node(), m.ID, b.svc, b.opts.Client...).(S)
	}
	if !ok {
		return nil
	}
	return t
}

// sameImpl reports whether a and b are the same implementation (nil for
// remote members). Implementations of uncomparable types never are, rather
// than panicking.
func sameImpl(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	va := reflect.ValueOf(a)
	return va.Type() == reflect.TypeOf(b) && va.Comparable() && a == b
}

// Call makes one call of method m through do, which calls the method on
// the service value it is given, on a member chosen by the policy; args
// returns the call's arguments (after the context) for a key function, and
// may be nil when the method has none. A call that was not sent (see
// runtime.NotSent, ErrNoMember, ErrTooManyInFlight) is retried on another
// member, within the call's deadline and the retry policy (but not one
// refused for want of a marshal transformer, runtime.ErrNoTransformer: a
// mistake of configuration, which another try would repeat or hide; a call that
// finds no member first waits for a Source that is a Settler to settle); a call that may
// have run is retried only when m's flags have codegen.Idempotent, and only
// when it failed in the machinery; one whose flags have codegen.OneShot is
// never retried. Generated cluster proxies call it.
func (b *Balancer[S]) Call(ctx context.Context, m *codegen.MethodDesc, args func() []any, do func(S) error) error {
	if ctx == nil {
		return fmt.Errorf("cluster: call of %s.%s with a nil context", b.svc.Name, m.Name)
	}
	var key uint64
	if b.opts.Policy == ByKey {
		key = hashKey(b.key(m.Name, args))
	}
	var tried tried
	var err error
	settled := false
	for attempt := 1; ; attempt++ {
		ts := b.targetsNow()
		t, perr := b.pick(ts.list, key, &tried)
		if perr != nil {
			err = fmt.Errorf("%w (%s.%s)", perr, b.svc.Name, m.Name)
			if !settled && errors.Is(perr, ErrNoMember) {
				settled = true
				if st, ok := b.src.(Settler); ok && st.Settle(ctx) {
					attempt-- // waiting for the members is not a retry
					continue
				}
			}
		} else {
			t.inFlight.Add(1)
			err = do(t.svc)
			t.inFlight.Add(-1)
			if err == nil {
				return nil
			}
			tried.add(t.member.ID)
		}
		if !retryable(err, m.Flags) || attempt >= b.opts.Retry.Attempts || !b.pause(ctx, attempt) {
			return err
		}
	}
}

// key returns the key of a call of method with the arguments args lists.
func (b *Balancer[S]) key(method string, args func() []any) string {
	if b.opts.Key == nil {
		return ""
	}
	var a []any
	if args != nil {
		a = args()
	}
	return b.opts.Key(method, a)
}

// retryable reports whether a failed call may be made again elsewhere.
func retryable(err error, flags codegen.MethodFlags) bool {
	if flags&codegen.OneShot != 0 {
		return false
	}
	if runtime.NotSent(err) || errors.Is(err, ErrNoMember) || errors.Is(err, ErrTooManyInFlight) {
		return !errors.Is(err, runtime.ErrCanceled) && !errors.Is(err, runtime.ErrDeadlineExceeded) && !errors.Is(err, runtime.ErrClosed) &&
			!errors.Is(err, runtime.ErrNoTransformer)
	}
	if flags&codegen.Idempotent == 0 {
		return false
	}
	var re *runtime.RemoteError
	if errors.As(err, &re) {
		return false // the implementation answered
	}
	return errors.Is(err, runtime.ErrUnreachable) || errors.Is(err, runtime.ErrShuttingDown) ||
		errors.Is(err, runtime.ErrOverloaded) || errors.Is(err, runtime.ErrNoRoute)
}

// pause waits before retry number attempt (full jitter), unless that would
// pass ctx's deadline or ctx is done first; it reports whether to retry.
func (b *Balancer[S]) pause(ctx context.Context, attempt int) bool {
	r := b.opts.Retry
	ceiling := r.Base << min(attempt-1, 30)
	if r.Max > 0 && (ceiling > r.Max || ceiling <= 0) {
		ceiling = r.Max
	}
	var d time.Duration
	if ceiling > 0 {
		d = rand.N(ceiling)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false
	}
	if d == 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// A Proxy is a generated cluster proxy of service S; package cluster
// reaches its balancer through it (cluster.CallAll).
type Proxy[S any] interface {
	// TrellisBalancer returns the proxy's balancer.
	TrellisBalancer() *Balancer[S]
}

// A Reply is one member's answer to All.
type Reply[R any] struct {
	Member Member
	Value  R
	Err    error
}

// All calls f concurrently with the service of every member serving S now
// (this member's implementation directly), counting the calls in flight
// as the balancer's own, and returns every member's result or error in
// the order of the members (oldest first). Nothing is retried.
// cluster.CallAll is built on it.
func All[S, R any](ctx context.Context, b *Balancer[S], f func(context.Context, S) (R, error)) []Reply[R] {
	list := b.targetsNow().list
	out := make([]Reply[R], len(list))
	var wg sync.WaitGroup
	for i, t := range list {
		out[i].Member = t.member
		wg.Go(func() {
			t.inFlight.Add(1)
			defer t.inFlight.Add(-1)
			out[i].Value, out[i].Err = f(ctx, t.svc)
		})
	}
	wg.Wait()
	return out
}

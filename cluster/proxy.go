package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// Errors of cluster proxies. Both mean that the call was not sent.
var (
	// ErrNoMember: no live member advertises the service (with the
	// proxy's signatures).
	ErrNoMember = errors.New("cluster: no live member serves the service")
	// ErrTooManyInFlight: every member serving the service has
	// MaxInFlight calls of this proxy in progress.
	ErrTooManyInFlight = errors.New("cluster: too many calls in flight to every member serving the service")
)

// A Policy chooses the member that serves a call of a cluster proxy. The
// fourth policy, by key, is set with ByKey, which also says what the key
// of a call is.
type Policy uint8

const (
	// Nearest chooses a member with the fewest hops from this one in the
	// committed topology, then the fewest calls of the proxy in flight,
	// ties taken in turn. This member, when it serves the service, is
	// nearest (zero hops): its implementation is called directly.
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

type proxyOptions struct {
	policy      Policy
	key         KeyFunc
	retry       Retry
	maxInFlight int
	client      []runtime.ProxyOption
}

// WithPolicy sets how the proxy chooses a member for each call (default
// Nearest).
func WithPolicy(p Policy) ProxyOption {
	return func(o *proxyOptions) { o.policy = p }
}

// ByKey makes the proxy shard its calls by key: f returns each call's key
// (nil means FirstArgument), and the key is mapped to a member with
// rendezvous hashing. A call that must be retried goes to the key's next
// member in the same hashing order.
func ByKey(f KeyFunc) ProxyOption {
	if f == nil {
		f = FirstArgument
	}
	return func(o *proxyOptions) { o.policy, o.key = byKey, f }
}

// A Retry says how a call that was not sent is retried on another member:
// at most Attempts tries in all, the n-th retry after a random delay of up
// to Base × 2ⁿ⁻¹ (at most Max), never past the call's deadline.
type Retry struct {
	Attempts  int
	Base, Max time.Duration
}

// DefaultRetry is the retry policy of a cluster proxy.
var DefaultRetry = Retry{Attempts: 5, Base: 10 * time.Millisecond, Max: 500 * time.Millisecond}

// WithRetry sets the retry policy (Attempts 1 turns retries off).
func WithRetry(r Retry) ProxyOption {
	return func(o *proxyOptions) { o.retry = r }
}

// MaxInFlight caps the calls of the proxy in progress on one member: a
// member at the cap is passed over, and when all are, the call fails with
// ErrTooManyInFlight (not sent, so retried after a delay). Zero, the
// default, means no cap.
func MaxInFlight(n int) ProxyOption {
	return func(o *proxyOptions) { o.maxInFlight = n }
}

// WithClientOptions passes options to the plain proxy of each member (a
// timeout, a message transformer...).
func WithClientOptions(opts ...runtime.ProxyOption) ProxyOption {
	return func(o *proxyOptions) { o.client = append(o.client, opts...) }
}

// A Balancer spreads the calls of a generated cluster proxy (a
// FooClusterProxy, made by NewFooClusterProxy) over the members that serve
// service S, one member per call, retrying safely on another member. Users
// get one through a generated proxy's TrellisBalancer method, for CallAll.
type Balancer[S any] struct {
	c    *Cluster
	svc  *codegen.ServiceDesc
	hash uint64
	opts proxyOptions
	next atomic.Uint64 // round-robin position

	mu      sync.Mutex               // serialises rebuilding targets
	targets map[nodeid.ID]*target[S] // kept across views: proxies and counts survive changes
	cur     atomic.Pointer[targetSet[S]]
}

// A target is a member serving the service.
type target[S any] struct {
	member   Member
	hops     int
	local    bool   // the local implementation, called directly
	score    uint64 // the member's ID hashed, for rendezvous hashing
	svc      S
	inFlight atomic.Int32
}

// targetSet is the targets of one view.
type targetSet[S any] struct {
	view *view
	list []*target[S]
}

// NewBalancer returns a balancer over the members of c that serve svc, for
// the cluster proxy of S. Generated NewFooClusterProxy functions call it.
func NewBalancer[S any](c *Cluster, svc *codegen.ServiceDesc, opts ...ProxyOption) *Balancer[S] {
	b := &Balancer[S]{c: c, svc: svc, hash: ServiceHash(svc), targets: make(map[nodeid.ID]*target[S])}
	b.opts.retry = DefaultRetry
	for _, o := range opts {
		o(&b.opts)
	}
	if b.opts.policy == byKey && b.opts.key == nil {
		b.opts.key = FirstArgument
	}
	if b.opts.retry.Attempts < 1 {
		b.opts.retry.Attempts = 1
	}
	return b
}

// Policy returns the balancer's policy.
func (b *Balancer[S]) Policy() Policy { return b.opts.policy }

// targetsNow returns the members serving the service in the current view.
func (b *Balancer[S]) targetsNow() *targetSet[S] {
	v := b.c.view()
	if ts := b.cur.Load(); ts != nil && ts.view == v {
		return ts
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ts := b.cur.Load(); ts != nil && ts.view == v {
		return ts
	}
	ts := &targetSet[S]{view: v}
	keep := make(map[nodeid.ID]*target[S], len(b.targets))
	for i, m := range v.members {
		if !m.Local && v.hops[i] == unknownHops {
			continue // not in the committed topology yet: no route to it
		}
		t := b.targets[m.ID]
		if t == nil {
			t = b.newTarget(m)
		}
		if t == nil {
			continue
		}
		t.member, t.hops = m, v.hops[i]
		keep[m.ID] = t
		ts.list = append(ts.list, t)
	}
	b.targets = keep
	b.cur.Store(ts)
	return ts
}

// newTarget returns the target for member m, or nil if m does not serve
// the service.
func (b *Balancer[S]) newTarget(m Member) *target[S] {
	t := &target[S]{member: m, score: mix(uint64(m.ID))}
	if m.Local {
		impl, ok := b.c.node.Implementation(b.svc)
		if !ok {
			return nil
		}
		if t.svc, ok = impl.(S); !ok {
			return nil
		}
		t.local = true
		return t
	}
	if !m.Serves(b.svc) {
		return nil
	}
	proxy, ok := runtime.NewProxy(b.c.node, m.ID, b.svc, b.opts.client...).(S)
	if !ok {
		return nil
	}
	t.svc = proxy
	return t
}

// Call makes one call of method m through do, which calls the method on
// the service value it is given, on a member chosen by the policy; args
// returns the call's arguments (after the context) for a KeyFunc, and may
// be nil when the method has none. A call that was not sent (see
// runtime.NotSent, ErrNoMember, ErrTooManyInFlight) is retried on another
// member, within the call's deadline and the retry policy; a call that may
// have run is retried only when m's flags have codegen.Idempotent, and only
// when it failed in the machinery; one whose flags have codegen.OneShot is
// never retried. Generated cluster proxies call it.
func (b *Balancer[S]) Call(ctx context.Context, m *codegen.MethodDesc, args func() []any, do func(S) error) error {
	var key uint64
	if b.opts.policy == byKey {
		var a []any
		if args != nil {
			a = args()
		}
		key = hashKey(b.opts.key(m.Name, a))
	}
	var tried tried
	var err error
	for attempt := 1; ; attempt++ {
		ts := b.targetsNow()
		t, perr := b.pick(ts.list, key, &tried)
		if perr != nil {
			err = b.notSent(m, perr)
		} else {
			t.inFlight.Add(1)
			err = do(t.svc)
			t.inFlight.Add(-1)
			if err == nil {
				return nil
			}
			tried.add(t.member.ID)
		}
		if !retryable(err, m.Flags) || attempt >= b.opts.retry.Attempts || !b.pause(ctx, attempt) {
			return err
		}
	}
}

// notSent wraps a balancer's own refusal of a call.
func (b *Balancer[S]) notSent(m *codegen.MethodDesc, err error) error {
	return fmt.Errorf("%w (%s.%s)", err, b.svc.Name, m.Name)
}

// retryable reports whether a failed call may be made again elsewhere.
func retryable(err error, flags codegen.MethodFlags) bool {
	if flags&codegen.OneShot != 0 {
		return false
	}
	if runtime.NotSent(err) || errors.Is(err, ErrNoMember) || errors.Is(err, ErrTooManyInFlight) {
		return !errors.Is(err, runtime.ErrCanceled) && !errors.Is(err, runtime.ErrDeadlineExceeded) && !errors.Is(err, runtime.ErrClosed)
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
	r := b.opts.retry
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

// tried is the set of members a call was tried on.
type tried struct {
	few  [4]nodeid.ID
	n    int
	more []nodeid.ID
}

func (s *tried) add(id nodeid.ID) {
	if s.n < len(s.few) {
		s.few[s.n] = id
		s.n++
		return
	}
	s.more = append(s.more, id)
}

func (s *tried) has(id nodeid.ID) bool {
	for _, x := range s.few[:s.n] {
		if x == id {
			return true
		}
	}
	for _, x := range s.more {
		if x == id {
			return true
		}
	}
	return false
}

// pick chooses a target for a call by the policy, avoiding members already
// tried (unless all were) and members at MaxInFlight.
func (b *Balancer[S]) pick(list []*target[S], key uint64, tr *tried) (*target[S], error) {
	if len(list) == 0 {
		return nil, ErrNoMember
	}
	if t := b.pickFrom(list, key, tr); t != nil {
		return t, nil
	}
	if tr.n > 0 {
		// Every member was tried: try them again (a route may be back).
		if t := b.pickFrom(list, key, &tried{}); t != nil {
			return t, nil
		}
	}
	return nil, ErrTooManyInFlight
}

func (b *Balancer[S]) pickFrom(list []*target[S], key uint64, tr *tried) *target[S] {
	usable := func(t *target[S]) bool {
		return (tr.n == 0 || !tr.has(t.member.ID)) &&
			(b.opts.maxInFlight <= 0 || int(t.inFlight.Load()) < b.opts.maxInFlight)
	}
	switch b.opts.policy {
	case byKey:
		var best *target[S]
		var bestScore uint64
		for _, t := range list {
			if s := mix(t.score ^ key); usable(t) && (best == nil || s > bestScore) {
				best, bestScore = t, s
			}
		}
		return best
	case RoundRobin:
		start := int(b.next.Add(1) % uint64(len(list)))
		for i := range list {
			if t := list[(start+i)%len(list)]; usable(t) {
				return t
			}
		}
		return nil
	case LocalFirst:
		for _, t := range list {
			if t.local && usable(t) {
				return t
			}
		}
	}
	// Nearest: fewest hops, then fewest in flight, ties in turn.
	start := 0
	if len(list) > 1 {
		start = int(b.next.Add(1) % uint64(len(list)))
	}
	var best *target[S]
	var bestIn int32
	for i := range list {
		t := list[(start+i)%len(list)]
		if !usable(t) {
			continue
		}
		in := t.inFlight.Load()
		if best == nil || t.hops < best.hops || (t.hops == best.hops && in < bestIn) {
			best, bestIn = t, in
		}
	}
	return best
}

// hashKey hashes a key for rendezvous hashing (FNV-1a, the same on every
// machine).
func hashKey(k string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(k))
	return h.Sum64()
}

// mix is the SplitMix64 finaliser: it spreads the bits of x, so that the
// scores of a key on different members are independent.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Serving returns the members that cluster proxies for svc choose from:
// this member if it serves svc, and the members of the committed topology
// that advertise svc, oldest first.
func (c *Cluster) Serving(svc *codegen.ServiceDesc) []Member {
	b := NewBalancer[any](c, svc)
	ts := b.targetsNow()
	out := make([]Member, len(ts.list))
	for i, t := range ts.list {
		out[i] = t.member
	}
	return out
}

// KeyOwner returns the member that a by-key proxy for svc sends key to
// (tries first), and false if no live member serves svc.
func (c *Cluster) KeyOwner(svc *codegen.ServiceDesc, key string) (Member, bool) {
	b := NewBalancer[any](c, svc, ByKey(nil))
	t := b.pickFrom(b.targetsNow().list, hashKey(key), &tried{})
	if t == nil {
		return Member{}, false
	}
	return t.member, true
}

// A Result is one member's answer to CallAll.
type Result[R any] struct {
	Member Member
	Value  R
	Err    error
}

// A Balanced is a generated cluster proxy of service S.
type Balanced[S any] interface {
	TrellisBalancer() *Balancer[S]
}

// CallAll calls f concurrently with the service of every live member
// serving it (this member's implementation directly), and returns every
// member's result or error, in the order of the members (oldest first).
// Nothing is retried.
func CallAll[S, R any](ctx context.Context, p Balanced[S], f func(context.Context, S) (R, error)) []Result[R] {
	b := p.TrellisBalancer()
	list := b.targetsNow().list
	out := make([]Result[R], len(list))
	var wg sync.WaitGroup
	for i, t := range list {
		out[i].Member = t.member
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.inFlight.Add(1)
			defer t.inFlight.Add(-1)
			out[i].Value, out[i].Err = f(ctx, t.svc)
		}()
	}
	wg.Wait()
	return out
}

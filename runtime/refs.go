package runtime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/runtime/wire"
)

// Errors of references.
var (
	// ErrReleased: the proxy was released (Release), or the object it
	// designated is no longer exported to this node.
	ErrReleased = errors.New("trellis: reference released")
	// ErrTooManyRefs: a peer holds Config.MaxExportsPerPeer objects of this
	// node already, or Config.MaxStreamsPerPeer streams it has not finished.
	ErrTooManyRefs = errors.New("trellis: too many references exported to one node")
	// ErrBadRef: a reference arrived with the wrong interface, or
	// designates an object the sender does not own.
	ErrBadRef = errors.New("trellis: bad reference")
)

// refTable holds a node's side of references: the objects it exports, with
// an exact count of the references each holder was sent and has not
// released, and the references it imports, with the count it received.
// An exporter frees an object when no holder counts any reference to it; a
// holder releases what it received (not what it thinks it holds), so a
// reference in flight while a release travels the other way keeps the
// object alive (the scheme of Cap'n Proto).
type refTable struct {
	mu      sync.Mutex
	ids     refIDs // object IDs: unguessable, never reused
	exports map[uint64]*export
	byObj   map[exportKey]uint64 // comparable objects, for reuse of their ID
	held    map[NodeID]int       // objects each peer holds
	imports map[importKey]*importEntry
	release map[NodeID][]refCount // releases waiting to be sent
	wake    chan struct{}         // capacity 1: releases are waiting
}

type export struct {
	key     exportKey
	obj     any
	svc     *codegen.ServiceDesc
	holders map[NodeID]uint64 // references sent and not released, per holder
}

type exportKey struct {
	obj any
	svc *codegen.ServiceDesc
}

type importKey struct {
	node   NodeID
	object uint64
}

type importEntry struct {
	received uint64 // references to the object received from its exporter
	proxies  int    // live proxies on this node
}

// refCount is an entry of a release: how many references to an object the
// holder gives back.
type refCount struct {
	_      struct{} `cbor:",toarray"`
	Object uint64
	Count  uint64
}

func (t *refTable) init() {
	t.ids = newRefIDs()
	t.exports = make(map[uint64]*export)
	t.byObj = make(map[exportKey]uint64)
	t.held = make(map[NodeID]int)
	t.imports = make(map[importKey]*importEntry)
	t.release = make(map[NodeID][]refCount)
	t.wake = make(chan struct{}, 1)
}

// exportRef exports v (a value of svc's interface) to node dest.
func (n *Node) exportRef(v any, svc *codegen.ServiceDesc, dest NodeID) (codegen.Ref, error) {
	if v == nil {
		return codegen.Ref{}, nil
	}
	if c := ProxyOf(v); c != nil && c.target == dest {
		if c.svc.ID != svc.ID {
			return codegen.Ref{}, fmt.Errorf("%w: a proxy of %s passed as %s", ErrBadRef, c.svc.Name, svc.Name)
		}
		// Back to its owner: the owner will find the original object.
		return codegen.Ref{Node: dest, Object: c.object, Service: svc.ID}, nil
	}
	// A local object, or a proxy of another node's object, which is
	// exported as a forwarder.
	t := &n.refs
	t.mu.Lock()
	defer t.mu.Unlock()
	key := exportKey{v, svc}
	comparable := reflect.TypeOf(v).Comparable()
	var id uint64
	if comparable {
		id = t.byObj[key]
	}
	e := t.exports[id]
	if e == nil {
		id = t.ids.next()
		e = &export{key: key, obj: v, svc: svc, holders: make(map[NodeID]uint64)}
		t.exports[id] = e
		if comparable {
			t.byObj[key] = id
		}
	}
	if e.holders[dest] == 0 {
		if t.held[dest] >= n.cfg.MaxExportsPerPeer {
			if len(e.holders) == 0 {
				t.drop(id, e)
			}
			return codegen.Ref{}, fmt.Errorf("%w: node %s holds %d", ErrTooManyRefs, dest, t.held[dest])
		}
		t.held[dest]++
	}
	e.holders[dest]++
	return codegen.Ref{Node: n.cfg.ID, Object: id, Service: svc.ID}, nil
}

// drop removes an export that nobody holds. t.mu must be held.
func (t *refTable) drop(id uint64, e *export) {
	delete(t.exports, id)
	if reflect.TypeOf(e.obj).Comparable() && t.byObj[e.key] == id {
		delete(t.byObj, e.key)
	}
}

// importRef turns a reference received from node from into an object.
func (n *Node) importRef(r codegen.Ref, svc *codegen.ServiceDesc, from NodeID) (any, *Client, error) {
	if r.IsZero() {
		return nil, nil, nil
	}
	if r.Service != svc.ID {
		if r.Node == from && r.Object != 0 {
			n.queueRelease(from, refCount{Object: r.Object, Count: 1}) // refuse it, but do not leak it
		}
		return nil, nil, fmt.Errorf("%w: reference %d of node %s is not a %s", ErrBadRef, r.Object, r.Node, svc.Name)
	}
	if r.Node == n.cfg.ID {
		if r.Object == 0 {
			return n.serviceImpl(svc)
		}
		t := &n.refs
		t.mu.Lock()
		e := t.exports[r.Object]
		held := e != nil && e.holders[from] > 0
		t.mu.Unlock()
		switch {
		case e == nil:
			return nil, nil, fmt.Errorf("%w: object %d of this node", ErrReleased, r.Object)
		case !held && from != n.cfg.ID:
			// A reference is valid only for the holder it was sent to.
			n.refusedRef(from, r.Object, "passed back")
			return nil, nil, fmt.Errorf("%w: node %s passed back object %d of this node, which it was not sent", ErrBadRef, from, r.Object)
		}
		return e.obj, nil, nil
	}
	if r.Node != from {
		return nil, nil, fmt.Errorf("%w: node %s sent a reference owned by node %s", ErrBadRef, from, r.Node)
	}
	c := &Client{node: n, target: r.Node, object: r.Object, svc: svc}
	if r.Object == 0 {
		return nil, c, nil // a node's service: nothing to count
	}
	key := importKey{r.Node, r.Object}
	t := &n.refs
	t.mu.Lock()
	ie := t.imports[key]
	if ie == nil {
		ie = &importEntry{}
		t.imports[key] = ie
	}
	ie.received++
	ie.proxies++
	t.mu.Unlock()
	c.imported = true
	c.cleanup = goruntime.AddCleanup(c, func(k importKey) { n.dropProxy(k) }, key)
	return nil, c, nil
}

// serviceImpl returns the implementation registered for svc on this node.
func (n *Node) serviceImpl(svc *codegen.ServiceDesc) (any, *Client, error) {
	for _, e := range n.services.Load().methods {
		if e.svc.Name == svc.Name {
			return e.impl, nil, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: service %s is not registered on this node", ErrBadRef, svc.Name)
}

// Release releases a proxy received by reference: its object's exporter is
// told (once no other proxy of this node designates the object), and calls
// on the proxy fail with ErrReleased from then on. Proxies that become
// unreachable are released by the garbage collector; Release makes it
// prompt. It does nothing for a proxy of a node's service.
func Release(proxy any) error {
	c := ProxyOf(proxy)
	if c == nil {
		return fmt.Errorf("trellis: Release: %T is not a proxy", proxy)
	}
	if !c.imported || c.released.Swap(true) {
		return nil
	}
	c.cleanup.Stop()
	c.node.dropProxy(importKey{c.target, c.object})
	return nil
}

// dropProxy forgets one proxy of an imported object and, with the last,
// queues a release of every reference received.
func (n *Node) dropProxy(k importKey) {
	t := &n.refs
	t.mu.Lock()
	ie := t.imports[k]
	if ie == nil {
		t.mu.Unlock()
		return // the exporter left or failed
	}
	ie.proxies--
	if ie.proxies > 0 {
		t.mu.Unlock()
		return
	}
	delete(t.imports, k)
	t.mu.Unlock()
	n.queueRelease(k.node, refCount{Object: k.object, Count: ie.received})
}

func (n *Node) queueRelease(to NodeID, rc refCount) {
	t := &n.refs
	t.mu.Lock()
	t.release[to] = append(t.release[to], rc)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Limits of a release message: a holder sends at most maxReleaseEntries
// entries in one (more go in several), and an exporter refuses a message
// with more; it applies one in batches of releaseBatch entries, letting go
// of the reference table's lock between batches, so that a hostile release
// holds the lock no longer than a legitimate one.
const (
	maxReleaseEntries = 4096
	releaseBatch      = 256
)

// releaser sends queued releases to their exporters, batched per node.
func (n *Node) releaser() {
	defer n.bg.Done()
	t := &n.refs
	for {
		select {
		case <-t.wake:
		case <-n.stopped:
			return
		}
		t.mu.Lock()
		batch := t.release
		t.release = make(map[NodeID][]refCount)
		t.mu.Unlock()
		for to, refs := range batch {
			for len(refs) > 0 {
				chunk := refs[:min(len(refs), maxReleaseEntries)]
				refs = refs[len(chunk):]
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				args := releaseArgs{Refs: chunk}
				err := newClient(n, to, refsService).do(ctx, refsReleaseMethod, &args, nil)
				cancel()
				if err != nil {
					// The exporter forgets this node when it leaves or fails.
					n.log.Info("trellis: releasing references failed", "node", to, "refs", len(chunk), "err", err)
					break
				}
			}
		}
	}
}

// releaseStats counts the entries of a release that did not match what the
// holder was sent.
type releaseStats struct {
	unknown int // objects not exported (any more)
	foreign int // objects exported, but not to the holder
	excess  int // entries releasing more references than the holder was sent
}

// releaseFrom applies a release sent by holder: it only ever lowers the
// holder's own counts. Entries that do not match what the holder was sent
// are counted and logged as one summary, at most once per logEvery; if some
// named objects exported to other nodes only, it returns an error for
// which errors.Is(err, ErrBadRef) holds (the rest is applied).
func (n *Node) releaseFrom(holder NodeID, refs []refCount) error {
	var st releaseStats
	t := &n.refs
	for len(refs) > 0 {
		batch := refs[:min(len(refs), releaseBatch)]
		refs = refs[len(batch):]
		t.mu.Lock()
		for _, rc := range batch {
			t.releaseOne(holder, rc, &st)
		}
		t.mu.Unlock()
	}
	if st.unknown+st.foreign+st.excess > 0 {
		if ok, held := n.logs.allow("release", holder); ok {
			n.log.Warn("trellis: a node released references it was not sent", "node", holder,
				"unknown", st.unknown, "foreign", st.foreign, "excess", st.excess, "earlier_messages_not_logged", held)
		}
	}
	if st.foreign > 0 {
		return fmt.Errorf("%w: node %s released %d objects of node %s exported to other nodes", ErrBadRef, holder, st.foreign, n.cfg.Name)
	}
	return nil
}

// releaseOne applies one entry of a release. t.mu is held.
func (t *refTable) releaseOne(holder NodeID, rc refCount, st *releaseStats) {
	e := t.exports[rc.Object]
	if e == nil {
		st.unknown++
		return
	}
	held := e.holders[holder]
	if held == 0 {
		st.foreign++
		return
	}
	if rc.Count > held {
		st.excess++
		rc.Count = held
	}
	if held -= rc.Count; held > 0 {
		e.holders[holder] = held
		return
	}
	delete(e.holders, holder)
	if t.held[holder]--; t.held[holder] <= 0 {
		delete(t.held, holder)
	}
	if len(e.holders) == 0 {
		t.drop(rc.Object, e)
	}
}

// ForgetNode releases everything node id held of this node's objects, and
// drops this node's imports of id's objects: the cluster calls it when
// membership declares id failed or gone, and the node calls it itself when a
// direct connection to id closes while no router is installed.
func (n *Node) ForgetNode(id NodeID) {
	n.forgetStreams(id)
	t := &n.refs
	t.mu.Lock()
	defer t.mu.Unlock()
	for oid, e := range t.exports {
		if _, ok := e.holders[id]; ok {
			delete(e.holders, id)
			if len(e.holders) == 0 {
				t.drop(oid, e)
			}
		}
	}
	delete(t.held, id)
	for k := range t.imports {
		if k.node == id {
			delete(t.imports, k)
		}
	}
	delete(t.release, id)
}

// exported returns the object id designates if caller holds it, and
// whether it exists at all.
func (n *Node) exported(id uint64, caller NodeID) (e *export, exists bool) {
	t := &n.refs
	t.mu.Lock()
	defer t.mu.Unlock()
	e = t.exports[id]
	if e == nil || e.holders[caller] == 0 {
		return nil, e != nil
	}
	return e, true
}

// refusedRef logs, at most once per logEvery and peer, that peer named an
// object of this node that it was not sent.
func (n *Node) refusedRef(peer NodeID, object uint64, how string) {
	if ok, held := n.logs.allow("badref", peer); ok {
		n.log.Warn("trellis: a node named an object it was not sent", "node", peer, "object", object, "how", how, "earlier_not_logged", held)
	}
}

// RefStats counts a node's references.
type RefStats struct {
	Exports int // objects exported
	Holds   int // (object, holder) pairs
	Imports int // objects of other nodes this node holds proxies of
	Pending int // releases not yet sent
}

// RefStats returns the node's reference counts; all are zero when nothing
// is shared (see runtimetest.AssertNoLeaks).
func (n *Node) RefStats() RefStats {
	t := &n.refs
	t.mu.Lock()
	defer t.mu.Unlock()
	s := RefStats{Exports: len(t.exports), Imports: len(t.imports)}
	for _, e := range t.exports {
		s.Holds += len(e.holders)
	}
	for _, r := range t.release {
		s.Pending += len(r)
	}
	return s
}

// The built-in service through which holders release references.
type releaseArgs struct {
	_    struct{} `cbor:",toarray"`
	Refs []refCount
}

// AppendCBOR implements codegen.WireCodec: the bytes of the reflective encoder.
func (a *releaseArgs) AppendCBOR(b []byte) []byte {
	b = wire.AppendArrayHeader(b, 1)
	if a.Refs == nil {
		return wire.AppendNull(b)
	}
	b = wire.AppendArrayHeader(b, len(a.Refs))
	for _, rc := range a.Refs {
		b = wire.AppendArrayHeader(b, 2)
		b = wire.AppendUint(b, rc.Object)
		b = wire.AppendUint(b, rc.Count)
	}
	return b
}

// DecodeCBOR implements codegen.WireCodec. It refuses a release of more than
// maxReleaseEntries entries before allocating them.
func (a *releaseArgs) DecodeCBOR(d *wire.Decoder) error {
	*a = releaseArgs{}
	if err := d.ArrayOf(1, "release"); err != nil {
		return err
	}
	if !d.Nil() {
		n, err := d.Array()
		if err != nil {
			return err
		}
		if n > maxReleaseEntries {
			return fmt.Errorf("a release of %d entries, more than the %d a node sends in one message", n, maxReleaseEntries)
		}
		a.Refs = make([]refCount, n)
		for i := range a.Refs {
			rc := &a.Refs[i]
			if err := d.ArrayOf(2, "release entry"); err != nil {
				return err
			}
			if rc.Object, err = wire.Uint[uint64](d); err != nil {
				return err
			}
			if rc.Count, err = wire.Uint[uint64](d); err != nil {
				return err
			}
			d.Leave()
		}
		d.Leave()
	}
	d.Leave()
	return nil
}

var refsReleaseMethod = &codegen.MethodDesc{
	Name:      "Release",
	Signature: "func(context.Context, []refCount) error",
	Handler: func(ctx context.Context, impl any, cg codegen.ServerCall) error {
		call := cg.(*serverCall)
		var args releaseArgs
		if err := call.Decode(&args); err != nil {
			return err
		}
		if len(args.Refs) > maxReleaseEntries { // decoded reflectively
			return fmt.Errorf("trellis: node %s: a release of %d entries, more than %d", call.node.cfg.Name, len(args.Refs), maxReleaseEntries)
		}
		if err := call.node.releaseFrom(call.caller, args.Refs); err != nil {
			return badRefError{err}
		}
		return nil
	},
}

var refsService = func() *codegen.ServiceDesc {
	const name = "github.com/trellisrpc/trellis/runtime.refs"
	refsReleaseMethod.ID = codegen.MethodID(name, refsReleaseMethod.Name, refsReleaseMethod.Signature)
	return &codegen.ServiceDesc{Name: name, ID: codegen.ServiceID(name), Methods: []*codegen.MethodDesc{refsReleaseMethod}}
}()

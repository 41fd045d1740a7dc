package runtime

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/runtime/codegen"
	"github.com/trellisrpc/trellis/transport"
)

// forgedCall makes, from node x, a call to node to whose envelope is req
// as given (a hostile node may write any source), and returns its outcome.
func forgedCall(t *testing.T, x *Node, to NodeID, req request, m *codegen.MethodDesc, args, results any) error {
	t.Helper()
	p := x.peer(to)
	if p == nil {
		t.Fatalf("%s has no connection to %s", x.cfg.Name, to)
	}
	buf := transport.GetBuffer()
	buf.Write(appendRequest(buf.AvailableBuffer(), &req))
	if _, err := x.encode(args, &buf.Buffer, to); err != nil {
		t.Fatal(err)
	}
	cl := x.newCall()
	cl.results, cl.svc, cl.method, cl.target, cl.err, cl.transformer, cl.info = results, echoDesc, m, to, nil, nil, nil
	id := p.nextCall.Add(1)
	p.mu.Lock()
	p.calls[id] = cl
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.send(ctx, kindRequest, id, buf); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cl.done:
		return p.finish(cl)
	case <-ctx.Done():
		t.Fatal("no reply to a forged call within 10 s")
		return nil
	}
}

type echoMsg struct {
	_ struct{} `cbor:",toarray"`
	S string
}

// TestRoutedCallCannotUseAnotherPeersReference runs three nodes over real
// connections: server exports an object to holder; attacker, also a
// neighbour of server, names that object in calls: directly, routed with
// holder as their source, and in a release routed the same way; and it
// cancels a stream that server sends holder. Each is refused (ErrBadRef
// for a call naming the object), the holder's reference and stream still
// work, and the server logs the refusals once, not once per message.
func TestRoutedCallCannotUseAnotherPeersReference(t *testing.T) {
	logs := &countingHandler{}
	server, err := NewNode(Config{Name: "server", Addr: "127.0.0.1:0", Keyring: testKeyring, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close(context.Background())
	if err := server.Register(echoDesc, struct{}{}); err != nil {
		t.Fatal(err)
	}
	holder, attacker := newTestNode(t, "holder"), newTestNode(t, "attacker")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range []*Node{holder, attacker} {
		if _, err := n.Connect(ctx, server.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	// The server's routes: both are neighbours.
	server.SetRouter(staticRoutes{holder.ID(): holder.ID(), attacker.ID(): attacker.ID()})

	ref, err := server.exportRef(struct{ x int }{1}, echoDesc, holder.ID())
	if err != nil {
		t.Fatal(err)
	}
	echo := echoDesc.Methods[0]
	in, out := echoMsg{S: "hi"}, echoMsg{}
	own := &Client{node: holder, target: server.ID(), object: ref.Object, svc: echoDesc}
	if err := own.do(ctx, echo, &in, &out); err != nil || out.S != "hi" {
		t.Fatalf("the holder's call on its reference: %q, %v", out.S, err)
	}

	const times = 20
	for range times {
		// Naming the object directly: the attacker is not its holder.
		err := forgedCall(t, attacker, server.ID(), request{object: ref.Object, method: echo.ID}, echo, &in, &out)
		if !errors.Is(err, ErrBadRef) {
			t.Fatalf("a call on another node's reference: %v, want ErrBadRef", err)
		}
		// Routed, claiming the holder as source.
		err = forgedCall(t, attacker, server.ID(), request{routed: true, dst: server.ID(), src: holder.ID(), ttl: DefaultMaxHops, object: ref.Object, method: echo.ID}, echo, &in, &out)
		if !errors.Is(err, ErrBadRef) {
			t.Fatalf("a routed call naming the holder as its source: %v, want ErrBadRef", err)
		}
		// A release of the holder's reference, routed the same way.
		rel := releaseArgs{Refs: []refCount{{Object: ref.Object, Count: 1}}}
		err = forgedCall(t, attacker, server.ID(), request{routed: true, dst: server.ID(), src: holder.ID(), ttl: DefaultMaxHops, method: refsReleaseMethod.ID}, refsReleaseMethod, &rel, nil)
		if err == nil {
			t.Fatal("a routed release naming the holder as its source was accepted")
		}
		// The same release as itself.
		err = forgedCall(t, attacker, server.ID(), request{method: refsReleaseMethod.ID}, refsReleaseMethod, &rel, nil)
		if !errors.Is(err, ErrBadRef) {
			t.Fatalf("a release of another node's reference: %v, want ErrBadRef", err)
		}
	}
	if e, _ := server.exported(ref.Object, holder.ID()); e == nil || e.holders[holder.ID()] != 1 {
		t.Fatal("the attacker's messages changed the holder's reference")
	}
	if err := own.do(ctx, echo, &in, &out); err != nil {
		t.Fatalf("the holder's call after the attack: %v", err)
	}

	// A stream the server sends the holder: a routed cancel from the
	// attacker in the holder's name is dropped.
	sr, err := server.exportStream(context.Background(), strings.NewReader("data"), holder.ID())
	if err != nil {
		t.Fatal(err)
	}
	buf := transport.GetBuffer()
	buf.Write(appendRequest(buf.AvailableBuffer(), &request{routed: true, dst: server.ID(), src: holder.ID(), ttl: DefaultMaxHops, object: sr.Stream, method: opCancel}))
	if err := attacker.peer(server.ID()).send(ctx, kindStream, sr.Stream, buf); err != nil {
		t.Fatal(err)
	}
	// Messages on one connection are handled in order: once this call is
	// answered, the cancel has been handled.
	forgedCall(t, attacker, server.ID(), request{method: echo.ID}, echo, &in, &out)
	server.streams.mu.Lock()
	s := server.streams.out[sr.Stream]
	server.streams.mu.Unlock()
	select {
	case <-s.done:
		t.Fatal("a cancel routed in the holder's name cancelled its stream")
	default:
	}
	s.cancel(nil)

	total, bad := logs.count("")
	if bad > 4 || total > 6 {
		t.Errorf("%d log records for %d hostile messages, want one per kind: %v", total, 4*times+1, logs.msgs)
	}
	t.Logf("log records: %v", logs.msgs)
}

// staticRoutes is a fixed routing table.
type staticRoutes map[NodeID]NodeID

func (r staticRoutes) NextHop(dst NodeID) (NodeID, bool) {
	next, ok := r[dst]
	return next, ok
}

func newTestNode(t *testing.T, name string) *Node {
	t.Helper()
	n, err := NewNode(Config{Name: name, Keyring: testKeyring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// TestRefIDs checks that export IDs are distinct, never 0, and not small
// sequential integers.
func TestRefIDs(t *testing.T) {
	r := newRefIDs()
	seen := make(map[uint64]bool)
	high := 0
	for range 100_000 {
		id := r.next()
		if id == 0 || seen[id] {
			t.Fatalf("ID %d repeated or zero", id)
		}
		seen[id] = true
		if id>>40 != 0 {
			high++
		}
	}
	if high < 99_000 {
		t.Fatalf("only %d of 100000 IDs use their high bits: guessable", high)
	}
	if a, b := newRefIDs(), newRefIDs(); a.next() == b.next() {
		t.Fatal("two nodes' first IDs are equal: the key is not random")
	}
}

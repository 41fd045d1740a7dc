package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/trellisrpc/trellis/examples/hello/greeter"
	"github.com/trellisrpc/trellis/examples/transform/ledger"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime"
)

// greeterImpl is the implementation of greeter.Greeter the examples serve.
type greeterImpl struct{ name string }

func (g greeterImpl) Hello(ctx context.Context, name string) (greeter.Greeting, error) {
	if name == "" {
		return greeter.Greeting{}, greeter.ErrNoName
	}
	return greeter.Greeting{Text: "Hello, " + name + "!", From: g.name}, nil
}

func (g greeterImpl) Count(ctx context.Context) (int, error) { return 0, nil }

// Two nodes on the loopback interface: one serves the Greeter service, the
// other calls it through the proxy that proxygen generated.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The cluster key: only nodes that hold it connect to each other.
	keys, err := keyring.New([]byte("the cluster key all members share"))
	if err != nil {
		fmt.Println(err)
		return
	}

	server, err := runtime.NewNode(runtime.Config{Name: "server", Addr: "127.0.0.1:0", Keyring: keys})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer server.Close(context.Background())
	if err := greeter.RegisterGreeter(server, greeterImpl{name: "server"}); err != nil {
		fmt.Println(err)
		return
	}

	client, err := runtime.NewNode(runtime.Config{Name: "client", Keyring: keys})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close(context.Background())
	id, err := client.Connect(ctx, server.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}

	var g greeter.Greeter = greeter.NewGreeterProxy(client, id) // a Greeter that calls the server
	greeting, err := g.Hello(ctx, "world")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(greeting.Text, "from", greeting.From)
	fmt.Println("proxy's target is the server:", runtime.ProxyOf(g).Target() == server.ID())
	// Output:
	// Hello, world! from server
	// proxy's target is the server: true
}

// exampleNodes returns a listening node and a node connected to it, and
// a function that closes both; setup, if set, runs on both nodes before
// they connect.
func exampleNodes(ctx context.Context, setup func(*runtime.Node) error) (server, client *runtime.Node, closeAll func(), err error) {
	keys, err := keyring.New([]byte("the cluster key all members share"))
	if err != nil {
		return nil, nil, nil, err
	}
	var nodes []*runtime.Node
	closeAll = func() {
		for _, n := range nodes {
			n.Close(context.Background())
		}
	}
	for _, cfg := range []runtime.Config{
		{Name: "server", Addr: "127.0.0.1:0", Keyring: keys},
		{Name: "client", Keyring: keys},
	} {
		n, err := runtime.NewNode(cfg)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		nodes = append(nodes, n)
		if setup != nil {
			if err := setup(n); err != nil {
				closeAll()
				return nil, nil, nil, err
			}
		}
	}
	server, client = nodes[0], nodes[1]
	if _, err := client.Connect(ctx, server.Addr().String()); err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return server, client, closeAll, nil
}

// greeterNodes is exampleNodes with the server serving the Greeter service.
func greeterNodes(ctx context.Context, setup func(*runtime.Node) error) (server, client *runtime.Node, closeAll func(), err error) {
	server, client, closeAll, err = exampleNodes(ctx, setup)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := greeter.RegisterGreeter(server, greeterImpl{name: "server"}); err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return server, client, closeAll, nil
}

// An error registered on both nodes keeps its identity across the wire:
// errors.Is holds on the caller's side.
func ExampleRegisterError() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, client, closeAll, err := exampleNodes(ctx, func(n *runtime.Node) error {
		return runtime.RegisterError(n, "greeter.NoName", greeter.ErrNoName)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()
	if err := greeter.RegisterGreeter(server, greeterImpl{name: "server"}); err != nil {
		fmt.Println(err)
		return
	}

	_, err = greeter.NewGreeterProxy(client, server.ID()).Hello(ctx, "")
	fmt.Println("ErrNoName:", errors.Is(err, greeter.ErrNoName))
	var ce *runtime.CallError
	fmt.Println("a call error naming the method:", errors.As(err, &ce) && ce.Method != "")
	// Output:
	// ErrNoName: true
	// a call error naming the method: true
}

// clerk implements ledger.Ledger: Settle returns the accounts it was given
// with the postings applied.
type clerk struct{}

func (clerk) Settle(ctx context.Context, postings []ledger.Posting) (map[string]*ledger.Account, error) {
	out := map[string]*ledger.Account{}
	for _, p := range postings {
		s := p.Account.Snapshot()
		if a, ok := out[s.ID]; ok {
			s = a.Snapshot()
		}
		s.Balance += p.Amount
		out[s.ID] = ledger.Restore(s, nil)
	}
	return out, nil
}

func (clerk) Pay(ctx context.Context, w ledger.Wallet, amount int64, memo string) (int64, error) {
	return w.Credit(ctx, amount, memo)
}

// A marshal transformer lets a value that cannot be serialized (an
// *ledger.Account holds a lock and an open file) cross as a snapshot, and
// be rebuilt on arrival. Both nodes register it.
func ExampleRegisterTransformer() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, client, closeAll, err := exampleNodes(ctx, func(n *runtime.Node) error {
		return runtime.RegisterTransformer(n,
			func(a *ledger.Account) (ledger.Snapshot, error) { return a.Snapshot(), nil },
			func(s ledger.Snapshot) (*ledger.Account, error) { return ledger.Restore(s, nil), nil })
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()
	if err := ledger.RegisterLedger(server, clerk{}); err != nil {
		fmt.Println(err)
		return
	}

	alice := ledger.NewAccount("a1", "alice", 100, nil)
	settled, err := ledger.NewLedgerProxy(client, server.ID()).Settle(ctx, []ledger.Posting{
		{Account: alice, Amount: 20},
		{Account: alice, Amount: -5},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ids := make([]string, 0, len(settled))
	for id := range settled {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Println("settled:", settled[id])
	}
	fmt.Println("the caller's account is unchanged:", alice)
	// Output:
	// settled: a1 (alice) 115
	// the caller's account is unchanged: a1 (alice) 100
}

// A node that has not registered the marshal transformer of a type that
// proxygen was told is transformed (-transformed Account) refuses the calls
// that hold it, here before sending: nothing crosses without its
// transformer.
func ExampleRegisterTransformer_missing() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, client, closeAll, err := exampleNodes(ctx, func(*runtime.Node) error { return nil })
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()
	if err := ledger.RegisterLedger(server, clerk{}); err != nil {
		fmt.Println(err)
		return
	}
	_, err = ledger.NewLedgerProxy(client, server.ID()).Settle(ctx, []ledger.Posting{
		{Account: ledger.NewAccount("a1", "alice", 100, nil), Amount: 20},
	})
	fmt.Println("no transformer:", errors.Is(err, runtime.ErrNoTransformer))
	fmt.Println("not sent:", runtime.NotSent(err))
	// Output:
	// no transformer: true
	// not sent: true
}

// A message transformer on a proxy sees every encoded call it sends: here
// it adds metadata, which the implementation reads from its context.
func ExampleClient_SetTransformer() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, client, closeAll, err := exampleNodes(ctx, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()
	if err := greeter.RegisterGreeter(server, tokenGreeter{}); err != nil {
		fmt.Println(err)
		return
	}

	g := greeter.NewGreeterProxy(client, server.ID())
	runtime.ProxyOf(g).SetTransformer(runtime.TransformerFuncs{
		Out: func(m *runtime.Message) error {
			if !m.Reply {
				m.Metadata.Set("token", "s3cret")
			}
			return nil
		},
	})
	greeting, err := g.Hello(ctx, "world")
	fmt.Println(greeting.Text, err)
	// Output: Hello, world (token s3cret)! <nil>
}

// A node's message transformer sees the calls it serves and its replies to
// them, errors included: here it refuses calls without a token, and stamps
// every reply, which the caller's client interceptor reads.
func ExampleNode_SetInterceptor() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, client, closeAll, err := greeterNodes(ctx, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()
	server.SetInterceptor(runtime.TransformerFuncs{
		In: func(m *runtime.Message) error {
			if tok, _ := m.Metadata.Get("token"); tok != "s3cret" {
				return errors.New("no valid token")
			}
			return nil
		},
		Out: func(m *runtime.Message) error {
			m.Metadata.Set("served-by", "node1")
			return nil
		},
	})
	token := ""
	client.Intercept(func(ctx context.Context, call *runtime.OutgoingCall, next func(context.Context) error) error {
		if token != "" {
			call.Metadata.Set("token", token)
		}
		err := next(ctx)
		by, _ := call.ReplyMetadata.Get("served-by")
		fmt.Printf("%s: %s, not sent %v, served by %q\n", call.Method.Name, runtime.ErrorKind(err), runtime.NotSent(err), by)
		return err
	}, nil, nil)

	g := greeter.NewGreeterProxy(client, server.ID())
	_, err = g.Hello(ctx, "world")
	fmt.Println(errors.Is(err, runtime.ErrRejected))
	token = "s3cret"
	g.Hello(ctx, "world")
	g.Hello(ctx, "") // an application error: its reply is stamped too
	// Output:
	// Hello: rejected, not sent true, served by ""
	// true
	// Hello: ok, not sent false, served by "node1"
	// Hello: application, not sent false, served by "node1"
}

// tokenGreeter greets with the token its caller sent as metadata.
type tokenGreeter struct{ greeterImpl }

func (tokenGreeter) Hello(ctx context.Context, name string) (greeter.Greeting, error) {
	info, _ := runtime.CallInfoFrom(ctx)
	token, _ := info.Metadata.Get("token")
	return greeter.Greeting{Text: fmt.Sprintf("Hello, %s (token %s)!", name, token)}, nil
}

// A client interceptor wraps every call the node makes: here it adds a
// metadata entry the server's interceptor reads, and reports each call's
// outcome.
func ExampleNode_Intercept() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, client, closeAll, err := greeterNodes(ctx, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()
	client.Intercept(func(ctx context.Context, call *runtime.OutgoingCall, next func(context.Context) error) error {
		call.Metadata.Set("request-id", "r-1")
		err := next(ctx)
		fmt.Printf("client: %s: %s\n", call.Method.Name, runtime.ErrorKind(err))
		return err
	}, nil, nil)
	server.Intercept(nil, func(ctx context.Context, call *runtime.IncomingCall, next func(context.Context) error) error {
		id, _ := call.Metadata.Get("request-id")
		fmt.Printf("server: %s, request %s, %d hop(s)\n", call.Method.Name, id, call.Hops)
		return next(ctx)
	}, nil)

	g := greeter.NewGreeterProxy(client, server.ID())
	g.Hello(ctx, "world")
	g.Hello(ctx, "")
	// Output:
	// server: Hello, request r-1, 1 hop(s)
	// client: Hello: ok
	// server: Hello, request r-1, 1 hop(s)
	// client: Hello: application
}

// callCounter is a CallObserver that counts the calls made by outcome.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) CallMade(ctx context.Context, call *runtime.OutgoingCall, err error) {
	c.mu.Lock()
	c.calls[call.Method.Name+" "+runtime.ErrorKind(err)]++
	c.mu.Unlock()
}

func (c *callCounter) CallServed(ctx context.Context, call *runtime.IncomingCall, err error) {}

// An observer is told of each call once it has ended, with its figures
// (sizes, duration, route, outcome): the way to count calls, which costs
// less than an interceptor.
func ExampleNode_Observe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, client, closeAll, err := greeterNodes(ctx, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()
	counter := &callCounter{calls: map[string]int{}}
	client.Observe(counter)

	g := greeter.NewGreeterProxy(client, server.ID())
	g.Hello(ctx, "world")
	g.Hello(ctx, "again")
	g.Hello(ctx, "")
	counter.mu.Lock()
	defer counter.mu.Unlock()
	fmt.Println(counter.calls)
	// Output:
	// map[Hello application:1 Hello ok:2]
}

type requestIDKey struct{}

// requestIDs is a CallStarter that gives every call a request ID, in its
// metadata and in the context of its implementation, and logs the calls
// that fail.
type requestIDs struct {
	mu   sync.Mutex
	next int
}

func (r *requestIDs) StartCall(ctx context.Context, call *runtime.OutgoingCall) (context.Context, bool) {
	r.mu.Lock()
	r.next++
	id := fmt.Sprintf("r-%d", r.next)
	r.mu.Unlock()
	call.Metadata.Set("request-id", id)
	return ctx, true // told of the end of every call made
}

func (r *requestIDs) StartServing(ctx context.Context, call *runtime.IncomingCall) (context.Context, bool) {
	id, ok := call.Metadata.Get("request-id")
	if !ok {
		return ctx, false // nothing to log at its end
	}
	return context.WithValue(ctx, requestIDKey{}, id), true
}

func (r *requestIDs) CallMade(ctx context.Context, call *runtime.OutgoingCall, err error) {
	if err != nil {
		id, _ := call.Metadata.Get("request-id")
		fmt.Printf("client: %s %s failed: %s\n", id, call.Method.Name, runtime.ErrorKind(err))
	}
}

func (r *requestIDs) CallServed(ctx context.Context, call *runtime.IncomingCall, err error) {
	fmt.Printf("server: %s %s served\n", ctx.Value(requestIDKey{}), call.Method.Name)
}

// A CallStarter is also told of each call as it starts: it may add
// metadata, give the call a context of its own and choose whether to be
// told of the call's end.
func ExampleCallStarter() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids := &requestIDs{}
	server, client, closeAll, err := greeterNodes(ctx, func(n *runtime.Node) error {
		n.Observe(ids)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeAll()
	g := greeter.NewGreeterProxy(client, server.ID())
	g.Hello(ctx, "world")
	g.Hello(ctx, "")
	// Output:
	// server: r-1 Hello served
	// server: r-2 Hello served
	// client: r-2 Hello failed: application
}

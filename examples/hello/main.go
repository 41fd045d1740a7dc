// Command hello runs two Trellis nodes in one process: one serves the
// Greeter service, the other calls it through the proxy that proxygen
// generated, over TCP on 127.0.0.1.
//
//	go run ./examples/hello
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/examples/hello/greeter"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime"
)

// server implements greeter.Greeter.
type server struct {
	name  string
	count atomic.Int64
}

func (s *server) Hello(ctx context.Context, name string) (greeter.Greeting, error) {
	if name == "" {
		return greeter.Greeting{}, greeter.ErrNoName
	}
	s.count.Add(1)
	return greeter.Greeting{Text: "Hello, " + name + "!", From: s.name, At: time.Now()}, nil
}

func (s *server) Count(ctx context.Context) (int, error) { return int(s.count.Load()), nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The serving node listens on a free port and registers the service.
	// The cluster key: only nodes that hold it connect to each other. Both
	// nodes live in this process; a real cluster shares its key as any
	// secret (see keyring.NewKey).
	ring, err := keyring.New(keyring.NewKey())
	if err != nil {
		return err
	}
	alice, err := runtime.NewNode(runtime.Config{Name: "alice", Addr: "127.0.0.1:0", Keyring: ring})
	if err != nil {
		return err
	}
	defer alice.Close(context.Background())
	if err := greeter.RegisterGreeter(alice, &server{name: "alice"}); err != nil {
		return err
	}
	if err := runtime.RegisterError(alice, "greeter.NoName", greeter.ErrNoName); err != nil {
		return err
	}

	// The calling node connects to it and gets a proxy: a greeter.Greeter.
	bob, err := runtime.NewNode(runtime.Config{Name: "bob", Keyring: ring})
	if err != nil {
		return err
	}
	defer bob.Close(context.Background())
	if err := runtime.RegisterError(bob, "greeter.NoName", greeter.ErrNoName); err != nil {
		return err
	}
	aliceID, err := bob.Connect(ctx, alice.Addr().String())
	if err != nil {
		return err
	}
	var g greeter.Greeter = greeter.NewGreeterProxy(bob, aliceID)
	fmt.Printf("bob connected to alice (%s) at %s\n", aliceID, alice.Addr())

	for _, name := range []string{"Ada", "Grace", "Edsger"} {
		greeting, err := g.Hello(ctx, name)
		if err != nil {
			return err
		}
		fmt.Printf("bob: Hello(%q) = %q from %s\n", name, greeting.Text, greeting.From)
	}
	n, err := g.Count(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("bob: Count() = %d\n", n)

	// Errors keep their identity across the wire.
	_, err = g.Hello(ctx, "")
	fmt.Printf("bob: Hello(\"\") failed: %v (errors.Is ErrNoName: %v)\n", err, errors.Is(err, greeter.ErrNoName))
	if !errors.Is(err, greeter.ErrNoName) {
		return fmt.Errorf("expected ErrNoName, got %v", err)
	}

	// A deadline travels with the call.
	short, cancelShort := context.WithTimeout(ctx, time.Nanosecond)
	defer cancelShort()
	_, err = g.Hello(short, "late")
	fmt.Printf("bob: Hello with an expired deadline: %v (errors.Is runtime.ErrDeadlineExceeded: %v)\n", err, errors.Is(err, runtime.ErrDeadlineExceeded))
	return nil
}

// Command callback runs a remote subscription between two Trellis nodes in
// one process, over TCP on 127.0.0.1.
//
// Node bob passes a local Subscriber to Feed.Subscribe on node alice. The
// Subscriber is a service interface, so it crosses by reference: alice keeps
// a proxy of it and later calls it back for every event she publishes,
// while the object itself never leaves bob. When bob unsubscribes, alice
// releases her proxy with runtime.Release, and both nodes' reference tables
// go back to zero.
//
//	go run ./examples/callback
package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/trellisrpc/trellis/examples/callback/feed"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/runtimetest"
)

// printer is bob's feed.Subscriber: it prints the events it receives.
type printer struct {
	node     string
	received atomic.Int64
}

// Event implements feed.Subscriber. It runs on bob's node, called by alice.
func (p *printer) Event(ctx context.Context, e feed.Event) error {
	p.received.Add(1)
	fmt.Printf("  %s: received %s #%d: %q\n", p.node, e.Topic, e.Seq, e.Text)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "callback:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// alice serves the feed.
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
	hub := feed.NewHub()
	if err := feed.RegisterFeed(alice, hub); err != nil {
		return err
	}

	// bob connects to alice and gets a proxy of her feed.
	bob, err := runtime.NewNode(runtime.Config{Name: "bob", Keyring: ring})
	if err != nil {
		return err
	}
	defer bob.Close(context.Background())
	aliceID, err := bob.Connect(ctx, alice.Addr().String())
	if err != nil {
		return err
	}
	var f feed.Feed = feed.NewFeedProxy(bob, aliceID)
	fmt.Printf("bob connected to alice (%s) at %s\n", aliceID, alice.Addr())
	stats := func(when string) {
		fmt.Printf("%s:\n  alice %+v\n  bob   %+v\n", when, alice.RefStats(), bob.RefStats())
	}

	// bob subscribes one local object to two topics. Each call passes it by
	// reference: bob exports it (once, counting both references sent to
	// alice) and alice imports it (two proxies of one object).
	sub := &printer{node: "bob"}
	for _, topic := range []string{"weather", "traffic"} {
		if err := f.Subscribe(ctx, topic, sub); err != nil {
			return err
		}
		fmt.Printf("bob: Subscribe(%q, sub)\n", topic)
	}
	stats("references while subscribed")

	// alice publishes; each delivery is a call from alice back to bob.
	publish := func(topic, text string) error {
		n, err := hub.Publish(ctx, topic, text)
		if err != nil {
			return err
		}
		fmt.Printf("alice: Publish(%q, %q) reached %d subscriber(s)\n", topic, text, n)
		return nil
	}
	events := []struct{ topic, text string }{
		{"weather", "sunny, 21°C"},
		{"traffic", "ring road clear"},
		{"sports", "nobody listens to this one"},
		{"weather", "showers after 5 pm"},
	}
	for _, e := range events {
		if err := publish(e.topic, e.text); err != nil {
			return err
		}
	}

	// Unsubscribing from one topic releases one of alice's two proxies; the
	// object stays exported for the other.
	if err := f.Unsubscribe(ctx, "weather"); err != nil {
		return err
	}
	fmt.Println("bob: Unsubscribe(\"weather\")")
	if err := publish("weather", "nobody hears this"); err != nil {
		return err
	}
	if err := publish("traffic", "jam on the bridge"); err != nil {
		return err
	}
	stats("references after one Unsubscribe")

	// The last Unsubscribe releases alice's last proxy: she sends a release
	// to bob, who drops the export. Wait (bounded) for both tables to empty.
	if err := f.Unsubscribe(ctx, "traffic"); err != nil {
		return err
	}
	fmt.Println("bob: Unsubscribe(\"traffic\")")
	start := time.Now()
	if err := runtimetest.WaitNoLeaks(2*time.Second, alice, bob); err != nil {
		return err
	}
	stats(fmt.Sprintf("references after the last Unsubscribe (empty within %v)", time.Since(start).Round(time.Millisecond)))
	fmt.Printf("bob received %d events; nothing leaked\n", sub.received.Load())
	return nil
}

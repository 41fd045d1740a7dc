// Command faultnode runs one cluster member for the fault-injection scripts
// (scripts/converge-netns.sh): it serves the test Kitchen service and
// prints, one per line and stamped with the Unix time in milliseconds,
// what the scripts assert on:
//
//	<ms> READY <name> rpc=<addr>
//	<ms> TOPOLOGY <name> epoch=<n> members=<n> edges=<n> leader=<name> <diagram>
//	<ms> VERDICT <name> failed=<member>
//	<ms> CALL <name> -> <target> ok|failed after=<ms> started=<ms> err=<error>
//
// With -hold TARGET, a SIGUSR1 makes it keep -inflight calls to TARGET in
// flight at all times (each blocks on TARGET until it fails or a 30 s
// deadline passes) and log each one's end; the next SIGUSR1 stops them.
// With -ping TARGET it calls TARGET every 50 ms.
// It runs until killed or interrupted.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/internal/testsvc"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

func main() {
	var (
		name     = flag.String("name", "", "member name (required)")
		addr     = flag.String("addr", "127.0.0.1:0", "RPC listen address")
		gossip   = flag.String("gossip", "127.0.0.1:0", "membership UDP bind address")
		seeds    = flag.String("seed", "", "membership seed addresses, comma-separated")
		key      = flag.String("key", "faultnode-cluster-key-0123456789abcdef", "cluster key (at least 32 bytes)")
		hold     = flag.String("hold", "", "keep calls in flight to this member")
		inflight = flag.Int("inflight", 4, "calls kept in flight with -hold")
		ping     = flag.String("ping", "", "call this member every 50 ms")
		verbose  = flag.Bool("v", false, "log what the node does")
	)
	flag.Parse()
	if *name == "" {
		fmt.Fprintln(os.Stderr, "faultnode: -name is required")
		os.Exit(2)
	}
	if err := run(*name, *addr, *gossip, *seeds, *key, *hold, *inflight, *ping, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "faultnode:", err)
		os.Exit(1)
	}
}

// out prints stamped lines; it is safe for concurrent use.
type out struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (o *out) say(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "%d "+format+"\n", append([]any{time.Now().UnixMilli()}, args...)...)
	o.w.Flush()
}

func run(name, addr, gossip, seeds, key, hold string, inflight int, ping string, verbose bool) error {
	level := slog.LevelError
	if verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	o := &out{w: bufio.NewWriter(os.Stdout)}

	ring, err := keyring.New([]byte(key)) // one ring for the RPC handshakes and the heartbeats
	if err != nil {
		return err
	}
	node, err := runtime.NewNode(runtime.Config{Name: name, Addr: addr, Keyring: ring, Logger: logger})
	if err != nil {
		return err
	}
	defer node.Close(context.Background())
	if err := testsvc.RegisterKitchen(node, testsvc.NewImpl()); err != nil {
		return err
	}
	disc, err := membership.New(membership.Config{
		ID: node.ID(), Name: name, Addr: node.Addr().String(),
		Keyring: ring, ClusterLabel: "faultnode",
		DisableMulticast: true, BindAddr: gossip, Seeds: strings.Split(seeds, ","),
		Logger: logger,
	})
	if err != nil {
		return err
	}
	sub := disc.Subscribe(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = disc.Start(ctx)
	cancel()
	if err != nil {
		return err
	}
	defer disc.Close()
	cl, err := cluster.New(cluster.Config{Node: node, Discovery: disc, Logger: logger})
	if err != nil {
		return err
	}
	if err := cl.Start(); err != nil {
		return err
	}
	defer cl.Close()
	o.say("READY %s rpc=%s", name, node.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		for {
			e, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if e.Kind == membership.Failed {
				o.say("VERDICT %s failed=%s", name, e.Member.Name)
			}
		}
	}()
	target := func(want string) (runtime.NodeID, bool) {
		for _, m := range disc.Members() {
			if m.Name == want {
				return m.ID, true
			}
		}
		return 0, false
	}
	// SIGUSR1 starts the calls held in flight, the next one stops them.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	holdCalls := func(ctx context.Context) {
		for range inflight {
			go func() {
				for ctx.Err() == nil {
					id, ok := target(hold)
					if !ok {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					start := time.Now()
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					err := testsvc.NewKitchenProxy(node, id).Block(cctx, fmt.Sprintf("%s-%d", name, start.UnixNano()))
					cancel()
					if ctx.Err() != nil {
						return
					}
					o.say("CALL %s -> %s failed after=%d started=%d err=%v", name, hold, time.Since(start).Milliseconds(), start.UnixMilli(), err)
					time.Sleep(50 * time.Millisecond)
				}
			}()
		}
	}
	if hold != "" {
		go func() {
			var stopHolds context.CancelFunc
			for {
				select {
				case <-ctx.Done():
					if stopHolds != nil {
						stopHolds()
					}
					return
				case <-usr1:
				}
				if stopHolds != nil {
					stopHolds()
					stopHolds = nil
					o.say("HOLD %s stopped", name)
					continue
				}
				var hctx context.Context
				hctx, stopHolds = context.WithCancel(ctx)
				holdCalls(hctx)
				o.say("HOLD %s started", name)
			}
		}()
	}
	if ping != "" {
		go func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				id, ok := target(ping)
				if !ok {
					continue
				}
				start := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, _, err := testsvc.NewKitchenProxy(node, id).Echo(cctx, "ping", 1)
				cancel()
				if err != nil {
					o.say("CALL %s -> %s failed after=%d started=%d err=%v", name, ping, time.Since(start).Milliseconds(), start.UnixMilli(), err)
				}
			}
		}()
	}
	var epoch uint64
	for {
		t, err := cl.Wait(ctx, func(t topology.Topology) bool { return t.Epoch > epoch })
		if err != nil {
			return nil
		}
		epoch = t.Epoch
		o.say("TOPOLOGY %s epoch=%d members=%d edges=%d leader=%s %s", name, t.Epoch, len(t.Members), len(t.Edges), t.Members[0].Name, strings.ReplaceAll(topology.Diagram(t), "\n", "; "))
	}
}

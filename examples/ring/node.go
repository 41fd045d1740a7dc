package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/cluster/status"
	"github.com/trellisrpc/trellis/examples/ring/ringsvc"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/membership/memberlist"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

// nodeFlags configure one node.
type nodeFlags struct {
	name     string
	addr     string // RPC listen address
	gossip   string // membership UDP bind address
	seed     string // membership seed address
	strategy string
	backend  string // "builtin" or "memberlist"
	status   string // address of the status page ("" for none)
	key      string
	verbose  bool
}

// where implements ringsvc.Where.
type where struct{ name string }

func (w where) Where(ctx context.Context, from string) (ringsvc.Answer, error) {
	info, _ := runtime.CallInfoFrom(ctx)
	return ringsvc.Answer{Node: w.name, Hops: info.Hops}, nil
}

// runNode runs one cluster node until it is told to quit (a "quit" line on
// stdin, stdin closing when -control is set, or SIGINT/SIGTERM). It prints a
// line per committed topology, and answers "call NAME" lines on stdin with a
// routed call to that node.
func runNode(f nodeFlags, control bool) error {
	strategy, err := topology.StrategyByName(f.strategy)
	if err != nil {
		return err
	}
	level := slog.LevelError
	if f.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := cluster.Join(startCtx, cluster.Options{
		Name: f.name, Addr: f.addr, Key: []byte(f.key), Label: "ring-example",
		// Unicast on loopback: multicast must not leave the machine.
		GossipAddr: f.gossip, Seeds: strings.Split(f.seed, ","),
		Strategy: strategy, Logger: logger, Discovery: discovery(f.backend),
	})
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c.Leave(ctx)
	}()
	if err := ringsvc.RegisterWhere(c.Node(), where{f.name}); err != nil {
		return err
	}

	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	if f.status != "" {
		url, stopStatus, err := serveStatus(c, f.status, logger)
		if err != nil {
			return err
		}
		defer stopStatus()
		say("STATUS %s %s", f.name, url)
	}
	say("READY %s rpc=%s id=%s", f.name, c.Node().Addr(), c.ID())

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	changes := c.Subscribe(0)
	defer changes.Close()
	topologies := make(chan topology.Topology)
	go func() {
		for {
			ch, err := changes.Next(ctx)
			if err != nil {
				return
			}
			select {
			case topologies <- ch.Topology:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-topologies:
			say("TOPOLOGY %s epoch=%d members=%d leader=%s %s", f.name, t.Epoch, len(t.Members), t.Members[0].Name, strings.ReplaceAll(topology.Diagram(t), "\n", "; "))
		case line, ok := <-lines:
			if !ok {
				if control {
					return nil // the orchestrator is gone
				}
				lines = nil
				continue
			}
			cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch cmd {
			case "quit":
				return nil
			case "call":
				say("%s", call(ctx, c, f.name, arg))
			case "":
			default:
				say("ERROR unknown command %q (try: call NAME, quit)", cmd)
			}
		}
	}
}

// serveStatus serves the status page of c on addr, and returns its URL and
// a function that stops serving.
func serveStatus(c *cluster.Cluster, addr string, logger *slog.Logger) (url string, stop func(), err error) {
	st, err := status.ForCluster(c)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("status page: %w", err)
	}
	srv := &http.Server{Handler: st, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	return "http://" + ln.Addr().String() + "/", func() {
		srv.Close()
		<-done
	}, nil
}

// call makes a routed call to the node named name and describes the route.
func call(ctx context.Context, cl *cluster.Cluster, self, name string) string {
	t := cl.Topology()
	var target topology.Member
	for _, m := range t.Members {
		if m.Name == name {
			target = m
		}
	}
	if target.ID == nodeid.None {
		return fmt.Sprintf("CALL %s -> %s: no such member in epoch %d", self, name, t.Epoch)
	}
	var hops []string
	for _, id := range cl.Route(target.ID) {
		m, _ := t.Lookup(id)
		hops = append(hops, m.Name)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	proxy := ringsvc.NewWhereProxy(cl.Node(), target.ID)
	start := time.Now()
	ans, err := proxy.Where(cctx, self)
	for runtime.NotSent(err) && cctx.Err() == nil {
		// Not sent (the edges of a topology just committed are still being
		// connected): safe to try again.
		time.Sleep(20 * time.Millisecond)
		start = time.Now()
		ans, err = proxy.Where(cctx, self)
	}
	if err != nil {
		return fmt.Sprintf("CALL %s -> %s failed: %v", self, name, err)
	}
	return fmt.Sprintf("CALL %s -> %s answered by %s after %d hop(s) in %v, route %s",
		self, name, ans.Node, ans.Hops, time.Since(start).Round(time.Microsecond), strings.Join(hops, " -> "))
}

// discovery returns the membership backend the -membership flag names: nil
// for the built-in one (on unicast seeds), or memberlist with the Local
// preset (probes every second) and a rejoin every second, so that a healed
// partition merges quickly.
func discovery(backend string) func(membership.Config) (membership.Discovery, error) {
	if backend != "memberlist" {
		return nil
	}
	return memberlist.Backend(memberlist.Config{Preset: memberlist.Local, RejoinInterval: time.Second})
}

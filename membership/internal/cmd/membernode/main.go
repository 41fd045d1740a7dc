// Command membernode runs one membership node and prints every event it sees, one
// line each, with a timestamp. The test scripts (scripts/membership-*.sh) use it.
//
// Output lines (space separated):
//
//	<unix-ns> <time> <self> <Event> <member> <member-id> <incarnation> [extra]
//	<unix-ns> <time> <self> STATS key=value...   (at exit)
//
// SIGINT/SIGTERM make the node leave gracefully; SIGKILL is a crash.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "membernode:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("membernode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "node", "node name")
	idStr := fs.String("id", "", "node ID in hex (default random)")
	inc := fs.Uint64("inc", 0, "incarnation (default: start time in ns)")
	key := fs.String("key", "trellis-membership-test-key-0001", "cluster key (hex: prefix or plain text)")
	label := fs.String("label", membership.DefaultClusterLabel, "cluster label")
	group := fs.String("group", fmt.Sprintf("%s:%d", membership.DefaultGroup, membership.DefaultPort), "multicast group ip:port")
	iface := fs.String("iface", "", "multicast interface")
	noMcast := fs.Bool("no-multicast", false, "unicast seeds only")
	bind := fs.String("bind", "", "unicast bind address")
	seeds := fs.String("seeds", "", "comma-separated seed addresses")
	addr := fs.String("addr", "", "RPC address to advertise")
	interval := fs.Duration("interval", 0, "heartbeat interval (default 200ms)")
	duration := fs.Duration("duration", 0, "leave after this long (0: run until signalled)")
	verbose := fs.Bool("v", false, "log diagnostics to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := membership.Config{
		Name: *name, Addr: *addr, Incarnation: *inc, ClusterLabel: *label,
		Interface: *iface, DisableMulticast: *noMcast, BindAddr: *bind, Interval: *interval,
	}
	if *idStr != "" {
		id, err := nodeid.Parse(*idStr)
		if err != nil {
			return err
		}
		cfg.ID = id
	}
	k := []byte(*key)
	if h, ok := strings.CutPrefix(*key, "hex:"); ok {
		var err error
		if k, err = hex.DecodeString(h); err != nil {
			return fmt.Errorf("key: %w", err)
		}
	}
	cfg.Keys = [][]byte{k}
	g, err := netip.ParseAddrPort(*group)
	if err != nil {
		return fmt.Errorf("group: %w", err)
	}
	cfg.Group = g
	if *seeds != "" {
		cfg.Seeds = strings.Split(*seeds, ",")
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	node, err := membership.New(cfg)
	if err != nil {
		return err
	}
	sub := node.Subscribe(0)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := node.Start(ctx); err != nil {
		return err
	}
	self := node.Local()
	line := func(format string, a ...any) {
		now := time.Now()
		fmt.Fprintf(stdout, "%d %s %s "+format+"\n",
			append([]any{now.UnixNano(), now.Format("15:04:05.000"), *name}, a...)...)
	}
	line("START - %s %d", self.ID, self.Incarnation)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := sub.Next(context.Background())
			if err != nil {
				return
			}
			m := ev.Member
			extra := ""
			if ev.Kind == membership.LeaderChanged {
				extra = " previous=" + ev.Previous.String()
			}
			if ev.Missed > 0 {
				extra += fmt.Sprintf(" missed=%d", ev.Missed)
			}
			line("%s %s %s %d state=%s%s", ev.Kind, nameOr(m.Name), m.ID, m.Incarnation, m.State, extra)
		}
	}()
	<-ctx.Done()
	lctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = node.Leave(lctx)
	<-done
	s := node.Stats()
	line("STATS - - - sent=%d bytes_sent=%d received=%d bytes_received=%d malformed=%d foreign=%d forged=%d replayed=%d implausible=%d ignored=%d suspicions=%d failures=%d refutations=%d stalls=%d impersonations=%d conflicts=%d",
		s.PacketsSent, s.BytesSent, s.PacketsReceived, s.BytesReceived, s.Malformed, s.ForeignCluster,
		s.Forged, s.Replayed, s.Implausible, s.Ignored, s.Suspicions, s.Failures, s.Refutations, s.Stalls,
		s.Impersonations, s.Conflicts)
	return err
}

func nameOr(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trellisrpc/trellis/cluster/status"
)

const usage = `usage:
  trellis status URL                 print the members, leader, epoch and topology
  trellis watch [-interval 1s] URL   print them again whenever they change

URL is a node's status page (http://host:port/ or host:port).
`

// run runs the command with args and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("trellis "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	interval := fs.Duration("interval", time.Second, "how often watch polls the node")
	timeout := fs.Duration("timeout", 5*time.Second, "how long one request to the node may take")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	src, err := statusURL(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "trellis: %v\n", err)
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	switch args[0] {
	case "status":
		s, err := fetch(ctx, client, src)
		if err != nil {
			fmt.Fprintf(stderr, "trellis: %v\n", err)
			return 1
		}
		printStatus(stdout, s)
		return 0
	case "watch":
		if *interval <= 0 {
			fmt.Fprintln(stderr, "trellis: -interval must be positive")
			return 2
		}
		if err := watch(ctx, client, src, *interval, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "trellis: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "trellis: unknown command %q\n%s", args[0], usage)
	return 2
}

// statusURL turns what the user typed into the URL of status.json.
func statusURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a node's status address (want http://host:port/ or host:port)", s)
	}
	if !strings.HasSuffix(u.Path, "/status.json") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/status.json"
	}
	return u.String(), nil
}

// fetch reads a node's status.
func fetch(ctx context.Context, c *http.Client, src string) (status.Snapshot, error) {
	var s status.Snapshot
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return s, err
	}
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		return s, fmt.Errorf("node unreachable at %s: %v (is the node running with its status page, and is the address right?)", src, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s answered %s: not a Trellis status page?", src, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return s, fmt.Errorf("reading %s: %w", src, err)
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("%s is not a Trellis status: %v", src, err)
	}
	return s, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// names maps member ids to names.
func names(s status.Snapshot) map[string]string {
	m := make(map[string]string, len(s.Members))
	for _, mb := range s.Members {
		m[mb.ID] = mb.Name
	}
	return m
}

func printStatus(w io.Writer, s status.Snapshot) {
	nm := names(s)
	leader := nm[s.Leader]
	if leader == "" {
		leader = "none"
	}
	ready := "ready"
	if !s.Ready {
		ready = "not ready: " + s.NotReady
	}
	fmt.Fprintf(w, "node %s (%s) · leader %s · epoch %d", s.Name, s.Node, leader, s.Epoch)
	if s.Strategy != "" {
		fmt.Fprintf(w, " (%s)", s.Strategy)
	}
	fmt.Fprintf(w, " · %s\n\n", ready)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tID\tSTATE\tINCARNATION\tADDRESS\t")
	for _, m := range s.Members {
		name := m.Name
		if m.Leader {
			name += " *"
		}
		if m.Self {
			name += " (this node)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t\n", name, m.ID, m.State, m.Incarnation, m.Addr)
	}
	tw.Flush()
	edges := "edges"
	if len(s.Edges) == 1 {
		edges = "edge"
	}
	fmt.Fprintf(w, "\ntopology, epoch %d: %d %s\n", s.Epoch, len(s.Edges), edges)
	for _, e := range edgeLines(s) {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// edgeLines describes the edges by member names, sorted.
func edgeLines(s status.Snapshot) []string {
	nm := names(s)
	lines := make([]string, 0, len(s.Edges))
	for _, e := range s.Edges {
		a, b := nm[e.A], nm[e.B]
		if b < a {
			a, b = b, a
		}
		lines = append(lines, fmt.Sprintf("%s -- %s  (%s)", a, b, e.State))
	}
	slices.Sort(lines)
	return lines
}

// view is what watch compares between two polls.
func view(s status.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "leader=%s epoch=%d ready=%v", names(s)[s.Leader], s.Epoch, s.Ready)
	for _, m := range s.Members {
		fmt.Fprintf(&b, " %s:%s:%d", m.Name, m.State, m.Incarnation)
	}
	for _, e := range edgeLines(s) {
		b.WriteString(" " + e)
	}
	return b.String()
}

// watch prints the status, then again each time it changes, until ctx
// ends; it tells when the node becomes unreachable and when it is back.
func watch(ctx context.Context, c *http.Client, src string, every time.Duration, stdout, stderr io.Writer) error {
	last, reachable := "", true
	t := time.NewTicker(every)
	defer t.Stop()
	for first := true; ; first = false {
		s, err := fetch(ctx, c, src)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && first:
			return err
		case err != nil:
			if reachable {
				fmt.Fprintf(stderr, "%s  %v\n", time.Now().Format(time.TimeOnly), err)
				reachable = false
			}
		default:
			if !reachable {
				fmt.Fprintf(stderr, "%s  node reachable again\n", time.Now().Format(time.TimeOnly))
				reachable = true
			}
			if v := view(s); v != last {
				if !first {
					fmt.Fprintln(stdout)
				}
				fmt.Fprintf(stdout, "== %s\n", time.Now().Format(time.TimeOnly))
				printStatus(stdout, s)
				last = v
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Command trellis is the operator's tool for a running Trellis cluster. It
// reads a node's status endpoint (package cluster/status, served for
// example by `go run ./examples/ring -status ADDR`).
//
// Usage:
//
//	trellis status URL            print the members, the leader, the epoch and the topology
//	trellis watch [-interval d] URL   print them again whenever they change
//
// URL is the status page's address (http://127.0.0.1:8080/, or just
// 127.0.0.1:8080); the command reads its status.json.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

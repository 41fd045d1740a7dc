// Command sessions runs a farm of four web servers on 127.0.0.1, joined in
// a ring, whose HTTP sessions are replicated to each server's two
// neighbours. It visits a page as a browser would, kills the server that
// owns the session with SIGKILL, keeps clicking on the others, stops
// another one gracefully, and shows that the session's counter never lost
// an increment.
//
//	go run ./examples/sessions          # the scenario
//	go run ./examples/sessions -serve   # keep the farm running; open the URLs it prints
//	go run ./examples/sessions -serve -status 127.0.0.1:0   # each server also serves the cluster's status page
//
// The same binary runs one server (-node), which is what the scenario starts.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	var f serverFlags
	var serve bool
	flag.StringVar(&f.name, "node", "", "run one server with this name (default: run the scenario)")
	flag.StringVar(&f.http, "http", "127.0.0.1:0", "HTTP listen address of the server")
	flag.StringVar(&f.gossip, "gossip", "127.0.0.1:0", "membership UDP address of the server")
	flag.StringVar(&f.seeds, "seeds", "", "membership seed addresses, comma-separated")
	flag.StringVar(&f.key, "key", "sessions-example-cluster-key-0123456789", "cluster key (at least 32 bytes)")
	flag.BoolVar(&f.verbose, "v", false, "log what the server does")
	flag.StringVar(&f.status, "status", "", "serve the cluster's status page on this address (with -serve: each server on a free port)")
	flag.BoolVar(&serve, "serve", false, "start the farm and keep it running until interrupted")
	flag.IntVar(&f.servers, "servers", 4, "servers in the farm (scenario)")
	flag.Parse()

	var err error
	if f.name != "" {
		err = runServer(f)
	} else {
		err = runScenario(f, serve)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessions:", strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
}

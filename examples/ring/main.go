// Command ring reproduces Trellis's reference scenario with four real
// processes on 127.0.0.1: LeaderNode starts alone; Node1, Node2 and Node3
// join one by one and are inserted into the ring; a call crosses two hops;
// Node2 is killed and the ring heals around it.
//
//	go run ./examples/ring                   # the whole scenario
//	go run ./examples/ring -topology star    # the same with another strategy
//	go run ./examples/ring -status 127.0.0.1:8080 -hold
//	                                         # LeaderNode serves the cluster's status page
//	                                         # on :8080 (the others on free ports), kept up
//	                                         # after the scenario until interrupted
//
// The same binary runs a single node, so the scenario can be played by hand
// in four terminals:
//
//	go run ./examples/ring -node LeaderNode -gossip 127.0.0.1:17946
//	go run ./examples/ring -node Node1      # then Node2, Node3; type "call Node2"
//
// With -status ADDR a node serves its cluster's status page (package
// cluster/status: members, leader, epoch, the topology drawn, calls; JSON at
// /status.json, /healthz, /readyz) on ADDR and prints its URL.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/trellisrpc/trellis/topology"
)

const defaultSeed = "127.0.0.1:17946"

func main() {
	var f nodeFlags
	var control, hold bool
	flag.StringVar(&f.name, "node", "", "run one node with this name (default: run the whole scenario)")
	flag.StringVar(&f.addr, "addr", "127.0.0.1:0", "RPC listen address of the node")
	flag.StringVar(&f.gossip, "gossip", "127.0.0.1:0", "membership UDP address of the node (the first node: the seed address)")
	flag.StringVar(&f.seed, "seed", defaultSeed, "membership seed addresses, comma-separated")
	flag.StringVar(&f.strategy, "topology", "ring", "topology strategy: "+strings.Join(topology.StrategyNames(), ", "))
	flag.StringVar(&f.key, "key", "ring-example-cluster-key-0123456789", "cluster key (at least 32 bytes)")
	flag.StringVar(&f.backend, "membership", "builtin", "membership backend of a node: builtin (heartbeats) or memberlist (hashicorp/memberlist, -gossip is then its UDP and TCP address)")
	flag.StringVar(&f.status, "status", "", "serve the cluster's status page on this `address` and print its URL (the scenario: LeaderNode on it, the other nodes on free ports of its host)")
	flag.BoolVar(&hold, "hold", false, "after the scenario, keep the nodes up (to look at their status pages) until interrupted")
	flag.BoolVar(&f.verbose, "v", false, "log what the node does")
	flag.BoolVar(&control, "control", false, "run under the scenario driver (exit when stdin closes)")
	flag.Parse()

	var err error
	if f.name != "" {
		err = runNode(f, control)
	} else {
		err = runScenario(f, hold)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ring:", err)
		os.Exit(1)
	}
}

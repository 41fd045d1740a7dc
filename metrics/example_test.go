package metrics_test

import (
	"context"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/metrics"
	"github.com/trellisrpc/trellis/runtime"
)

// Serve a node's metrics on /metrics.
func ExampleNew() {
	ring, err := keyring.New(keyring.NewKey()) // in a real cluster: the key every member holds
	if err != nil {
		log.Fatal(err)
	}
	node, err := runtime.NewNode(runtime.Config{Name: "node1", Keyring: ring})
	if err != nil {
		log.Fatal(err)
	}
	col, err := metrics.New(metrics.Config{Node: node}) // add Membership and Cluster when the node has them
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// Serve the metrics of a member that joined its cluster: its calls, its
// membership and its topology.
func ExampleForCluster() {
	ctx := context.Background()
	c, err := cluster.Join(ctx, cluster.Options{Name: "node1", Key: keyring.NewKey()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Leave(ctx)
	col, err := metrics.New(metrics.ForCluster(c))
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

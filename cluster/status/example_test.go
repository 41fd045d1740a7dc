package status_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/cluster/status"
	"github.com/trellisrpc/trellis/topology"
)

// A member joined with cluster.Join serves its cluster's status page; here
// it is alone, on loopback, and its readiness is read once it has committed
// its first topology.
func ExampleForCluster() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cluster.Join(ctx, cluster.Options{
		Name: "solo", Addr: "127.0.0.1:0", Key: []byte("an-example-cluster-key-0123456789"),
		GossipAddr: "127.0.0.1:0", Seeds: []string{"127.0.0.1:1"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Wait(ctx, func(t topology.Topology) bool { return t.Epoch > 0 }); err != nil {
		log.Fatal(err)
	}

	st, err := status.ForCluster(c)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: st}
	go srv.Serve(ln)
	defer srv.Close()

	resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, ": ", string(body))
	// Output: 200 OK: ready
}

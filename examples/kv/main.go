// Command kv shards a key–value store by key over four processes joined
// with cluster.Join, and calls it through a by-key cluster proxy; then one
// process is killed (SIGKILL) and the example shows which keys moved, and
// that every call either succeeded or failed with a typed error, none
// retried unsafely.
//
//	go run ./examples/kv
//
// The same binary runs one store process (-node NAME), which the example
// starts four times.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/examples/kv/kvstore"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/topology"
)

const key = "kv-example-cluster-key-0123456789abcdef"

func main() {
	node := flag.String("node", "", "run one store process with this name")
	seed := flag.String("seed", "", "membership seed address (for -node)")
	keys := flag.Int("keys", 200, "number of keys")
	flag.Parse()
	var err error
	if *node != "" {
		err = serve(*node, *seed)
	} else {
		err = demo(*keys)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kv:", err)
		os.Exit(1)
	}
}

// join joins the example's cluster on loopback.
func join(ctx context.Context, name, gossip, seed string) (*cluster.Cluster, error) {
	c, err := cluster.Join(ctx, cluster.Options{
		Name: name, Addr: "127.0.0.1:0", Key: []byte(key), Label: "kv-example",
		GossipAddr: gossip, Seeds: []string{seed},
	})
	if err != nil {
		return nil, err
	}
	if err := runtime.RegisterError(c.Node(), "kvstore.ErrNotFound", kvstore.ErrNotFound); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// serve runs one store process until stdin closes or a signal comes.
func serve(name, seed string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := join(ctx, name, "127.0.0.1:0", seed)
	if err != nil {
		return err
	}
	defer func() {
		lctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c.Leave(lctx)
	}()
	if err := kvstore.RegisterStore(c.Node(), &kvstore.Memory{Node: name}); err != nil {
		return err
	}
	fmt.Println("READY", name)
	eof := make(chan struct{})
	go func() {
		bufio.NewScanner(os.Stdin).Scan() // returns when stdin closes
		close(eof)
	}()
	select {
	case <-ctx.Done():
	case <-eof:
	}
	return nil
}

// demo starts four store processes and plays the scenario.
func demo(nkeys int) error {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	seed := pc.LocalAddr().String()
	pc.Close()
	ctx := context.Background()
	client, err := join(ctx, "client", seed, seed)
	if err != nil {
		return err
	}
	defer client.Close()

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	names := []string{"kv1", "kv2", "kv3", "kv4"}
	procs := map[string]*exec.Cmd{}
	var stdins []io.Closer
	defer func() {
		for _, in := range stdins {
			in.Close() // a store process exits when its stdin closes
		}
		for _, cmd := range procs {
			cmd.Wait()
		}
	}()
	for _, n := range names {
		cmd := exec.Command(exe, "-node", n, "-seed", seed)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		stdins = append(stdins, stdin)
		procs[n] = cmd
	}
	fmt.Println("1. four store processes join the cluster: kv1, kv2, kv3, kv4")
	if err := waitServing(client, len(names)); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, err = client.Wait(wctx, func(t topology.Topology) bool { return len(t.Members) == len(names)+1 })
	cancel()
	if err != nil {
		return err
	}

	store := kvstore.NewStoreClusterProxy(client, cluster.ByKey(nil))
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key%03d", i)
	}
	before := owners(client, keys)
	for _, k := range keys {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := store.Put(cctx, k, "v1")
		cancel()
		if err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
	}
	fmt.Printf("2. %d keys written through a by-key cluster proxy: %s\n", nkeys, counts(before))

	victim := "kv3"
	fmt.Printf("3. %s is killed (SIGKILL); every key is written again at once\n", victim)
	procs[victim].Process.Kill()
	tally := newTally()
	for _, k := range keys {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		tally.add(store.Put(cctx, k, "v2"))
		cancel()
	}
	fmt.Printf("   puts: %s\n", tally)

	if err := waitServing(client, len(names)-1); err != nil {
		return err
	}
	after := owners(client, keys)
	var moved []string
	for _, k := range keys {
		if before[k] != after[k] {
			moved = append(moved, k)
			if before[k] != victim {
				return fmt.Errorf("key %s moved from %s, which is alive", k, before[k])
			}
		}
	}
	fmt.Printf("4. the membership declares %s failed: %d keys moved, all of them %s's: %s\n", victim, len(moved), victim, counts(after))
	for i, k := range moved {
		if i == 8 {
			fmt.Printf("   ... and %d more\n", len(moved)-i)
			break
		}
		fmt.Printf("   %s: %s -> %s\n", k, before[k], after[k])
	}

	gets := newTally()
	for _, k := range keys {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := store.Get(cctx, k)
		cancel()
		gets.add(err)
	}
	fmt.Printf("5. every key read back: %s\n", gets)
	fmt.Println("   (a moved key is found if its second put reached its new owner, else it fails with kvstore.ErrNotFound;")
	fmt.Println("   a put that may have run on the dead process failed with a typed error and was not repeated)")
	if tally.other+gets.other > 0 {
		return errors.New("some calls failed with an untyped error")
	}
	return nil
}

// waitServing waits until c sees n members serve Store (and no more).
func waitServing(c *cluster.Cluster, n int) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := 0
		for _, m := range c.Members() {
			if m.Serves(kvstore.StoreService) {
				got++
			}
		}
		if got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d members serve Store after 20 s, want %d", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// owners returns the member each key goes to.
func owners(c *cluster.Cluster, keys []string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		m, _ := c.KeyOwner(kvstore.StoreService, k)
		out[k] = m.Name
	}
	return out
}

// counts describes how many keys each member owns.
func counts(owners map[string]string) string {
	n := map[string]int{}
	for _, o := range owners {
		n[o]++
	}
	var names []string
	for o := range n {
		names = append(names, o)
	}
	slices.Sort(names)
	s := ""
	for _, o := range names {
		s += fmt.Sprintf("%s %d  ", o, n[o])
	}
	return s
}

// tally counts the outcomes of calls by kind.
type tally struct {
	ok, notFound, notSent, mayHaveRun, other int
}

func newTally() *tally { return &tally{} }

func (t *tally) add(err error) {
	switch {
	case err == nil:
		t.ok++
	case errors.Is(err, kvstore.ErrNotFound):
		t.notFound++
	case runtime.NotSent(err), errors.Is(err, cluster.ErrNoMember):
		t.notSent++
	case errors.Is(err, runtime.ErrUnreachable), errors.Is(err, runtime.ErrShuttingDown), errors.Is(err, runtime.ErrDeadlineExceeded):
		t.mayHaveRun++
	default:
		fmt.Fprintln(os.Stderr, "untyped error:", err)
		t.other++
	}
}

func (t *tally) String() string {
	return fmt.Sprintf("%d ok, %d not found (kvstore.ErrNotFound), %d not sent after retries, %d failed after they may have run (not retried), %d other",
		t.ok, t.notFound, t.notSent, t.mayHaveRun, t.other)
}

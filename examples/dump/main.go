// Command dump runs two Trellis nodes in one process, over TCP on
// 127.0.0.1, and copies a node's state to the other as a stream.
//
// Node alice holds a key/value map of 50,000 entries (about 20 MB as
// lines). Node bob initialises his own map by calling Store.Dump on alice
// and reading the io.Reader it returns: the bytes are pulled lazily, with
// flow control, so alice never builds the dump in memory. bob prints his
// progress and compares checksums to show both states are equal. Then the
// other direction: bob calls Store.Load on alice with a local reader, which
// alice pulls from bob in the same way.
//
//	go run ./examples/dump
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/trellisrpc/trellis/examples/dump/kv"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime"
)

const (
	entries    = 50_000
	valueBytes = 200     // random bytes per value, written as 400 hex digits
	progressAt = 4 << 20 // print progress every 4 MiB
	mib        = 1 << 20
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dump:", err)
		os.Exit(1)
	}
}

// fill puts n pseudo-random entries, named prefix000000..., into m.
func fill(m *kv.Map, prefix string, n int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, valueBytes)
	for i := range n {
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		m.Put(fmt.Sprintf("%s%06d", prefix, i), hex.EncodeToString(b))
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// alice holds the state and serves it.
	// The cluster key: only nodes that hold it connect to each other. Both
	// nodes live in this process; a real cluster shares its key as any
	// secret (see keyring.NewKey).
	ring, err := keyring.New(keyring.NewKey())
	if err != nil {
		return err
	}
	alice, err := runtime.NewNode(runtime.Config{Name: "alice", Addr: "127.0.0.1:0", Keyring: ring})
	if err != nil {
		return err
	}
	defer alice.Close(context.Background())
	aliceState := kv.NewMap()
	fill(aliceState, "user/", entries, 1)
	if err := kv.RegisterStore(alice, aliceState); err != nil {
		return err
	}
	fmt.Printf("alice holds %d entries\n", aliceState.Len())

	// bob starts empty and connects to alice.
	bob, err := runtime.NewNode(runtime.Config{Name: "bob", Keyring: ring})
	if err != nil {
		return err
	}
	defer bob.Close(context.Background())
	aliceID, err := bob.Connect(ctx, alice.Addr().String())
	if err != nil {
		return err
	}
	var store kv.Store = kv.NewStoreProxy(bob, aliceID)
	fmt.Printf("bob connected to alice (%s) at %s\n", aliceID, alice.Addr())

	// Pull alice's dump. The call returns at once with a stream; the bytes
	// flow while bob reads, as fast as he parses them.
	bobState := kv.NewMap()
	start := time.Now()
	r, err := store.Dump(ctx)
	if err != nil {
		return err
	}
	if c, ok := r.(io.Closer); ok {
		defer c.Close() // were we to stop early, alice would stop sending
	}
	fmt.Println("bob: Dump() returned a stream; reading it")
	next := int64(progressAt)
	n, err := bobState.Restore(r, func(b, e int64) {
		if b >= next {
			fmt.Printf("  bob: %5.1f MiB, %6d entries\n", float64(b)/mib, e)
			next += progressAt
		}
	})
	if err != nil {
		return fmt.Errorf("reading the dump: %w", err)
	}
	elapsed := time.Since(start)
	mine := bobState.Summary()
	fmt.Printf("bob: read %d entries, %.1f MiB in %v (%.0f MiB/s)\n",
		n, float64(mine.Bytes)/mib, elapsed.Round(time.Millisecond), float64(mine.Bytes)/mib/elapsed.Seconds())

	// Compare the states: alice computes her summary, bob his.
	if err := compare(ctx, store, bobState); err != nil {
		return err
	}

	// The other direction: bob pushes changes to alice through a reader of
	// his own, which alice's Load pulls from bob as a stream. bob applies
	// the same changes locally, and the states are equal again.
	changes := kv.NewMap()
	fill(changes, "user/", 1000, 2)    // overwrite 1,000 entries
	fill(changes, "session/", 1000, 3) // and add 1,000 new ones
	var batch bytes.Buffer
	if _, err := changes.WriteTo(&batch); err != nil {
		return err
	}
	fmt.Printf("bob: Load(reader of %d entries, %.1f MiB) on alice\n", changes.Len(), float64(batch.Len())/mib)
	loaded, err := store.Load(ctx, bytes.NewReader(batch.Bytes()))
	if err != nil {
		return err
	}
	fmt.Printf("alice: loaded %d entries\n", loaded)
	if _, err := bobState.Restore(bytes.NewReader(batch.Bytes()), nil); err != nil {
		return err
	}
	if err := compare(ctx, store, bobState); err != nil {
		return err
	}

	aliceOut, aliceIn := alice.StreamStats()
	bobOut, bobIn := bob.StreamStats()
	fmt.Printf("streams left open: alice %d sending, %d receiving; bob %d sending, %d receiving\n",
		aliceOut, aliceIn, bobOut, bobIn)
	return nil
}

// compare asks the remote store for its summary and checks that the local
// state has the same one.
func compare(ctx context.Context, remote kv.Store, local *kv.Map) error {
	theirs, err := remote.Sum(ctx)
	if err != nil {
		return err
	}
	mine := local.Summary()
	fmt.Printf("  alice: %d entries, sha256 %s…\n  bob:   %d entries, sha256 %s…\n",
		theirs.Entries, theirs.SHA256[:16], mine.Entries, mine.SHA256[:16])
	if theirs != mine {
		return fmt.Errorf("the states differ: alice %+v, bob %+v", theirs, mine)
	}
	fmt.Println("  equal: bob's state is a copy of alice's")
	return nil
}

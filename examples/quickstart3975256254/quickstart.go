package quickstart

import (
	"context"
	"fmt"
	"log"

	"github.com/trellisrpc/trellis/cluster"
	kv "github.com/trellisrpc/trellis/examples/kv/kvstore"
)

func run(ctx context.Context, key []byte, seeds []string, myStore kv.Store) {
c, err := cluster.Join(ctx, cluster.Options{Name: "node1", Key: key, Seeds: seeds})
if err != nil {
	log.Fatal(err)
}
defer c.Leave(context.Background())                     // announce, drain, close
kv.RegisterStore(c.Node(), myStore)                     // serve Store; the members learn it
store := kv.NewStoreClusterProxy(c, cluster.ByKey(nil)) // a kv.Store over the members serving it
e, err := store.Get(ctx, "a")                           // sent to the member that owns "a"
fmt.Println(e, err)
}

// Package replica keeps small pieces of state — web sessions, carts, leases —
// replicated on the topology neighbours of the node that owns them, so that
// a server can be stopped or killed with nothing acknowledged lost.
//
// Every entry has an owner: the node that created it or last took it over.
// Writes are applied at the owner, one at a time per entry, each with a
// version one higher than the last, and acknowledged to the caller only once
// the owner's backups (its neighbours in the committed topology: both of
// them in a ring) hold the new version. Where the copies of an entry are is
// therefore derivable from the last committed topology; no directory is kept.
//
// Any node serves any entry. A node that is not the owner proxies the
// operation to the owner (ModeProxy, the default), or takes the entry over
// (ModeMigrate, for sticky load balancers that send a session's requests to
// one node). When a committed topology drops a member, the lowest-id
// surviving neighbour of that member collects the newest copy of each of its
// entries from the member's former neighbours, becomes their owner with a
// higher version, and replicates them to its own neighbours. A copy is only
// ever replaced by a higher version, so a stale copy never wins and a
// deleted entry does not come back (a deletion is a tombstone kept for
// Config.TombstoneTTL).
//
// An owner cut off from the cluster (a partition, a long pause) may have its
// entries taken over by the majority meanwhile. Its writes fail while it is
// cut off, since its backups do not answer. Once its membership sees less
// than a majority of its topology's members alive, it serves none of its
// entries (ErrMinority), reads included; between the cut and that moment
// (about one failure-detection time, during which the majority is detecting
// it too) it may still serve a read of a value that is about to be
// superseded. Once it is back and sees that it missed a committed topology,
// it checks each entry it owns against the other members' copies before
// serving it again, and yields it to the node that took it over. (The
// majority check needs a Cluster with a Discovery method, as
// *cluster.Cluster has.)
//
// On every committed topology change owners replicate their entries to their
// new neighbours and tell former backups to drop copies they no longer need.
// [Store.Leave] hands each entry to a neighbour before the node leaves, so a
// rolling restart loses nothing.
//
// Package replica/session builds net/http sessions on a Store.
package replica

package membership

import "context"

// Discovery is what the rest of Trellis uses from membership: a live member list,
// its leader and a stream of changes. *Node implements it over UDP multicast and
// unicast seeds; another backend (for instance one built on hashicorp/memberlist)
// can implement it, using EventHub for subscriptions, without touching callers.
//
// Contract for implementations: Members is ordered by join time then ID and holds
// only live members (the local node included); Leader is the first of them;
// LeaderChanged is published whenever that first member changes; Leave and Close
// stop every goroutine the backend started.
type Discovery interface {
	// Start joins the cluster. ctx bounds the start-up work only.
	Start(ctx context.Context) error
	// Local returns the local node's own entry.
	Local() Member
	// Members returns the live members, oldest first.
	Members() []Member
	// Leader returns the oldest live member; false if there is none.
	Leader() (Member, bool)
	// Subscribe returns a subscription to membership events.
	Subscribe(buffer int) *Subscription
	// Leave announces a graceful departure, then stops like Close.
	Leave(ctx context.Context) error
	// Close stops without announcing anything: the others will see a failure.
	Close() error
}

var _ Discovery = (*Node)(nil)

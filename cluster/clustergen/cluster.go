package clustergen

import (
	"context"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// A Cluster is a cluster whose members cluster proxies call: a
// *cluster.Cluster. Its method is unexported, so that only a type that
// embeds a Link implements it: package cluster's Cluster does, which keeps
// what generated code needs out of the cluster's exported API.
type Cluster interface {
	source() Source
}

// A Link connects a cluster to the cluster proxies made for it. Package
// cluster's Cluster embeds one, made by NewLink; the zero Link is not
// usable.
type Link struct {
	src Source
}

// NewLink returns the Link of a cluster that src describes.
func NewLink(src Source) Link { return Link{src: src} }

func (l *Link) source() Source { return l.src }

// A Source is a cluster as its proxies see it. Package cluster implements
// it; its methods are safe for concurrent use.
type Source interface {
	// Node returns this member's node, which calls the others.
	Node() *runtime.Node
	// Version returns a number that changes whenever Serving's answer may
	// change: the members, the services they advertise or serve here, the
	// committed topology. It is called on every call, so it must be cheap.
	Version() uint64
	// Serving returns the members that a proxy for svc may call, oldest
	// first: this member if svc is registered on its node, and the members
	// of the committed topology that advertise svc with its signatures;
	// and the Version the answer is for.
	Serving(svc *codegen.ServiceDesc) (version uint64, members []Member)
	// Defaults returns the options a proxy starts from, before its own.
	Defaults() Options
}

// A Settler is a Source that may not know its members yet: a cluster
// that has just started and has not joined a topology, whose proxies would
// otherwise find no member to call. A Balancer whose call finds no member
// calls Settle once before failing or retrying the call.
type Settler interface {
	// Settle waits, if the Source has not settled yet, until it has, or
	// will not soon, or ctx is done; it reports whether Serving's answer
	// may have changed meanwhile.
	Settle(ctx context.Context) bool
}

// A Member is a member that serves a service, as a Source reports it.
type Member struct {
	// ID is the member's node ID.
	ID nodeid.ID
	// Local is true for this member: the implementation registered on its
	// node is called directly.
	Local bool
	// Hops is the number of edges from this member to it in the committed
	// topology (0 for this member).
	Hops int
	// Info is the Source's own description of the member (package cluster
	// puts a cluster.Member there), handed back as it is by All and
	// Owner.
	Info any
}

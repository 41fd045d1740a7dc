package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/trellisrpc/trellis/membership"
)

// A member advertises, in its membership metadata, the epoch of the
// topology it has committed, so that a leader sees at once when members
// have committed epochs it has not (it was cut off while the others moved
// on) or when a member lags behind (it restarted); and what it can say of
// the proposals it led and prepared (see ballots). The record is
//
//	byte 0     metaVersion
//	uvarint    epoch of the committed topology (this life)
//	uvarint    epoch of the last topology committed in any life
//	uvarint    the highest epoch whose cascade, led by this member, is over
//	uvarint    the epoch of the prepared proposal that binds the member, 0 if none
//	services   the services the member serves (see encodeServices)
//	the rest   the application's metadata (Cluster.SetMeta)
//
// Empty metadata means a member that has not said yet (a cluster that is
// just starting, or a node without a cluster).
const metaVersion = 3

// metaOverhead is the room the version and the ballots take at most.
const metaOverhead = 1 + 4*binary.MaxVarintLen64

// ballots is what a member advertises of its cascades.
type ballots struct {
	// Epoch is the epoch of the topology committed in this life (0 after a
	// restart, until the first commit: the leader sees the member lag).
	Epoch uint64
	// Last is the epoch of the last topology committed in any life (with
	// Config.State; else as Epoch).
	Last uint64
	// Led is the highest epoch of a cascade this member led that is over:
	// committed, or withdrawn for good. A proposal the member led with an
	// epoch in (Last, Led] was never committed, and never will be: its
	// members may forget it (see Cluster.release).
	Led uint64
	// Bound is the epoch of the prepared proposal that binds the member's
	// consent to later proposals (see admit), 0 if none.
	Bound uint64
}

// voids reports whether a member advertising b says that its proposal of
// epoch was never committed and never will be.
func (b ballots) voids(epoch uint64) bool { return b.Last < epoch && epoch <= b.Led }

// metaSetter is implemented by discovery backends whose members carry
// metadata (membership.Node does). Without it the cluster still works, but
// a leader learns of other epochs only from the members' answers to its
// proposals.
type metaSetter interface {
	SetMeta(meta []byte) error
}

// encodeMeta returns the metadata advertising b, the services in svcs
// (a block from encodeServices; nil for none) and app.
func encodeMeta(b ballots, svcs, app []byte) []byte {
	if svcs == nil {
		svcs = []byte{0}
	}
	out := make([]byte, 0, metaOverhead+len(svcs)+len(app))
	out = append(out, metaVersion)
	for _, v := range [...]uint64{b.Epoch, b.Last, b.Led, b.Bound} {
		out = binary.AppendUvarint(out, v)
	}
	out = append(out, svcs...)
	return append(out, app...)
}

// decodeMeta returns the ballots, services and application metadata in
// meta; ok is false if meta is empty or not a record of this version.
func decodeMeta(meta []byte) (b ballots, svcs []Service, app []byte, ok bool) {
	if len(meta) < 2 || meta[0] != metaVersion {
		return ballots{}, nil, nil, false
	}
	rest := meta[1:]
	for _, v := range [...]*uint64{&b.Epoch, &b.Last, &b.Led, &b.Bound} {
		x, n := binary.Uvarint(rest)
		if n <= 0 {
			return ballots{}, nil, nil, false
		}
		*v, rest = x, rest[n:]
	}
	svcs, app, err := decodeServices(rest)
	if err != nil {
		return ballots{}, nil, nil, false
	}
	return b, svcs, app, true
}

// memberBallots returns what member m advertises of its cascades; ok is
// false if it has not said.
func memberBallots(m membership.Member) (b ballots, ok bool) {
	b, _, _, ok = decodeMeta(m.Meta)
	return b, ok
}

// MemberMeta returns the application metadata that member m set with
// Cluster.SetMeta (nil if none, or if m runs no cluster).
func MemberMeta(m membership.Member) []byte {
	_, _, app, _ := decodeMeta(m.Meta)
	return app
}

// MemberServices returns the services member m advertises, ordered by name
// (nil if none, or if m runs no cluster). Cluster.Members gives the same for
// every live member at once.
func MemberServices(m membership.Member) []Service {
	_, svcs, _, _ := decodeMeta(m.Meta)
	return svcs
}

// MemberEpoch returns the epoch of the topology member m has committed, as
// it last advertised it; ok is false if m has not advertised one.
func MemberEpoch(m membership.Member) (epoch uint64, ok bool) {
	b, _, _, ok := decodeMeta(m.Meta)
	return b.Epoch, ok
}

// SetMeta sets the application's part of this member's membership
// metadata (the cluster owns the metadata and advertises its own state
// beside it); the others read it with MemberMeta. It fails if the discovery
// backend carries no metadata or app is too long.
func (c *Cluster) SetMeta(app []byte) error {
	ms, ok := c.disc.(metaSetter)
	if !ok {
		return errors.New("cluster: the discovery backend carries no member metadata")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := membership.MaxMetaLen - metaOverhead - max(len(c.svcMeta), 1); len(app) > room {
		return fmt.Errorf("cluster: metadata of %d bytes, limit %d beside the advertised services", len(app), room)
	}
	c.appMeta = append([]byte(nil), app...)
	return ms.SetMeta(encodeMeta(c.ballots(), c.svcMeta, c.appMeta))
}

// ballots returns what this member advertises of its cascades. c.mu must
// be held.
func (c *Cluster) ballots() ballots {
	b := ballots{Epoch: c.committed.Epoch, Last: c.last().Epoch, Led: c.led}
	if c.bound() {
		b.Bound = c.promised.epoch
	}
	return b
}

// advertise publishes the ballots and the services in the membership
// metadata. c.mu must be held.
func (c *Cluster) advertise() {
	if ms, ok := c.disc.(metaSetter); ok {
		if err := ms.SetMeta(encodeMeta(c.ballots(), c.svcMeta, c.appMeta)); err != nil {
			c.log.Warn("cluster: cannot advertise the committed epoch", "err", err)
		}
	}
}

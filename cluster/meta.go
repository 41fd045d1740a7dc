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
// on) or when a member lags behind (it restarted). The record is
//
//	byte 0     metaVersion
//	uvarint    epoch of the committed topology
//	services   the services the member serves (see encodeServices)
//	the rest   the application's metadata (Cluster.SetMeta)
//
// Empty metadata means a member that has not said yet (a cluster that is
// just starting, or a node without a cluster).
const metaVersion = 2

// metaOverhead is the room the version and the epoch take at most.
const metaOverhead = 1 + binary.MaxVarintLen64

// metaSetter is implemented by discovery backends whose members carry
// metadata (membership.Node does). Without it the cluster still works, but
// a leader learns of other epochs only from the members' answers to its
// proposals.
type metaSetter interface {
	SetMeta(meta []byte) error
}

// encodeMeta returns the metadata advertising epoch, the services in svcs
// (a block from encodeServices; nil for none) and app.
func encodeMeta(epoch uint64, svcs, app []byte) []byte {
	if svcs == nil {
		svcs = []byte{0}
	}
	b := make([]byte, 0, metaOverhead+len(svcs)+len(app))
	b = append(b, metaVersion)
	b = binary.AppendUvarint(b, epoch)
	b = append(b, svcs...)
	return append(b, app...)
}

// decodeMeta returns the epoch, services and application metadata in
// meta; ok is false if meta is empty or not a record of this version.
func decodeMeta(meta []byte) (epoch uint64, svcs []Service, app []byte, ok bool) {
	if len(meta) < 2 || meta[0] != metaVersion {
		return 0, nil, nil, false
	}
	epoch, n := binary.Uvarint(meta[1:])
	if n <= 0 {
		return 0, nil, nil, false
	}
	svcs, app, err := decodeServices(meta[1+n:])
	if err != nil {
		return 0, nil, nil, false
	}
	return epoch, svcs, app, true
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
	epoch, _, _, ok = decodeMeta(m.Meta)
	return epoch, ok
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
	return ms.SetMeta(encodeMeta(c.committed.Epoch, c.svcMeta, c.appMeta))
}

// advertise publishes the committed epoch and the services in the
// membership metadata.
// c.mu must be held.
func (c *Cluster) advertise() {
	if ms, ok := c.disc.(metaSetter); ok {
		if err := ms.SetMeta(encodeMeta(c.committed.Epoch, c.svcMeta, c.appMeta)); err != nil {
			c.log.Warn("cluster: cannot advertise the committed epoch", "err", err)
		}
	}
}

package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/trellisrpc/trellis/generated/controlplane"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime/codegen"
)

// A Service is a service a member serves, as it advertises it.
type Service struct {
	// Name is the service's name: its interface's package path and name
	// ("example.com/kv.Store"), or only the last element of the path
	// ("kv.Store") when the member serves too many services for full names
	// to fit in its membership record.
	Name string
	// Hash identifies the service's methods and signatures (ServiceHash):
	// members built from different versions of the interface advertise
	// different hashes, and cluster proxies call only members whose hash
	// is theirs.
	Hash uint64
}

// ServiceHash returns the hash of a service's methods and signatures that
// members advertise: FNV-1a over the service's method IDs, sorted (each ID
// covers the service's name, the method's name and its signature).
func ServiceHash(svc *codegen.ServiceDesc) uint64 {
	ids := make([]uint64, 0, len(svc.Methods))
	for _, m := range svc.Methods {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	h := fnv.New64a()
	var b [8]byte
	for _, id := range ids {
		binary.LittleEndian.PutUint64(b[:], id)
		h.Write(b[:])
	}
	return h.Sum64()
}

// matches reports whether the advertised s is svc with hash.
func (s Service) matches(name string, hash uint64) bool {
	return s.Hash == hash && (s.Name == name || strings.HasSuffix(name, "/"+s.Name))
}

// A Member is a live member of the cluster and the services it advertises.
type Member struct {
	ID   nodeid.ID
	Name string
	// Addr is the member's RPC address.
	Addr string
	// Services are the services the member serves, ordered by name.
	Services []Service
	// Leader is true for the oldest live member, which computes the
	// topologies.
	Leader bool
	// Local is true for this member.
	Local bool
}

// Serves reports whether the member advertises svc (same name and hash).
func (m Member) Serves(svc *codegen.ServiceDesc) bool {
	return m.serves(svc.Name, ServiceHash(svc))
}

// serves reports whether the member advertises the service name with hash.
func (m Member) serves(name string, hash uint64) bool {
	return slices.ContainsFunc(m.Services, func(s Service) bool { return s.matches(name, hash) })
}

// Members returns the live members as the membership sees them, oldest
// (the leader) first, with the services each advertises. This member's
// services are those registered on its node.
func (c *Cluster) Members() []Member {
	return slices.Clone(c.view().members)
}

// trellisRuntime prefixes the names of the services every node serves for
// the runtime itself (the release of references): they are not advertised.
const trellisRuntime = "github.com/trellisrpc/trellis/runtime."

// localServices returns the services registered on the node, those of the
// cluster's own control plane left out.
func (c *Cluster) localServices() []Service {
	var out []Service
	for _, name := range c.node.Services() {
		svc, ok := c.node.Service(name)
		if !ok || svc == controlplane.CascadeService || strings.HasPrefix(name, trellisRuntime) {
			continue
		}
		out = append(out, Service{Name: svc.Name, Hash: ServiceHash(svc)})
	}
	return out
}

// advertiseServices puts the node's services in the member's membership
// record when they changed since the last time.
func (c *Cluster) advertiseServices() {
	// Serialised, so that a caller that read the services before another
	// does not advertise them after it.
	c.advertising.Lock()
	defer c.advertising.Unlock()
	svcs := c.localServices()
	c.mu.Lock()
	block, dropped := encodeServices(svcs, membership.MaxMetaLen-metaOverhead-len(c.appMeta))
	same := c.svcMeta != nil && bytes.Equal(block, c.svcMeta)
	if !same {
		c.svcMeta = block
		c.advertise()
	}
	c.mu.Unlock()
	if same {
		return
	}
	c.invalidate()
	if dropped > 0 {
		c.log.Warn("cluster: too many services to advertise them all in the membership record", "advertised", len(svcs)-dropped, "left out", dropped)
	}
}

// Services travel in the membership record (see meta.go) as
//
//	count:u8 (nameLen:u8 name hash:u64le)*
//
// Full names are used if they all fit in the space left, else the last
// element of each name's path; services that still do not fit are left out.

// encodeServices returns the block advertising svcs in at most size bytes,
// and how many services had to be left out.
func encodeServices(svcs []Service, size int) (block []byte, dropped int) {
	need := 1
	for _, s := range svcs {
		need += 1 + len(s.Name) + 8
	}
	short := need > size
	b := []byte{0}
	n := 0
	for _, s := range svcs {
		name := s.Name
		if short {
			name = name[strings.LastIndexByte(name, '/')+1:]
		}
		if len(name) > 255 || len(b)+1+len(name)+8 > size || n == 255 {
			dropped++
			continue
		}
		b = append(b, byte(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint64(b, s.Hash)
		n++
	}
	b[0] = byte(n)
	return b, dropped
}

var errBadMeta = errors.New("cluster: bad service list in membership metadata")

// decodeServices parses a block written by encodeServices at the start of
// b, and returns the services and what follows the block.
func decodeServices(b []byte) ([]Service, []byte, error) {
	if len(b) < 1 {
		return nil, nil, errBadMeta
	}
	n := int(b[0])
	b = b[1:]
	out := make([]Service, 0, n)
	for range n {
		if len(b) < 1 || len(b) < 1+int(b[0])+8 {
			return nil, nil, errBadMeta
		}
		l := int(b[0])
		out = append(out, Service{Name: string(b[1 : 1+l]), Hash: binary.LittleEndian.Uint64(b[1+l:])})
		b = b[1+l+8:]
	}
	return out, b, nil
}

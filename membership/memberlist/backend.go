package memberlist

import (
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

// Backend returns a constructor for cluster.Options.Discovery that makes the
// cluster's membership a memberlist Node: the one option that selects this
// backend in cluster.Join,
//
//	c, err := cluster.Join(ctx, cluster.Options{
//		Key:       key,
//		Seeds:     []string{"10.0.0.1:7948"}, // memberlist addresses
//		Discovery: memberlist.Backend(memberlist.Config{Preset: memberlist.LAN}),
//	})
//
// The Node takes what Join computed — the member's ID, name, RPC address,
// metadata, incarnation, cluster label, keyring (the one the RPC handshakes
// use), logger, seeds and gossip address (Options.GossipAddr, memberlist's
// UDP and TCP address; default ":7948", DefaultPort) — and the rest of cfg:
// a field Join computes is used only where cfg leaves it zero. Join's
// settings for the built-in backend (multicast, heartbeat interval, failure
// timeouts, seed refresh) do not apply.
func Backend(cfg Config) func(membership.Config) (membership.Discovery, error) {
	return func(mc membership.Config) (membership.Discovery, error) {
		c := cfg
		if c.ID == nodeid.None {
			c.ID = mc.ID
		}
		if c.Name == "" {
			c.Name = mc.Name
		}
		if c.Addr == "" {
			c.Addr = mc.Addr
		}
		if c.Meta == nil {
			c.Meta = mc.Meta
		}
		if c.Incarnation == 0 {
			c.Incarnation = mc.Incarnation
		}
		if c.ClusterLabel == "" {
			c.ClusterLabel = mc.ClusterLabel
		}
		if c.Keyring == nil && len(c.Keys) == 0 {
			c.Keyring, c.Keys = mc.Keyring, mc.Keys
		}
		if c.BindAddr == "" {
			c.BindAddr = mc.BindAddr
		}
		if c.Seeds == nil {
			c.Seeds = mc.Seeds
		}
		if c.Logger == nil {
			c.Logger = mc.Logger
		}
		n, err := New(c)
		if err != nil {
			return nil, err
		}
		return n, nil
	}
}

package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	clusterkeys "github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/nodeid"
)

// Defaults. With them a node that dies is declared failed by every observer at most
// FailAfter (1.2 s) after its last heartbeat, plus one check period (50 ms): the
// remaining 250 ms of the 1.5 s promise absorb scheduling delays on a busy host.
const (
	// DefaultGroup is the multicast group heartbeats go to: in the IPv4
	// organisation-local scope (239.0.0.0/8, RFC 2365), so routers at the edge of
	// an organisation do not forward it; with the default TTL of 1 it does not
	// leave the link anyway.
	DefaultGroup = "239.77.77.77"
	// DefaultPort is the UDP port of the multicast group.
	DefaultPort = 7946
	// DefaultUnicastPort is the UDP port a node binds for unicast (probes, acks and
	// seed-mode heartbeats) when it has seeds, and the port assumed for a seed
	// given without one.
	DefaultUnicastPort = 7947
	// DefaultClusterLabel is the cluster label when Config.ClusterLabel is empty.
	DefaultClusterLabel = "trellis"

	// DefaultInterval is the heartbeat period.
	DefaultInterval = 200 * time.Millisecond
	// DefaultSuspectAfter is the silence after which a member is suspected (800 ms).
	DefaultSuspectAfter = 4 * DefaultInterval
	// DefaultFailAfter is the silence, from everyone, after which a suspected
	// member is declared failed (1.2 s).
	DefaultFailAfter = DefaultSuspectAfter + 2*DefaultInterval
	// DefaultProbeFanout is how many other members are asked about a suspect.
	DefaultProbeFanout = 3
	// DefaultTombstoneTTL is how long a gone member's replay window is kept.
	DefaultTombstoneTTL = 10 * time.Minute
	// DefaultMaxMembers caps the member table.
	DefaultMaxMembers = 4096
	// DefaultMaxClockSkew is how far ahead of the local clock a member's join
	// time and incarnation may be before they are refused as implausible.
	DefaultMaxClockSkew = 10 * time.Second
)

// A Resolver looks up the IP addresses of a host name, as
// (*net.Resolver).LookupNetIP does (network "ip4").
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// MaxSeedAddrs is how many addresses of one seed host name are
// heartbeated: the lowest ones, when a name resolves to more.
const MaxSeedAddrs = 8

// Config configures a Node. The zero value of every field but Keyring (or
// Keys) has a usable default.
type Config struct {
	// ID is the node's identity; zero means nodeid.New(). Keep it across restarts
	// (with a higher Incarnation) if observers should see a restart as a new life
	// of the same member rather than a new member.
	ID nodeid.ID
	// Name is a human-readable name (at most MaxNameLen bytes).
	Name string
	// Addr is the RPC address advertised to others (at most MaxAddrLen bytes).
	Addr string
	// Meta is small user metadata (at most MaxMetaLen bytes), see Node.SetMeta.
	Meta []byte
	// Incarnation numbers this life of the node; it must grow across restarts of
	// the same ID. Zero means the start time in Unix nanoseconds, which grows as
	// long as the clock does. It may not exceed the current time in Unix
	// nanoseconds plus MaxClockSkew: observers refuse larger incarnations as
	// implausible. A node raises its own incarnation to refute a member that
	// claims its ID (see the package documentation); observers that know a
	// higher incarnation than a restarted node's tell it, and it raises its own
	// above theirs, so a restart is accepted even with a lower value.
	Incarnation uint64

	// ClusterLabel names the cluster. It is bound into every packet's
	// authentication tag, so clusters sharing a key and a group stay apart.
	ClusterLabel string
	// Keyring holds the cluster's keys: the first signs, all verify. Give the
	// same ring to the node's RPC transport (runtime.Config.Keyring) so that
	// one rotation (keyring.Ring.Set, or Node.SetKeys) rotates both. Either
	// Keyring or Keys is required, not both.
	Keyring *clusterkeys.Ring
	// Keys, when Keyring is nil, are the keys of a ring private to this node:
	// each at least MinKeyLen bytes; the first signs, all verify.
	Keys [][]byte

	// Transport carries packets. Nil means UDP, set up by Start from the fields
	// below. Close and Leave close the Transport either way.
	Transport Transport
	// Group is the multicast group and port. The zero value means
	// DefaultGroup:DefaultPort. Ignored when Transport is set.
	Group netip.AddrPort
	// Interface is the name of the network interface for multicast; empty lets
	// the routing table choose.
	Interface string
	// DisableMulticast turns multicast off: heartbeats go to Seeds and to the
	// members learned from them only.
	DisableMulticast bool
	// MulticastTTL is the IP TTL of multicast packets; zero means 1 (one link).
	MulticastTTL int
	// BindAddr is the local address of the unicast socket. Empty means
	// ":7947" (DefaultUnicastPort) when Seeds is set and ":0" otherwise.
	BindAddr string
	// Seeds are unicast addresses ("host:port", port DefaultUnicastPort if
	// absent) heartbeated in addition to multicast. Members learned through them
	// are propagated, so every node ends up heartbeating every other.
	Seeds []string
	// SeedRefresh is how often the seeds' host names are resolved again, so
	// that a seed whose address changes (a DNS name over a set of pods or
	// machines) is followed; zero means 10 s. A name that fails to resolve
	// keeps the addresses it last had; a name has at most MaxSeedAddrs
	// addresses, and each look-up is bounded by SeedRefresh (at most 5 s).
	SeedRefresh time.Duration
	// Resolver looks up the seeds' host names; nil means net.DefaultResolver.
	Resolver Resolver

	// Interval is the heartbeat period; zero means DefaultInterval.
	Interval time.Duration
	// SuspectAfter is how long a member may be silent before it is suspected and
	// probed; zero means 4 × Interval.
	SuspectAfter time.Duration
	// FailAfter is how long a member may be silent, with nobody else hearing it
	// either, before it is declared failed; zero means SuspectAfter + 2 × Interval
	// (1.2 s with the defaults).
	FailAfter time.Duration
	// ProbeFanout is how many other members are asked about a suspect each probe
	// round; zero means DefaultProbeFanout.
	ProbeFanout int
	// TombstoneTTL is how long a failed or departed member's last sequence number
	// is kept to refuse replays of its packets; zero means DefaultTombstoneTTL.
	TombstoneTTL time.Duration
	// MaxMembers caps the member table (authentic packets from more members are
	// ignored); zero means DefaultMaxMembers.
	MaxMembers int
	// MaxClockSkew is how far the clocks of the cluster's hosts may disagree:
	// a join time or an incarnation more than this ahead of the local clock
	// (incarnations are compared with the time in Unix nanoseconds) is refused
	// as implausible (Stats.Implausible) until the local clock catches up. Zero
	// means DefaultMaxClockSkew.
	MaxClockSkew time.Duration

	// Clock is the time source; nil means SystemClock.
	Clock Clock
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// normalize returns c with defaults filled in, or an error for a bad setting.
func (c Config) normalize() (Config, error) {
	switch {
	case c.Keyring != nil && len(c.Keys) > 0:
		return c, errors.New("membership: config: both Keyring and Keys are set; give one")
	case c.Keyring != nil:
		if c.Keyring.Len() == 0 {
			return c, fmt.Errorf("membership: config: Keyring: %w (make it with keyring.New)", ErrNoKeys)
		}
	default:
		if err := clusterkeys.Check(c.Keys...); err != nil {
			return c, fmt.Errorf("membership: config: %w", err)
		}
	}
	if len(c.Name) > MaxNameLen {
		return c, fmt.Errorf("membership: config: name is %d bytes, limit %d", len(c.Name), MaxNameLen)
	}
	if len(c.Addr) > MaxAddrLen {
		return c, fmt.Errorf("membership: config: addr is %d bytes, limit %d", len(c.Addr), MaxAddrLen)
	}
	if len(c.Meta) > MaxMetaLen {
		return c, fmt.Errorf("membership: config: meta is %d bytes, limit %d", len(c.Meta), MaxMetaLen)
	}
	if c.ID == nodeid.None {
		c.ID = nodeid.New()
	}
	if c.ClusterLabel == "" {
		c.ClusterLabel = DefaultClusterLabel
	}
	if len(c.ClusterLabel) > 255 {
		return c, errors.New("membership: config: cluster label longer than 255 bytes")
	}
	if !c.Group.IsValid() {
		c.Group = netip.AddrPortFrom(netip.MustParseAddr(DefaultGroup), DefaultPort)
	}
	if !c.Group.Addr().IsMulticast() {
		return c, fmt.Errorf("membership: config: group %s is not a multicast address", c.Group)
	}
	if c.MulticastTTL == 0 {
		c.MulticastTTL = 1
	}
	if c.MulticastTTL < 0 || c.MulticastTTL > 255 {
		return c, fmt.Errorf("membership: config: multicast TTL %d out of range", c.MulticastTTL)
	}
	if c.BindAddr == "" {
		if len(c.Seeds) > 0 {
			c.BindAddr = fmt.Sprintf(":%d", DefaultUnicastPort)
		} else {
			c.BindAddr = ":0"
		}
	}
	if c.DisableMulticast && len(c.Seeds) == 0 && c.Transport == nil {
		return c, errors.New("membership: config: multicast disabled and no seeds: the node could never find anyone")
	}
	for _, seed := range c.Seeds {
		if err := checkSeed(seed); err != nil {
			return c, fmt.Errorf("membership: config: seed %q: %w", seed, err)
		}
	}
	if c.SeedRefresh <= 0 {
		c.SeedRefresh = 10 * time.Second
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < time.Millisecond {
		return c, fmt.Errorf("membership: config: interval %v below 1ms", c.Interval)
	}
	if c.SuspectAfter == 0 {
		c.SuspectAfter = 4 * c.Interval
	}
	if c.FailAfter == 0 {
		c.FailAfter = c.SuspectAfter + 2*c.Interval
	}
	if c.SuspectAfter < 2*c.Interval {
		return c, fmt.Errorf("membership: config: SuspectAfter %v must be at least two intervals (%v)", c.SuspectAfter, 2*c.Interval)
	}
	if c.FailAfter < c.SuspectAfter+c.Interval {
		return c, fmt.Errorf("membership: config: FailAfter %v must exceed SuspectAfter by at least one interval", c.FailAfter)
	}
	if c.ProbeFanout == 0 {
		c.ProbeFanout = DefaultProbeFanout
	}
	if c.ProbeFanout < 0 {
		c.ProbeFanout = 0
	}
	if c.TombstoneTTL <= 0 {
		c.TombstoneTTL = DefaultTombstoneTTL
	}
	if c.MaxMembers <= 0 {
		c.MaxMembers = DefaultMaxMembers
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	if c.MaxClockSkew < 0 {
		return c, fmt.Errorf("membership: config: MaxClockSkew %v is negative", c.MaxClockSkew)
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if ceil := incCeiling(c.Clock.Now(), c.MaxClockSkew); c.Incarnation > ceil {
		return c, fmt.Errorf("membership: config: incarnation %d exceeds the current time in Unix nanoseconds plus MaxClockSkew (%d): observers would refuse it", c.Incarnation, ceil)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Meta = append([]byte(nil), c.Meta...)
	c.Keys = append([][]byte(nil), c.Keys...)
	c.Seeds = append([]string(nil), c.Seeds...)
	return c, nil
}

// checkSeed refuses a seed that is not "host[:port]" with a port from 1 to
// 65535.
func checkSeed(seed string) error {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		host, port = seed, strconv.Itoa(DefaultUnicastPort)
	}
	if host == "" {
		return errors.New("no host")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

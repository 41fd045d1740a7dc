package memberlist

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

// DefaultPort is the port memberlist binds (UDP and TCP) when Config.BindAddr
// has none, and the port assumed for a seed given without one. It differs from
// memberlist's own default (7946), which the built-in backend's multicast group
// uses.
const DefaultPort = 7948

// Preset chooses memberlist's timing: how often members are probed and gossip
// is sent, and how long a suspicion lasts.
type Preset uint8

const (
	// LAN is memberlist.DefaultLANConfig — probe every 1 s (timeout 500 ms),
	// gossip every 200 ms to 3 members, suspicion 4 × log10(N) probe intervals
	// — but with a full state exchange (push/pull) every 60 s
	// (LANPushPullInterval) instead of memberlist's 30 s, scaled up beyond 32
	// members as memberlist does. The default.
	//
	// Each exchange carries every member, so at 1,000 members it is most of a
	// node's traffic: with 60 s a node sends 420 bytes a second in all at
	// N = 1,000, 1.79× its 235 at N = 64 (with 30 s, 659 against 284: 2.32×;
	// measured in simulation, FIGURES.md). The price: the exchanges that
	// repair missed gossip come half as often, so after a burst of joins the
	// stragglers may learn the last members up to one period later. Failure detection (probes, suspicion, gossip) does not depend on
	// it. Config.Tune may set memberlist's PushPullInterval back to 30 s.
	LAN Preset = iota
	// WAN is memberlist.DefaultWANConfig: probe every 5 s (timeout 3 s), gossip
	// every 500 ms, suspicion 6 × log10(N) probe intervals, state exchange every
	// 60 s; for members across data centres.
	WAN
	// Local is memberlist.DefaultLocalConfig: probe every 1 s (timeout 200 ms),
	// gossip every 100 ms, suspicion 3 × log10(N) probe intervals; for members
	// on one host or one fast network.
	Local
)

// LANPushPullInterval is the LAN preset's interval between full state
// exchanges (memberlist's PushPullInterval, which memberlist scales up with
// log2 N beyond 32 members): twice memberlist's LAN default, as in its WAN
// preset. See LAN for the trade-off.
const LANPushPullInterval = 60 * time.Second

// String returns the preset's name.
func (p Preset) String() string {
	switch p {
	case LAN:
		return "LAN"
	case WAN:
		return "WAN"
	case Local:
		return "Local"
	}
	return fmt.Sprintf("Preset(%d)", uint8(p))
}

// Config configures a Node. The zero value of every field but Keys has a usable
// default.
type Config struct {
	// ID is the node's identity, also its memberlist name; zero means
	// nodeid.New(). Keep it across restarts (with a higher Incarnation) if
	// observers should see a restart as a new life of the same member.
	ID nodeid.ID
	// Name is a human-readable name (at most membership.MaxNameLen bytes).
	Name string
	// Addr is the RPC address advertised to others (at most
	// membership.MaxAddrLen bytes).
	Addr string
	// Meta is user metadata. Name, Addr and Meta travel together in
	// memberlist's node metadata, which holds MaxNodeMeta (512) bytes: Meta may
	// use MaxUserMeta(len(Name), len(Addr)) of them.
	Meta []byte
	// Incarnation numbers this life of the node; it must grow across restarts of
	// the same ID. Zero means the start time in Unix nanoseconds.
	Incarnation uint64

	// ClusterLabel names the cluster. It is memberlist's label (written on
	// every packet and stream and bound into their encryption), and the keys
	// are derived with it. Empty means membership.DefaultClusterLabel.
	ClusterLabel string
	// Keyring is the cluster's shared keyring (package keyring), the one the
	// RPC transport holds: memberlist encrypts and authenticates every packet
	// and stream with AES-GCM under keys derived from its keys (DeriveKey),
	// the first primary, and follows its rotations (Ring.Set) within
	// KeyCheckInterval. Keyring or Keys is required, not both.
	Keyring *keyring.Ring
	// Keys, when Keyring is nil, are the keys of a ring private to this node
	// (each at least membership.MinKeyLen bytes; the first is primary).
	Keys [][]byte
	// KeyCheckInterval is how often the Keyring is checked for a rotation;
	// zero means 1 s.
	KeyCheckInterval time.Duration

	// BindAddr is the "host:port" memberlist listens on (UDP and TCP) when
	// Transport is nil. Empty means ":7948" (DefaultPort); port 0 picks a free
	// port.
	BindAddr string
	// AdvertiseAddr is the "host:port" others should reach this node at, if it
	// differs from what the transport reports (behind NAT, say).
	AdvertiseAddr string
	// Seeds are memberlist addresses ("host[:port]", port DefaultPort if
	// absent) of members to join through. Start succeeds even if none
	// answers; the node keeps trying every RejoinInterval while it is alone.
	Seeds []string
	// Transport carries memberlist's packets and streams; nil means
	// memberlist's UDP and TCP sockets on BindAddr. Tests use an in-memory one
	// (package memberlisttest).
	Transport ml.Transport

	// Preset chooses memberlist's timing (default LAN).
	Preset Preset
	// Tune, if set, adjusts the memberlist configuration after the preset and
	// this package's settings are applied: any memberlist setting may be
	// changed, except Name, Delegate, Events, Alive, Ping, Conflict, Keyring,
	// Label, Transport and the logger, which the Node owns.
	Tune func(*ml.Config)

	// RejoinInterval is how often the node tries to join its seeds and the
	// members it saw fail, while any of them is not a member: this heals
	// partitions that outlast memberlist's own gossip to the dead. Zero means
	// 5 s.
	RejoinInterval time.Duration
	// ReconnectTimeout is how long a failed member keeps being tried; zero
	// means 10 minutes.
	ReconnectTimeout time.Duration
	// LeaveTimeout bounds the broadcasts of a graceful leave when the context
	// of Leave has no deadline; zero means 2 s.
	LeaveTimeout time.Duration

	// Logger receives the node's and memberlist's logs; nil discards them.
	Logger *slog.Logger
}

// normalize returns c with defaults filled in, or an error for a bad setting.
func (c Config) normalize() (Config, error) {
	switch {
	case c.Keyring != nil && len(c.Keys) > 0:
		return c, errors.New("memberlist: config: both Keyring and Keys are set; give one")
	case c.Keyring != nil:
		if c.Keyring.Len() == 0 {
			return c, fmt.Errorf("memberlist: config: Keyring: %w (make it with keyring.New)", membership.ErrNoKeys)
		}
	default:
		ring, err := keyring.New(c.Keys...)
		if err != nil {
			return c, fmt.Errorf("memberlist: config: %w", err)
		}
		c.Keyring, c.Keys = ring, nil
	}
	if c.KeyCheckInterval <= 0 {
		c.KeyCheckInterval = time.Second
	}
	if c.ID == nodeid.None {
		c.ID = nodeid.New()
	}
	if c.ClusterLabel == "" {
		c.ClusterLabel = membership.DefaultClusterLabel
	}
	if len(c.ClusterLabel) > 255 {
		return c, errors.New("memberlist: config: cluster label longer than 255 bytes")
	}
	if c.BindAddr == "" {
		c.BindAddr = ":" + strconv.Itoa(DefaultPort)
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return c, fmt.Errorf("memberlist: config: bind address: %w", err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			return c, fmt.Errorf("memberlist: config: advertise address: %w", err)
		}
	}
	if c.Preset > Local {
		return c, fmt.Errorf("memberlist: config: unknown preset %d", c.Preset)
	}
	if c.RejoinInterval <= 0 {
		c.RejoinInterval = 5 * time.Second
	}
	if c.ReconnectTimeout <= 0 {
		c.ReconnectTimeout = 10 * time.Minute
	}
	if c.LeaveTimeout <= 0 {
		c.LeaveTimeout = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := encodeMeta(info{name: c.Name, addr: c.Addr, meta: c.Meta}); err != nil {
		return c, fmt.Errorf("memberlist: config: %w", err)
	}
	c.Meta = append([]byte(nil), c.Meta...)
	c.Seeds = append([]string(nil), c.Seeds...)
	return c, nil
}

// splitHostPort splits "host:port"; a missing port is an error.
func splitHostPort(s string) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", ps, err)
	}
	return host, int(port), nil
}

// withDefaultPort adds DefaultPort to a seed without a port.
func withDefaultPort(seed string) string {
	if _, _, err := net.SplitHostPort(seed); err == nil {
		return seed
	}
	return net.JoinHostPort(seed, strconv.Itoa(DefaultPort))
}

// memberlistConfig returns the memberlist configuration of the preset with the
// node's settings, then Tune's changes; the Node fills in its delegates.
// presetConfig returns memberlist's configuration for the preset, with this
// package's changes to it.
func (c *Config) presetConfig() *ml.Config {
	var mc *ml.Config
	switch c.Preset {
	case WAN:
		mc = ml.DefaultWANConfig()
	case Local:
		mc = ml.DefaultLocalConfig()
	default:
		mc = ml.DefaultLANConfig()
		mc.PushPullInterval = LANPushPullInterval
	}
	return mc
}

// memberlistConfig returns the memberlist configuration c asks for: the
// preset's, c's settings, then c.Tune.
func (c *Config) memberlistConfig() *ml.Config {
	mc := c.presetConfig()
	mc.Name = c.ID.String()
	host, port, _ := splitHostPort(c.BindAddr)
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = "", port
	if c.AdvertiseAddr != "" {
		h, p, _ := splitHostPort(c.AdvertiseAddr)
		mc.AdvertiseAddr, mc.AdvertisePort = h, p
	}
	mc.Label = c.ClusterLabel
	// A member that restarts on another address may take its name back as
	// soon as its previous life is declared dead.
	mc.DeadNodeReclaimTime = time.Nanosecond
	mc.Transport = c.Transport
	if c.Tune != nil {
		c.Tune(mc)
	}
	return mc
}

package clustergen

import (
	"errors"
	"time"

	"github.com/trellisrpc/trellis/runtime"
)

// Errors of cluster proxies. Both mean that the call was not sent; package
// cluster exports them as cluster.ErrNoMember and
// cluster.ErrTooManyInFlight.
var (
	ErrNoMember        = errors.New("cluster: no live member serves the service")
	ErrTooManyInFlight = errors.New("cluster: too many calls in flight to every member serving the service")
)

// A Policy is how a balancer chooses the member for a call. Package
// cluster's Policy constants have the same values.
type Policy uint8

// The policies, described at cluster.Policy and cluster.ByKey.
const (
	Nearest Policy = iota
	RoundRobin
	LocalFirst
	ByKey
)

// A Retry is cluster.Retry: at most Attempts tries in all, the n-th retry
// after a random delay of up to Base × 2ⁿ⁻¹ (at most Max).
type Retry struct {
	Attempts  int
	Base, Max time.Duration
}

// Options configure a balancer; package cluster's ProxyOption values set
// them.
type Options struct {
	Policy Policy
	// Key returns a call's key for ByKey from the method's name and the
	// call's arguments after the context; nil gives every call the key "".
	Key func(method string, args []any) string
	// Retry is the retry policy; Attempts below 1 mean 1.
	Retry Retry
	// MaxInFlight caps the calls in progress on one member; 0 means no cap.
	MaxInFlight int
	// Client are the options of the plain proxy made for each member.
	Client []runtime.ProxyOption
}

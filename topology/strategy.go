package topology

import (
	"errors"
	"fmt"
	"strings"
)

// Strategy decides which pairs of members are connected.
//
// Users may implement Strategy for their own shapes and pass it to [Compute].
type Strategy interface {
	// Name returns the strategy's name, recorded in [Topology.Strategy].
	Name() string
	// Edges returns the edges between members, given in membership order
	// (oldest first; index 0 is the leader). prev is the last committed
	// topology, or nil; a strategy may use it to keep churn low, such as
	// keeping the survivors' relative places, but must return a result that
	// depends only on its arguments. Edges must not modify its arguments.
	//
	// The edges may be returned in any order and need not be normalised;
	// [Compute] sorts them. Every edge must join two distinct members.
	Edges(members []Member, prev *Topology) []Edge
}

// builtin lists the built-in strategies in the order StrategyNames reports them.
func builtin() []Strategy {
	return []Strategy{Ring{}, Star{}, Bus{}, Hypercube{}}
}

// StrategyByName returns the built-in strategy with the given name:
// "ring", "star", "bus" or "hypercube". Case is ignored.
func StrategyByName(name string) (Strategy, error) {
	for _, s := range builtin() {
		if strings.EqualFold(name, s.Name()) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("topology: unknown strategy %q (want one of %s)", name, strings.Join(StrategyNames(), ", "))
}

// StrategyNames returns the names of the built-in strategies, for flag help.
func StrategyNames() []string {
	var names []string
	for _, s := range builtin() {
		names = append(names, s.Name())
	}
	return names
}

// ErrTooManyMembers is what a strategy with a limit (see MaxMembers) is
// refused with when the membership exceeds it.
var ErrTooManyMembers = errors.New("topology: too many members for the strategy")

// A Limited strategy is meant for at most MaxMembers members: beyond, its
// topologies cost more (connections, the size of a proposal, the time to
// compute them) than a cluster should pay. Bus is Limited.
type Limited interface {
	MaxMembers() int
}

// MaxMembers returns the most members s is meant for, and 0 if s has no
// limit (it does not implement Limited).
func MaxMembers(s Strategy) int {
	if l, ok := s.(Limited); ok {
		return l.MaxMembers()
	}
	return 0
}

// CheckSize returns an error wrapping ErrTooManyMembers if n members exceed
// the limit of s.
func CheckSize(s Strategy, n int) error {
	if limit := MaxMembers(s); limit > 0 && n > limit {
		return fmt.Errorf("%w: %s serves at most %d members, %d asked for; choose ring or hypercube beyond", ErrTooManyMembers, s.Name(), limit, n)
	}
	return nil
}

package clustergen

import (
	"hash/fnv"

	"github.com/trellisrpc/trellis/nodeid"
)

// tried is the set of members a call was tried on.
type tried struct {
	few  [4]nodeid.ID
	n    int
	more []nodeid.ID
}

func (s *tried) add(id nodeid.ID) {
	if s.n < len(s.few) {
		s.few[s.n] = id
		s.n++
		return
	}
	s.more = append(s.more, id)
}

func (s *tried) has(id nodeid.ID) bool {
	for _, x := range s.few[:s.n] {
		if x == id {
			return true
		}
	}
	for _, x := range s.more {
		if x == id {
			return true
		}
	}
	return false
}

// pick chooses a target for a call by the policy, avoiding members already
// tried (unless all were) and members at MaxInFlight.
func (b *Balancer[S]) pick(list []*target[S], key uint64, tr *tried) (*target[S], error) {
	if len(list) == 0 {
		return nil, ErrNoMember
	}
	if t := b.pickFrom(list, key, tr); t != nil {
		return t, nil
	}
	if tr.n > 0 {
		// Every member was tried: try them again (a route may be back).
		if t := b.pickFrom(list, key, &tried{}); t != nil {
			return t, nil
		}
	}
	return nil, ErrTooManyInFlight
}

func (b *Balancer[S]) pickFrom(list []*target[S], key uint64, tr *tried) *target[S] {
	usable := func(t *target[S]) bool {
		return (tr.n == 0 || !tr.has(t.member.ID)) &&
			(b.opts.MaxInFlight <= 0 || int(t.inFlight.Load()) < b.opts.MaxInFlight)
	}
	switch b.opts.Policy {
	case ByKey:
		return b.pickByKey(list, key, usable)
	case RoundRobin:
		start := int(b.next.Add(1) % uint64(len(list)))
		for i := range list {
			if t := list[(start+i)%len(list)]; usable(t) {
				return t
			}
		}
		return nil
	case LocalFirst:
		for _, t := range list {
			if t.member.Local && usable(t) {
				return t
			}
		}
	}
	// Nearest: fewest hops, then fewest in flight, ties in turn.
	start := 0
	if len(list) > 1 {
		start = int(b.next.Add(1) % uint64(len(list)))
	}
	var best *target[S]
	var bestIn int32
	for i := range list {
		t := list[(start+i)%len(list)]
		if !usable(t) {
			continue
		}
		in := t.inFlight.Load()
		if best == nil || t.member.Hops < best.member.Hops || (t.member.Hops == best.member.Hops && in < bestIn) {
			best, bestIn = t, in
		}
	}
	return best
}

// pickByKey returns the usable target with the highest rendezvous score
// for key: each key has its own order of the members, so a departed
// member's keys spread over the others and no other key moves.
func (b *Balancer[S]) pickByKey(list []*target[S], key uint64, usable func(*target[S]) bool) *target[S] {
	var best *target[S]
	var bestScore uint64
	for _, t := range list {
		if s := score(t.score, key); usable(t) && (best == nil || s > bestScore) {
			best, bestScore = t, s
		}
	}
	return best
}

// hashKey hashes a key for rendezvous hashing (FNV-1a, the same on every
// machine).
func hashKey(k string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(k))
	return h.Sum64()
}

// mix is the SplitMix64 finaliser: it spreads the bits of x, so that the
// scores of a key on different members are independent.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Owner returns the member among members that a balancer with the ByKey
// policy sends a call with key to first, and false if members is empty.
func Owner(members []Member, key string) (Member, bool) {
	k := hashKey(key)
	var best Member
	var bestScore uint64
	for i, m := range members {
		if s := score(mix(uint64(m.ID)), k); i == 0 || s > bestScore {
			best, bestScore = m, s
		}
	}
	return best, len(members) > 0
}

// score is the rendezvous score of a member (its ID mixed) for a key
// (hashed).
func score(member, key uint64) uint64 { return mix(member ^ key) }

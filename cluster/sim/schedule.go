package sim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/trellisrpc/trellis/nodeid"
)

// StepKind is what a step of a schedule does.
type StepKind int

// The kinds of step.
const (
	// Partition splits the hosts into Groups, cutting every link between
	// groups both ways.
	Partition StepKind = iota + 1
	// CutLeader isolates the current leader (the oldest live member) from
	// everyone, both ways.
	CutLeader
	// LeaderMinority partitions the hosts in two with the current leader on
	// the smaller side (of size Size).
	LeaderMinority
	// OneWay cuts what From sends to To, but not the way back.
	OneWay
	// Lossy makes the datagrams From sends To lose a fraction Loss.
	Lossy
	// Heal ends every cut and loss.
	Heal
	// Crash crashes Host: its peers hear nothing more.
	Crash
	// Exit ends Host's process: its connections are closed.
	Exit
	// Restart starts Host's software again, with the same ID.
	Restart
)

// A Step is one event of a schedule.
type Step struct {
	At     time.Duration // since the start of the run
	Kind   StepKind
	Groups [][]int
	From   int
	To     int
	Host   int
	Size   int
	Loss   float64
}

// String describes the step on one line.
func (s Step) String() string {
	at := s.At.Round(time.Millisecond)
	switch s.Kind {
	case Partition:
		return fmt.Sprintf("%v partition %v", at, s.Groups)
	case CutLeader:
		return fmt.Sprintf("%v cut the leader off", at)
	case LeaderMinority:
		return fmt.Sprintf("%v partition with the leader on a side of %d", at, s.Size)
	case OneWay:
		return fmt.Sprintf("%v cut n%d -> n%d (one way)", at, s.From, s.To)
	case Lossy:
		return fmt.Sprintf("%v lose %.0f%% of n%d -> n%d", at, 100*s.Loss, s.From, s.To)
	case Heal:
		return fmt.Sprintf("%v heal", at)
	case Crash:
		return fmt.Sprintf("%v crash n%d", at, s.Host)
	case Exit:
		return fmt.Sprintf("%v exit n%d", at, s.Host)
	case Restart:
		return fmt.Sprintf("%v restart n%d", at, s.Host)
	}
	return fmt.Sprintf("%v step %d", at, s.Kind)
}

// A Schedule is a whole simulated run, derived from its seed.
type Schedule struct {
	Seed       uint64
	Nodes      int
	Strategy   string
	IDs        []nodeid.ID // by host; growing with start order when Ascending
	Ascending  bool
	Conditions LinkConditions
	// Stagger is the time between the starts of consecutive hosts.
	Stagger time.Duration
	// Starts are the hosts' start times: host h at h × Stagger plus a
	// fraction of a millisecond, so that no two hosts tick together.
	Starts []time.Duration
	// Faults is when the first fault may happen; the cluster should have
	// formed by then.
	Faults time.Duration
	Steps  []Step
	// Quiet is when the last fault ends: the network is whole, and every
	// host that will run again runs.
	Quiet time.Duration
}

// String describes the schedule: its seed and conditions, then its steps,
// one a line.
func (s *Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d nodes, %s, ids %s, delay %v+%v, loss %.0f%%; faults from %v, quiet at %v",
		s.Seed, s.Nodes, s.Strategy, map[bool]string{true: "ascending", false: "random"}[s.Ascending],
		s.Conditions.Delay, s.Conditions.Jitter, 100*s.Conditions.Loss, s.Faults, s.Quiet)
	for _, st := range s.Steps {
		fmt.Fprintf(&b, "\n  %v", st)
	}
	return b.String()
}

// Generate derives a schedule from seed: 3 to 6 nodes, a strategy, link
// conditions, and a few overlapping faults (partitions, a cut-off leader,
// one-way cuts, lossy links, crashes, process exits, restarts) between the
// formation of the cluster and Quiet, after which the network is whole and
// at most a minority of the nodes stays down.
func Generate(seed uint64) *Schedule {
	r := rand.New(rand.NewPCG(seed, 0x73696d756c617465))
	s := &Schedule{Seed: seed, Nodes: 3 + r.IntN(4)}
	s.Strategy = []string{"ring", "ring", "star", "bus", "hypercube"}[r.IntN(5)]
	s.Ascending = r.IntN(2) == 0
	for range s.Nodes {
		s.IDs = append(s.IDs, nodeid.ID(r.Uint64()|1))
	}
	if s.Ascending {
		slices.Sort(s.IDs)
	}
	s.Conditions = LinkConditions{
		Delay:  time.Duration(50+r.IntN(2000)) * time.Microsecond,
		Jitter: time.Duration(r.IntN(3000)) * time.Microsecond,
		Loss:   []float64{0, 0, 0.01, 0.05, 0.2}[r.IntN(5)],
	}
	s.Stagger = time.Duration(r.IntN(300)) * time.Millisecond
	s.Faults = 3*time.Second + time.Duration(s.Nodes)*s.Stagger
	for h := range s.Nodes {
		s.Starts = append(s.Starts, time.Duration(h)*s.Stagger+time.Duration(r.IntN(1e6)))
	}

	n := s.Nodes
	dead := map[int]bool{}
	at := s.Faults
	faults := 1 + r.IntN(5)
	for range faults {
		at += time.Duration(r.IntN(2500))*time.Millisecond + time.Duration(r.IntN(1e6))
		st := Step{At: at}
		switch k := r.IntN(10); {
		case k < 2:
			st.Kind = Partition
			perm := r.Perm(n)
			cut := 1 + r.IntN(n-1)
			a, b := slices.Clone(perm[:cut]), slices.Clone(perm[cut:])
			slices.Sort(a)
			slices.Sort(b)
			st.Groups = [][]int{a, b}
		case k < 3:
			st.Kind = CutLeader
		case k < 4:
			st.Kind = LeaderMinority
			st.Size = 1 + r.IntN((n-1)/2+1)
			if 2*st.Size >= n {
				st.Size = (n - 1) / 2
			}
			st.Size = max(st.Size, 1)
		case k < 5:
			st.Kind = OneWay
			st.From = r.IntN(n)
			st.To = (st.From + 1 + r.IntN(n-1)) % n
		case k < 6:
			st.Kind = Lossy
			st.From = r.IntN(n)
			st.To = (st.From + 1 + r.IntN(n-1)) % n
			st.Loss = 0.3 + 0.6*r.Float64()
		case k < 7:
			st.Kind = Heal
		default:
			h := r.IntN(n)
			switch {
			case dead[h]:
				st.Kind, st.Host = Restart, h
				delete(dead, h)
			case 2*(len(dead)+1) < n:
				st.Kind, st.Host = Crash, h
				if r.IntN(2) == 0 {
					st.Kind = Exit
				}
				dead[h] = true
			default:
				st.Kind = Heal
			}
		}
		s.Steps = append(s.Steps, st)
	}
	at += time.Duration(r.IntN(2000)) * time.Millisecond
	// Hosts still down come back (or not), then the network heals.
	for _, h := range slices.Sorted(maps.Keys(dead)) {
		if r.IntN(2) == 0 {
			at += time.Duration(r.IntN(500))*time.Millisecond + time.Duration(r.IntN(1e6))
			s.Steps = append(s.Steps, Step{At: at, Kind: Restart, Host: h})
		}
	}
	at += time.Duration(r.IntN(500))*time.Millisecond + time.Duration(r.IntN(1e6))
	s.Steps = append(s.Steps, Step{At: at, Kind: Heal})
	s.Quiet = at
	return s
}

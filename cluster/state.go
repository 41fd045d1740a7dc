package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/topology"
)

// State is what a member must remember across restarts of its process
// (see Config.State): the last topology it committed, and the highest
// epoch it prepared, for which leader and with which members. A member
// restarted with its state never prepares an epoch it prepared or
// committed in an earlier life, nor one below; it judges proposals, and
// leads, by the majority of its last topology (and of the proposal it
// prepared), so that alone, or on the small side of a partition, it
// commits nothing; and the leader's next topology goes past its epochs.
type State struct {
	// ID is the member the state belongs to.
	ID nodeid.ID
	// Committed is the last topology the member committed (the zero
	// Topology if none).
	Committed topology.Topology
	// Prepared is the highest epoch the member prepared (0 if none), for
	// the leader Leader, with the members PreparedMembers. PreparedMembers
	// is nil once the proposal is known to be void: its leader withdrew it
	// (see Cluster.release).
	Prepared        uint64
	Leader          nodeid.ID
	PreparedMembers []nodeid.ID
}

// A StateStore keeps a member's State across restarts. Save returns once
// the state is durable: a member answers a prepare or a commit only after
// it has saved what it promised.
type StateStore interface {
	// Load returns the state saved last, or the zero State (and no error)
	// if none was ever saved.
	Load() (State, error)
	// Save replaces the saved state with s.
	Save(s State) error
}

// MemoryState is a StateStore in memory, for tests and simulations that
// restart a member's software but keep its "disk". The zero value is ready.
type MemoryState struct {
	mu sync.Mutex
	s  State
}

// Load implements StateStore.
func (m *MemoryState) Load() (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s, nil
}

// Save implements StateStore.
func (m *MemoryState) Save(s State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s = s
	return nil
}

// FileState returns a StateStore keeping the state in the file at path,
// as JSON. Each Save writes a temporary file in the same directory, syncs
// it and renames it over path, so that a crash leaves either the old state
// or the new one.
func FileState(path string) StateStore { return fileState(path) }

type fileState string

// fileStateVersion is the version of the file's format.
const fileStateVersion = 1

type stateFile struct {
	Version int
	State
}

// Load implements StateStore.
func (f fileState) Load() (State, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("cluster: loading the state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return State{}, fmt.Errorf("cluster: loading the state from %s: %w", f, err)
	}
	if sf.Version != fileStateVersion {
		return State{}, fmt.Errorf("cluster: loading the state from %s: format version %d, want %d", f, sf.Version, fileStateVersion)
	}
	return sf.State, nil
}

// Save implements StateStore.
func (f fileState) Save(s State) error {
	b, err := json.Marshal(stateFile{Version: fileStateVersion, State: s})
	if err != nil {
		return fmt.Errorf("cluster: saving the state: %w", err)
	}
	dir, name := filepath.Split(string(f))
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return fmt.Errorf("cluster: saving the state: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), string(f))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cluster: saving the state to %s: %w", f, err)
	}
	return nil
}

// restore loads the state saved by an earlier life of this member, if
// any. c.mu need not be held: the cluster has not started.
func (c *Cluster) restore() error {
	if c.cfg.State == nil {
		return nil
	}
	s, err := c.cfg.State.Load()
	if err != nil {
		return err
	}
	if s.ID == nodeid.None {
		return nil // nothing saved yet
	}
	if s.ID != c.self {
		return fmt.Errorf("cluster: the saved state belongs to member %s, this node is %s", s.ID, c.self)
	}
	if s.Committed.Epoch > 0 {
		if err := s.Committed.Validate(); err != nil {
			return fmt.Errorf("cluster: the saved state: %w", err)
		}
	}
	c.restored = s.Committed
	c.promised = promise{epoch: s.Prepared, leader: s.Leader, members: s.PreparedMembers}
	c.maxEpoch = max(s.Committed.Epoch, s.Prepared)
	// Every cascade an earlier life led is over, and was prepared (and
	// saved) by it before it went out: at most s.Prepared.
	c.led = c.maxEpoch
	if s.Committed.Epoch > 0 || s.Prepared > 0 {
		c.log.Info("cluster: restored the state of an earlier life", "committed", s.Committed.Epoch, "members", len(s.Committed.Members), "prepared", s.Prepared)
	}
	return nil
}

// save saves what this member has committed and promised. c.mu must be held.
func (c *Cluster) save() error {
	if c.cfg.State == nil {
		return nil
	}
	return c.cfg.State.Save(State{ID: c.self, Committed: c.last(),
		Prepared: c.promised.epoch, Leader: c.promised.leader, PreparedMembers: c.promised.members})
}

// last returns the last topology this member committed: in this life, or
// else in an earlier one (restored from its state). c.mu must be held.
func (c *Cluster) last() topology.Topology {
	if c.committed.Epoch > 0 {
		return c.committed
	}
	return c.restored
}

// counted returns the ids of ms that count towards the policy's majority:
// all but the members that left gracefully. A member that announced its
// departure is gone for good (in that life: heard again, it counts again),
// so leaving it out is as if a topology without it had been committed
// first; since it is visible on no side of a partition, the sides still
// cannot both hold a majority (each leaves out only departed members, and
// those are on neither side). c.mu must be held.
func (c *Cluster) counted(ms []nodeid.ID) []nodeid.ID {
	out := make([]nodeid.ID, 0, len(ms))
	for _, id := range ms {
		if !c.left[id] {
			out = append(out, id)
		}
	}
	return out
}

// memberIDs returns the ids of t's members.
func memberIDs(t topology.Topology) []nodeid.ID {
	out := make([]nodeid.ID, 0, len(t.Members))
	for _, m := range t.Members {
		out = append(out, m.ID)
	}
	return out
}

// bound reports whether the prepared proposal binds this member's consent
// to later proposals (see admit): prepared above its last commit, and not
// known to be void. c.mu must be held.
func (c *Cluster) bound() bool {
	return len(c.promised.members) > 0 && c.promised.epoch > c.last().Epoch
}

// State returns what this member would save now (see Config.State): its
// last committed topology and the proposal it prepared last.
func (c *Cluster) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return State{ID: c.self, Committed: c.last(), Prepared: c.promised.epoch, Leader: c.promised.leader,
		PreparedMembers: slices.Clone(c.promised.members)}
}

// promise is the highest epoch a member prepared, for which leader, and
// the members of that proposal.
type promise struct {
	epoch   uint64
	leader  nodeid.ID
	members []nodeid.ID
}

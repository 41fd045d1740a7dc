// Package sim simulates a whole Trellis cluster — membership, the leader's
// cascade, the reconciliation of connections and routed calls — on an
// in-memory network, and checks it against the invariants the cluster
// promises while faults come and go.
//
// A Network is a set of hosts whose datagrams (membership.Transport, see
// Network.ListenPacket) and stream connections (net.Conn, see Network.Listen
// and Network.Dialer) the simulation delivers, delays, loses, holds back
// across cuts (partitions, one-way cuts), and drops when a host crashes or
// its process exits. A World runs one real member on each host: a
// runtime.Node (on the network through runtime.Config.Dial and
// runtime.Node.Serve), a membership.Node and a cluster.Cluster. Generate
// derives a Schedule of faults from a seed, and Run plays it, checking the
// invariants (see Invariants) after every step of simulated time.
//
// Run must be called inside a testing/synctest bubble: time is the
// bubble's fake clock, so a run of 15 simulated seconds takes a few
// milliseconds, and a timeout fires at the same simulated instant every
// time. The seed fixes the schedule, the node IDs, the link conditions,
// every loss and delay (a function of the seed, the link and the count of
// what was sent on it, not of goroutine order) and the workload of calls.
// What the seed does not fix is the order in which goroutines run within
// one instant of simulated time; so a failure that depends on such a race
// shows in some replays of its seed only.
//
// The tests run the schedules:
//
//	go test ./cluster/sim                                  # the CI's 200 schedules (seeds 1-200)
//	go test ./cluster/sim -run TestSimulation -sim.schedules=10000 -timeout=2h   # a long run
//	go test ./cluster/sim -run TestSimulation -sim.seed=123 -sim.v -v           # replay one seed, with its trace
//	go test ./cluster/sim -run TestSimulation -sim.seed=123 -sim.log            # ... with every member's debug log
//
// -sim.strict fails on the known defects too (see knownDefects in the
// tests); -sim.forgetful runs members that keep no state across restarts
// (cluster.Config.State), to show what that state prevents.
//
// A failing schedule prints the one-line command that replays it.
package sim

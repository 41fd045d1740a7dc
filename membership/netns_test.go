package membership_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
)

// TestMulticastNetns runs four nodes on real multicast sockets inside a private
// network namespace. Run as root, it re-executes the test binary under
// `unshare -n` with multicast routed to the namespace's own loopback, so no packet
// can reach the host's networks; otherwise it is skipped.
//
// TRELLIS_MEMBERSHIP_KILLS=N repeats the kill/restart round N times and logs the
// detection-time percentiles (FIGURES.md).
func TestMulticastNetns(t *testing.T) {
	if os.Getenv("TRELLIS_MEMBERSHIP_NETNS") != "1" {
		reexecInNetns(t)
		return
	}
	requirePrivateNamespace(t)
	checkGoroutines(t)
	kills := 1
	if s := os.Getenv("TRELLIS_MEMBERSHIP_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	const n = 4
	nodes := make([]*liveNode, n)
	start := func(i int, inc uint64) {
		cfg := membership.Config{Name: fmt.Sprintf("m%d", i+1), ID: nodeid.ID(0x3000 + i), Keys: [][]byte{testKey},
			Interface: "lo", BindAddr: "127.0.0.1:0", Incarnation: inc}
		node, err := membership.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ln := &liveNode{Node: node, sub: node.Subscribe(0)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := node.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		nodes[i] = ln
	}
	for i := range n {
		start(i, 0)
	}
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				x.await(t, "join of "+y.Local().Name, is(membership.Joined, y.ID()))
			}
		}
	}
	t.Logf("%d nodes discovered each other over multicast", n)

	var detections []time.Duration
	for round := range kills {
		victim := nodes[n-1]
		if kills > 1 {
			victim = nodes[round%n]
		}
		vi := slices.Index(nodes, victim)
		oldInc := victim.Local().Incarnation
		stallsBefore := map[*liveNode]uint64{}
		for _, o := range nodes {
			stallsBefore[o] = o.Stats().Stalls
		}
		killed := time.Now()
		victim.Close() // sockets gone, no goodbye: a crash as far as the others can tell
		for _, o := range nodes {
			if o == victim {
				continue
			}
			ev := o.await(t, "failure of "+victim.Local().Name, is(membership.Failed, victim.ID()))
			d := ev.Time.Sub(killed)
			detections = append(detections, d)
			// The bound is promised by an observer that runs: time during which
			// it was starved of CPU (a shared, overloaded machine) is not counted
			// as silence, so a starved observer is allowed to be late.
			stalled := o.Stats().Stalls > stallsBefore[o]
			if os.Getenv("TRELLIS_MEMBERSHIP_KILLS") != "" {
				t.Logf("round %d: %s saw %s fail after %v (observer stalled: %v)", round, o.Local().Name, victim.Local().Name, d, stalled)
			}
			if bound := detectionBound; (d > bound && !stalled) || d > 2*bound {
				t.Errorf("round %d: %s declared %s failed after %v, bound %v (observer stalled: %v)", round, o.Local().Name, victim.Local().Name, d, bound, stalled)
			}
		}
		start(vi, oldInc+1)
		for _, o := range nodes {
			if o == nodes[vi] {
				continue
			}
			ev := o.await(t, "rejoin", is(membership.Joined, nodes[vi].ID()))
			if ev.Member.Incarnation != oldInc+1 {
				t.Fatalf("rejoined with incarnation %d, want %d", ev.Member.Incarnation, oldInc+1)
			}
			nodes[vi].await(t, "rejoin sees "+o.Local().Name, is(membership.Joined, o.ID()))
		}
	}
	for _, o := range nodes {
		st := o.Stats()
		t.Logf("%s: suspicions %d failures %d refutations %d stalls %d", o.Local().Name, st.Suspicions, st.Failures, st.Refutations, st.Stalls)
	}
	slices.Sort(detections)
	pct := func(p float64) time.Duration { return detections[int(float64(len(detections)-1)*p)] }
	t.Logf("detection over %d observations (%d kills, load %s): min %v p50 %v p99 %v max %v", len(detections), kills, loadavg(),
		detections[0], pct(0.5), pct(0.99), detections[len(detections)-1])

	// Hostile packets from the test itself, to the group.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	group := netip.AddrPortFrom(netip.MustParseAddr(membership.DefaultGroup), membership.DefaultPort)
	const evil = nodeid.ID(0xe411)
	for _, p := range [][]byte{
		membership.EncodeHeartbeat(membership.DefaultClusterLabel, []byte("a-key-nobody-has-00"), evil, 1, 1, "forged"),
		membership.EncodeHeartbeat("another-cluster", testKey, evil, 1, 1, "foreign"),
		[]byte("garbage garbage garbage garbage garbage garbage garbage"),
	} {
		if _, err := c.WriteToUDPAddrPort(p, group); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, o := range nodes {
		for {
			st := o.Stats()
			if st.Forged >= 1 && st.ForeignCluster >= 1 && st.Malformed >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: hostile packets not counted: %+v", o.Local().Name, st)
			}
			time.Sleep(10 * time.Millisecond) // a counter has no event to wait for
		}
		for _, m := range o.Members() {
			if m.ID == evil {
				t.Fatalf("%s accepted the forged member", o.Local().Name)
			}
		}
	}
	for _, o := range nodes {
		o.Close()
	}
}

func reexecInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: real multicast test needs root to create a private network namespace (unshare -n); run as root")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: real multicast test needs %s (util-linux / iproute2)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	script := `ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && exec "$0" "$@"`
	args := []string{"-n", "sh", "-c", script, os.Args[0], "-test.run=^TestMulticastNetns$", "-test.v", "-test.count=1"}
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Env = append(os.Environ(), "TRELLIS_MEMBERSHIP_NETNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "unshare failed") {
		t.Skipf("skipped: cannot create a network namespace here: %s", strings.TrimSpace(string(out)))
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t.Log(line)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestMulticastNetns") {
		t.Fatalf("multicast test inside the namespace failed: %v", err)
	}
}

// requirePrivateNamespace refuses to send multicast unless the only interface is
// the loopback of a namespace this test created.
func requirePrivateNamespace(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Fatalf("refusing to send multicast: interfaces %v, want only the private namespace's lo", ifs)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

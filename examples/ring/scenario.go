package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trellisrpc/trellis/cluster/status"
)

// proc is one node process started by the scenario.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	dead   bool
}

// report is a line a node process printed.
type report struct {
	proc *proc
	line string
}

// scenario drives node processes and follows what they report.
type scenario struct {
	exe      string
	flags    nodeFlags
	procs    []*proc
	reports  chan report
	topology map[string]string // node name → its last TOPOLOGY line (without the name)
	status   map[string]string // node name → the URL of its status page, once printed
	shown    map[string]bool   // the status pages whose URLs were shown
}

// runScenario plays the reference scenario with one process per node.
// With hold, the nodes are kept up after it until SIGINT or SIGTERM.
func runScenario(f nodeFlags, hold bool) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	seed, err := freeUDP()
	if err != nil {
		return err
	}
	f.seed = seed
	s := &scenario{exe: exe, flags: f, reports: make(chan report, 64), topology: make(map[string]string),
		status: make(map[string]string), shown: make(map[string]bool)}
	defer s.stopAll()

	fmt.Printf("Trellis reference scenario: %s topology, one process per node on 127.0.0.1\n\n", f.strategy)
	steps := []struct {
		what, start, ring string
	}{
		{"LeaderNode starts alone", "LeaderNode", "LeaderNode"},
		{"Node1 joins", "Node1", "LeaderNode -- Node1 -- LeaderNode"},
		{"Node2 joins", "Node2", "LeaderNode -- Node1 -- Node2 -- LeaderNode"},
		{"Node3 joins", "Node3", "LeaderNode -- Node1 -- Node2 -- Node3 -- LeaderNode"},
	}
	for i, st := range steps {
		fmt.Printf("%d. %s\n", i+1, st.what)
		if err := s.start(st.start, i == 0); err != nil {
			return err
		}
		if err := s.settle(st.ring); err != nil {
			return err
		}
	}

	// On the ring, Node2 is two hops from LeaderNode; other topologies
	// place it elsewhere (the call's reply says how many hops it crossed).
	far, healed := ", two hops away", "the healed ring"
	if f.strategy != "ring" {
		far, healed = "", "the healed "+f.strategy
	}
	fmt.Printf("%d. LeaderNode calls Node2%s\n", len(steps)+1, far)
	if err := s.call("LeaderNode", "Node2"); err != nil {
		return err
	}

	fmt.Printf("%d. Node2 is killed (SIGKILL)\n", len(steps)+2)
	killed := time.Now()
	if err := s.kill("Node2"); err != nil {
		return err
	}
	if err := s.settle("LeaderNode -- Node1 -- Node3 -- LeaderNode"); err != nil {
		return err
	}
	fmt.Printf("   healed %v after the kill (failure detection, then the leader's cascade)\n", time.Since(killed).Round(time.Millisecond))

	fmt.Printf("%d. LeaderNode calls Node3 on %s\n", len(steps)+3, healed)
	if err := s.call("LeaderNode", "Node3"); err != nil {
		return err
	}
	if f.status != "" {
		fmt.Printf("%d. LeaderNode's status page\n", len(steps)+4)
		if err := s.checkStatus("LeaderNode", 3); err != nil {
			return err
		}
	}
	if hold {
		fmt.Println("\nThe nodes stay up; interrupt (Ctrl-C) to stop them.")
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		<-ctx.Done()
		stop()
	}
	fmt.Println("\nStopping every process.")
	return nil
}

func freeUDP() (string, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

// start starts the node called name; the first node binds the seed address.
func (s *scenario) start(name string, first bool) error {
	gossip := "127.0.0.1:0"
	if first {
		gossip = s.flags.seed
	}
	cmd := exec.Command(s.exe, "-node", name, "-control", "-gossip", gossip, "-seed", s.flags.seed,
		"-topology", s.flags.strategy, "-key", s.flags.key, "-membership", s.flags.backend)
	if st := s.flags.status; st != "" {
		if !first { // the first node serves on the address given, the others on free ports
			host, _, err := net.SplitHostPort(st)
			if err != nil {
				return fmt.Errorf("-status: %w", err)
			}
			st = net.JoinHostPort(host, "0")
		}
		cmd.Args = append(cmd.Args, "-status", st)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	s.procs = append(s.procs, p)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.reports <- report{p, sc.Text()}
		}
		cmd.Wait()
		close(p.exited)
	}()
	fmt.Printf("   started %s (pid %d)\n", name, cmd.Process.Pid)
	return nil
}

// live returns the processes not killed.
func (s *scenario) live() []*proc {
	var ps []*proc
	for _, p := range s.procs {
		if !p.dead {
			ps = append(ps, p)
		}
	}
	return ps
}

// settle waits until every live node reports the same topology with all
// live nodes in it, prints it, and checks it against the reference ring
// when the strategy is the ring.
func (s *scenario) settle(ring string) error {
	timeout := time.After(15 * time.Second)
	for {
		if line, ok := s.agreed(); ok {
			epoch, diagram := splitTopology(line)
			fmt.Printf("   topology (epoch %s): %s\n", epoch, strings.ReplaceAll(diagram, "; ", "\n                      "))
			for _, p := range s.live() {
				if url, ok := s.status[p.name]; ok && !s.shown[p.name] {
					s.shown[p.name] = true
					fmt.Printf("   %s's status page: %s\n", p.name, url)
				}
			}
			if s.flags.strategy == "ring" && diagram != ring {
				return fmt.Errorf("topology %q, the reference scenario expects %q", diagram, ring)
			}
			return nil
		}
		select {
		case r := <-s.reports:
			s.note(r)
		case <-timeout:
			return fmt.Errorf("the nodes did not agree on a topology within 15 s: %v", s.topology)
		}
	}
}

func (s *scenario) note(r report) {
	if rest, ok := strings.CutPrefix(r.line, "TOPOLOGY "+r.proc.name+" "); ok {
		s.topology[r.proc.name] = rest
	}
	if url, ok := strings.CutPrefix(r.line, "STATUS "+r.proc.name+" "); ok {
		s.status[r.proc.name] = url
	}
}

// checkStatus reads the status of the node called name from its status
// page until it shows members live members in a topology of as many edges
// (a ring) and the node ready, for at most 5 s, and prints what it shows.
func (s *scenario) checkStatus(name string, members int) error {
	url, ok := s.status[name]
	if !ok {
		return fmt.Errorf("%s printed no status page URL", name)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		snap, err := getStatus(url + "status.json")
		if err == nil && len(snap.Members) == members && len(snap.Edges) == members && snap.Ready {
			fmt.Printf("   %sstatus.json: epoch %d, %d members (leader %s), %d edges, ready\n",
				url, snap.Epoch, len(snap.Members), leaderName(snap), len(snap.Edges))
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%d members, %d edges, ready %v (%s); want %d, %d, ready",
					len(snap.Members), len(snap.Edges), snap.Ready, snap.NotReady, members, members)
			}
			return fmt.Errorf("%s's status page %s: %w", name, url, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a web page: no event to await
	}
}

// leaderName returns the name of the leader a status shows.
func leaderName(snap status.Snapshot) string {
	for _, m := range snap.Members {
		if m.Leader {
			return m.Name
		}
	}
	return "none"
}

// getStatus fetches and decodes a status page's JSON.
func getStatus(url string) (status.Snapshot, error) {
	var snap status.Snapshot
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return snap, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return snap, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&snap); err != nil {
		return snap, fmt.Errorf("GET %s: %w", url, err)
	}
	return snap, nil
}

// agreed reports the topology line all live nodes share, if they share one
// that has them all as members.
func (s *scenario) agreed() (string, bool) {
	live := s.live()
	var line string
	for i, p := range live {
		l, ok := s.topology[p.name]
		if !ok || (i > 0 && l != line) {
			return "", false
		}
		line = l
	}
	for _, f := range strings.Fields(line) {
		if n, ok := strings.CutPrefix(f, "members="); ok {
			return line, n == strconv.Itoa(len(live))
		}
	}
	return "", false
}

// splitTopology splits "epoch=E members=N leader=L diagram" into E and diagram.
func splitTopology(line string) (epoch, diagram string) {
	f := strings.SplitN(line, " ", 4)
	if len(f) < 4 {
		return "?", line
	}
	return strings.TrimPrefix(f[0], "epoch="), f[3]
}

func (s *scenario) find(name string) *proc {
	for _, p := range s.procs {
		if p.name == name && !p.dead {
			return p
		}
	}
	return nil
}

// call asks node from to call node to and prints the answer.
func (s *scenario) call(from, to string) error {
	p := s.find(from)
	if p == nil {
		return fmt.Errorf("no live node %s", from)
	}
	if _, err := fmt.Fprintf(p.stdin, "call %s\n", to); err != nil {
		return err
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-s.reports:
			s.note(r)
			if r.proc == p && strings.HasPrefix(r.line, "CALL ") {
				fmt.Printf("   %s\n", strings.TrimPrefix(r.line, "CALL "))
				if strings.Contains(r.line, "failed") {
					return errors.New("the call failed")
				}
				return nil
			}
		case <-timeout:
			return fmt.Errorf("%s did not answer the call command", from)
		}
	}
}

// kill kills a node's process with SIGKILL, as a crash would.
func (s *scenario) kill(name string) error {
	p := s.find(name)
	if p == nil {
		return fmt.Errorf("no live node %s", name)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		return err
	}
	for waiting := true; waiting; {
		select {
		case <-p.exited:
			waiting = false
		case r := <-s.reports:
			s.note(r)
		}
	}
	p.dead = true
	delete(s.topology, name)
	return nil
}

// stopAll asks every live process to quit and waits for it, killing those
// that do not exit within 5 s.
func (s *scenario) stopAll() {
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep reading what the processes print, so none blocks
		for {
			select {
			case <-s.reports:
			case <-stop:
				return
			}
		}
	}()
	for _, p := range s.live() {
		fmt.Fprintln(p.stdin, "quit")
		p.stdin.Close()
	}
	deadline := time.After(5 * time.Second)
	for _, p := range s.live() {
		select {
		case <-p.exited:
		case <-deadline:
			p.cmd.Process.Kill()
			<-p.exited
		}
		p.dead = true
	}
}

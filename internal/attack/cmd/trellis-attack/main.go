// Command trellis-attack attacks a Trellis node with each attack of package
// attack and measures what it costs the node and a legitimate caller.
// scripts/attack.sh builds and runs it; it is a test tool, not a Trellis
// command.
//
//	trellis-attack run [-duration 5s] [-strict]
//
// starts two processes of itself: a target (a runtime node serving
// targetsvc.Target, with a membership node) and a legitimate caller (a
// member that calls Echo every 5 ms and holds a Counter the target exported
// to it). For each attack it resets the target's peak RSS
// (/proc/PID/clear_refs), runs the attack for the duration, and prints the
// target's peak RSS, its peak goroutine count, the p99 and maximum of the
// caller's calls during the attack, the time the target showed the victim
// at a forged address, and what the target did. With -strict it exits 1 if
// any row is over budget (RSS over 256 MiB or p99 over 100 ms).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trellisrpc/trellis/internal/attack"
	"github.com/trellisrpc/trellis/internal/attack/targetsvc"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/membership"
	"github.com/trellisrpc/trellis/nodeid"
	trellis "github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/transport"
)

const (
	label       = "attack"
	budgetRSS   = 256 << 20
	budgetP99   = 100 * time.Millisecond
	callerAddr  = "caller:legit"
	statsPeriod = 20 * time.Millisecond
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: trellis-attack run|target|caller [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "target":
		err = target(os.Args[2:])
	case "caller":
		err = caller(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trellis-attack:", err)
		os.Exit(1)
	}
}

// --- configuration shared by the three processes --------------------------------

// rpcConfig is the configuration of the runtime nodes of the target, the
// caller and the attacker as a member.
func rpcConfig(name, addr string, key []byte, log *slog.Logger) trellis.Config {
	return trellis.Config{Name: name, Addr: addr, Label: label, Keyring: ringOf(key), Logger: log}
}

// ringOf returns a keyring holding key, or nil for a key that keyring.New
// refuses: the node's or connection's configuration is then refused with
// transport.ErrNoAuth.
func ringOf(key []byte) *keyring.Ring {
	r, err := keyring.New(key)
	if err != nil {
		return nil
	}
	return r
}

// transportConfig is how the attacker dials as a member.
func transportConfig(key []byte) transport.Config {
	return transport.Config{Self: nodeid.New(), Label: label, Keyring: ringOf(key)}
}

func memberConfig(id nodeid.ID, name, addr string, key []byte, seeds []string) membership.Config {
	return membership.Config{ID: id, Name: name, Addr: addr, Keys: [][]byte{key}, ClusterLabel: label,
		DisableMulticast: true, BindAddr: "127.0.0.1:0", Seeds: seeds}
}

// --- target -------------------------------------------------------------------

type targetInfo struct {
	Addr   string `json:"addr"`
	ID     string `json:"id"`
	Member string `json:"member"`
}

func target(args []string) error {
	fs := flag.NewFlagSet("target", flag.ExitOnError)
	keyHex := fs.String("key", "", "cluster key, hex")
	fs.Parse(args)
	key, err := hex.DecodeString(*keyHex)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := trellis.NewNode(rpcConfig("target", "127.0.0.1:0", key, log))
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	if err := targetsvc.RegisterTarget(n, targetsvc.Impl{}); err != nil {
		return err
	}
	m, err := membership.New(memberConfig(n.ID(), "target", n.Addr().String(), key, []string{"127.0.0.1:1"}))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Close()
	info, _ := json.Marshal(targetInfo{Addr: n.Addr().String(), ID: n.ID().String(), Member: m.Local().PacketAddr.String()})
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "%s\n", info)
	out.Flush()
	t := time.NewTicker(statsPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// stats goroutines=N members=id@addr,...
		var ms []string
		for _, mb := range m.Members() {
			if !mb.Local {
				ms = append(ms, mb.ID.String()+"@"+mb.Addr)
			}
		}
		fmt.Fprintf(out, "stats %d %s\n", runtime.NumGoroutine(), strings.Join(ms, ","))
		out.Flush()
	}
}

// --- legitimate caller -----------------------------------------------------------

func caller(args []string) error {
	fs := flag.NewFlagSet("caller", flag.ExitOnError)
	keyHex := fs.String("key", "", "cluster key, hex")
	addr := fs.String("target", "", "target RPC address")
	member := fs.String("member", "", "target membership address")
	fs.Parse(args)
	key, err := hex.DecodeString(*keyHex)
	if err != nil {
		return err
	}
	n, err := trellis.NewNode(rpcConfig("caller", "", key, nil))
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	m, err := membership.New(memberConfig(n.ID(), "caller", callerAddr, key, []string{*member}))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	id, err := n.Connect(cctx, *addr)
	cancel()
	if err != nil {
		return err
	}
	p := targetsvc.NewTargetProxy(n, id)
	counter, err := p.NewCounter(ctx, 0) // a reference the target exported to this node
	if err != nil {
		return fmt.Errorf("NewCounter: %w", err)
	}
	fmt.Printf("{\"id\":%q}\n", n.ID().String())

	var counterMu sync.Mutex
	var mu sync.Mutex
	var lat []time.Duration
	var errs int
	var lastErr error
	go func() {
		for ctx.Err() == nil {
			start := time.Now()
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := p.Echo(cctx, "legit")
			cancel()
			d := time.Since(start)
			if errors.Is(err, trellis.ErrUnreachable) {
				// A legitimate client reconnects and gets a new counter.
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				if _, cerr := n.Connect(cctx, *addr); cerr == nil {
					if c, cerr := p.NewCounter(cctx, 0); cerr == nil {
						counterMu.Lock()
						counter = c
						counterMu.Unlock()
					}
				}
				cancel()
			}
			mu.Lock()
			lat = append(lat, d)
			if err != nil {
				errs++
				lastErr = err
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "mark":
			mu.Lock()
			lat, errs, lastErr = lat[:0], 0, nil
			mu.Unlock()
			fmt.Println("marked")
		case "report":
			mu.Lock()
			l := slices.Clone(lat)
			e, le := errs, lastErr
			mu.Unlock()
			slices.Sort(l)
			var p99, mx time.Duration
			if len(l) > 0 {
				p99, mx = l[(len(l)*99)/100], l[len(l)-1]
			}
			counterMu.Lock()
			c := counter
			counterMu.Unlock()
			if _, err := c.Add(ctx, 1); err != nil && le == nil {
				le = fmt.Errorf("the victim's counter: %w", err)
			}
			msg := ""
			if le != nil {
				msg = strings.ReplaceAll(le.Error(), " ", "_")
			}
			fmt.Printf("report %d %d %d %d %s\n", len(l), e, p99, mx, msg)
		}
	}
	return nil
}

// --- driver -------------------------------------------------------------------------

type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func start(self string, stderr io.Writer, args ...string) (*proc, error) {
	cmd := exec.Command(self, args...)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, stdin: in, lines: make(chan string, 1024)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			p.lines <- s.Text()
		}
		close(p.lines)
	}()
	return p, nil
}

func (p *proc) stop() {
	p.stdin.Close() // the caller reads commands until its input ends
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// line returns the next line of p's output that starts with prefix.
func (p *proc) line(prefix string, within time.Duration) (string, error) {
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return "", errors.New("process exited")
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-deadline:
			return "", fmt.Errorf("no %q line within %v", prefix, within)
		}
	}
}

// countingWriter counts the lines a process logs.
type countingWriter struct {
	mu    sync.Mutex
	lines int
	bytes int
	w     io.Writer
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.lines += strings.Count(string(b), "\n")
	c.bytes += len(b)
	c.mu.Unlock()
	if c.w != nil {
		c.w.Write(b)
	}
	return len(b), nil
}

func (c *countingWriter) snapshot() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines, c.bytes
}

type row struct {
	name       string
	rss        uint64
	goroutines int
	calls      int
	errors     int
	p99, max   time.Duration
	forged     time.Duration
	logLines   int
	outcome    string
	err        string
}

// session is a target and a legitimate caller, started afresh for each
// attack so that no attack inherits another's damage.
type session struct {
	tp, cp *proc
	tlog   *countingWriter
	tg     *attack.Target

	mu     sync.Mutex
	maxG   int
	forged time.Duration
	seen   bool
}

func newSession(self string, key []byte, logTo io.Writer) (*session, error) {
	keyHex := hex.EncodeToString(key)
	s := &session{tlog: &countingWriter{w: logTo}}
	var err error
	if s.tp, err = start(self, s.tlog, "target", "-key", keyHex); err != nil {
		return nil, err
	}
	l, err := s.tp.line("{", 10*time.Second)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("target: %w", err)
	}
	var ti targetInfo
	if err := json.Unmarshal([]byte(l), &ti); err != nil {
		s.stop()
		return nil, err
	}
	if s.cp, err = start(self, os.Stderr, "caller", "-key", keyHex, "-target", ti.Addr, "-member", ti.Member); err != nil {
		s.stop()
		return nil, err
	}
	l, err = s.cp.line("{", 10*time.Second)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("caller: %w", err)
	}
	var ci struct{ ID string }
	if err := json.Unmarshal([]byte(l), &ci); err != nil {
		s.stop()
		return nil, err
	}
	tid, err1 := nodeid.Parse(ti.ID)
	victim, err2 := nodeid.Parse(ci.ID)
	maddr, err3 := netip.ParseAddrPort(ti.Member)
	if err := errors.Join(err1, err2, err3); err != nil {
		s.stop()
		return nil, err
	}
	s.tg = &attack.Target{Addr: ti.Addr, ID: tid, Label: label, MemberAddr: maddr, Key: key, Victim: victim,
		Transport: transportConfig(key),
		NewNode: func(name string) (*trellis.Node, error) {
			return trellis.NewNode(rpcConfig(name, "", key, nil))
		}}
	// The target's stats: its goroutines, and where it sees the victim.
	go func() {
		for l := range s.tp.lines {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "stats" {
				continue
			}
			g, _ := strconv.Atoi(f[1])
			members := ""
			if len(f) > 2 {
				members = f[2]
			}
			s.mu.Lock()
			s.maxG = max(s.maxG, g)
			if strings.Contains(members, ci.ID+"@"+callerAddr) {
				s.seen = true
			} else if s.seen {
				s.forged += statsPeriod
			}
			s.mu.Unlock()
		}
	}()
	// Wait until the target sees the caller as a member.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		ok := s.seen
		s.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("the target never saw the caller as a member")
		}
	}
	return s, nil
}

func (s *session) stop() {
	if s.cp != nil {
		s.cp.stop()
	}
	if s.tp != nil {
		s.tp.stop()
	}
}

// measure runs a for d and returns its row.
func (s *session) measure(a attack.Attack, d time.Duration) (row, error) {
	pid := s.tp.cmd.Process.Pid
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) // resets VmHWM
	fmt.Fprintln(s.cp.stdin, "mark")
	if _, err := s.cp.line("marked", 5*time.Second); err != nil {
		return row{}, fmt.Errorf("caller: %w", err)
	}
	s.mu.Lock()
	s.maxG, s.forged = 0, 0
	s.mu.Unlock()
	l0, _ := s.tlog.snapshot()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	outcome, aerr := a.Run(ctx, s.tg)
	<-ctx.Done()
	cancel()
	time.Sleep(200 * time.Millisecond) // the last effects
	r := row{name: a.Name, outcome: outcome}
	if aerr != nil {
		r.err = aerr.Error()
	}
	r.rss = procStatus(pid, "VmHWM")
	l1, _ := s.tlog.snapshot()
	r.logLines = l1 - l0
	s.mu.Lock()
	r.goroutines, r.forged = s.maxG, s.forged
	s.mu.Unlock()
	fmt.Fprintln(s.cp.stdin, "report")
	rep, err := s.cp.line("report", 10*time.Second)
	if err != nil {
		return row{}, fmt.Errorf("caller: %w", err)
	}
	var p99, mx int64
	var msg string
	fmt.Sscanf(rep, "report %d %d %d %d %s", &r.calls, &r.errors, &p99, &mx, &msg)
	r.p99, r.max = time.Duration(p99), time.Duration(mx)
	if msg != "" {
		r.outcome += "; caller's last error: " + strings.ReplaceAll(msg, "_", " ")
	}
	return r, nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	duration := fs.Duration("duration", 5*time.Second, "how long each attack runs")
	strict := fs.Bool("strict", false, "exit 1 if any attack puts the node over budget")
	only := fs.String("only", "", "comma-separated attacks to run (default all)")
	logs := fs.String("logs", "", "file for the targets' logs (default discarded)")
	fs.Parse(args)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	var logTo io.Writer
	if *logs != "" {
		f, err := os.Create(*logs)
		if err != nil {
			return err
		}
		defer f.Close()
		logTo = f
	}
	attacks := append([]attack.Attack{{Name: "baseline", Run: func(ctx context.Context, _ *attack.Target) (string, error) {
		<-ctx.Done()
		return "no attack", nil
	}}}, attack.All()...)
	if *only != "" {
		want := strings.Split(*only, ",")
		attacks = slices.DeleteFunc(attacks, func(a attack.Attack) bool { return !slices.Contains(want, a.Name) })
	}
	var rows []row
	for _, a := range attacks {
		fmt.Fprintf(os.Stderr, "-- %s\n", a.Name)
		if logTo != nil {
			fmt.Fprintf(logTo, "-- %s\n", a.Name)
		}
		s, err := newSession(self, key, logTo)
		if err != nil {
			return err
		}
		r, err := s.measure(a, *duration)
		s.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", a.Name, err)
		}
		rows = append(rows, r)
	}
	over := printTable(os.Stdout, rows, *duration)
	if over > 0 {
		if *strict {
			return fmt.Errorf("%d attacks put the node over budget (RSS %d MiB, p99 %v)", over, budgetRSS>>20, budgetP99)
		}
		fmt.Printf("\n%d attacks over budget (report only: run with -strict to fail)\n", over)
	}
	return nil
}

func printTable(w io.Writer, rows []row, d time.Duration) int {
	over := 0
	fmt.Fprintf(w, "\nEach attack ran %v against a fresh target node; budget: peak RSS ≤ %d MiB, legitimate p99 ≤ %v.\n", d, budgetRSS>>20, budgetP99)
	fmt.Fprintf(w, "peak RSS: the target's VmHWM; gorout: its peak goroutines; p99/max legit: the legitimate caller's Echo calls\n")
	fmt.Fprintf(w, "(1 s deadline); forged: how long the target did not show the victim at its own address; log: lines it logged.\n\n")
	fmt.Fprintf(w, "%-17s %9s %6s %10s %10s %12s %8s %7s  %s\n", "attack", "peak RSS", "gorout", "p99 legit", "max legit", "calls/errors", "forged", "log", "verdict / what the target did")
	for _, r := range rows {
		verdict := "ok"
		if r.rss > budgetRSS || r.p99 > budgetP99 {
			verdict, over = "OVER", over+1
		}
		if r.err != "" {
			verdict = "ERROR " + r.err
		}
		fmt.Fprintf(w, "%-17s %6d MiB %6d %10s %10s %6d/%-5d %8s %7d  %s: %s\n", r.name, r.rss>>20, r.goroutines,
			r.p99.Round(100*time.Microsecond), r.max.Round(100*time.Microsecond), r.calls, r.errors,
			r.forged.Round(time.Millisecond), r.logLines, verdict, r.outcome)
	}
	return over
}

// procStatus returns a field of /proc/pid/status in bytes (kB fields).
func procStatus(pid int, field string) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.ParseUint(f[1], 10, 64)
				return v << 10
			}
		}
	}
	return 0
}

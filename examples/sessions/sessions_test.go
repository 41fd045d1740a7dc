package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	chaosDuration = flag.Duration("chaos.duration", 12*time.Second, "how long TestNoAcknowledgedWriteLost runs its faults")
	chaosSessions = flag.Int("chaos.sessions", 8, "clients (one session each) in TestNoAcknowledgedWriteLost")
	serverLogs    = flag.Bool("serverlogs", false, "servers log what they do (shown when a test fails)")
)

// buildExample builds this example into a temporary directory once.
var buildExample = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "trellis-sessions-")
	if err != nil {
		return "", err
	}
	exe := filepath.Join(dir, "sessions")
	out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return exe, nil
})

func exampleBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts server processes")
	}
	exe, err := buildExample()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestScenario(t *testing.T) {
	exe := exampleBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	// The scenario's server processes inherit its output: if it is killed
	// at the deadline they may hold the pipe open, and without WaitDelay
	// CombinedOutput would wait for them forever instead of failing.
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("12 visits acknowledged, counter 12: no increment was lost.")) {
		t.Fatalf("unexpected output:\n%s", out)
	}
}

// startFarm starts n server processes and waits until they agree.
func startFarm(t *testing.T, n int) *farm {
	t.Helper()
	exe := exampleBinary(t) // before the clock starts: building takes long on a busy machine
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs bytes.Buffer
	fm, err := newFarm(exe, serverFlags{key: "sessions-test-cluster-key-0123456789", verbose: *serverLogs}, n, &lockedWriter{w: &logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fm.stopAll()
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	for i := range n {
		if _, err := fm.start(ctx, i, fmt.Sprintf("web%d", i+1), ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fm.settle(ctx); err != nil {
		t.Fatal(err)
	}
	return fm
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestNoAcknowledgedWriteLost has clients increment their own sessions
// through random servers while servers are killed with SIGKILL (never two
// neighbours within the re-replication time: one at a time, after the farm
// agreed again), restarted, and stopped gracefully. At the end every
// session's counter equals the increments acknowledged to its client.
func TestNoAcknowledgedWriteLost(t *testing.T) {
	const servers = 4
	fm := startFarm(t, servers)
	ctx, cancel := context.WithTimeout(context.Background(), *chaosDuration+20*time.Second)
	defer cancel()

	stop := make(chan struct{})
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards fm.procs while clients pick servers
	pick := func(r *rand.Rand) *proc {
		mu.Lock()
		defer mu.Unlock()
		live := fm.live()
		return live[r.IntN(len(live))]
	}
	var once sync.Once
	stopClients := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer stopClients() // before the farm stops, also on t.Fatal
	clients := make([]*browser, *chaosSessions)
	errs := make(chan error, len(clients))
	for i := range clients {
		clients[i] = newBrowser()
		wg.Add(1)
		go func(b *browser, seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				vctx, vcancel := context.WithTimeout(ctx, 20*time.Second)
				_, _, err := b.visit(vctx, pick(r))
				vcancel()
				if err != nil {
					errs <- fmt.Errorf("%v: %w", time.Since(start).Round(time.Millisecond), err)
					return
				}
			}
		}(clients[i], uint64(i))
	}

	// Faults, one at a time, each followed by the farm's agreement.
	r := rand.New(rand.NewPCG(42, 42))
	deadline := start.Add(*chaosDuration)
	faults := 0
	for time.Now().Before(deadline) {
		mu.Lock()
		i := r.IntN(servers)
		p := fm.procs[i]
		mu.Unlock()
		mu.Lock() // clients pick among live servers only
		p.dead = true
		mu.Unlock()
		what := "killed"
		if r.IntN(3) == 0 {
			what = "stopped"
			sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
			err := p.stop(sctx)
			scancel()
			if err != nil {
				t.Fatal(err)
			}
		} else {
			p.kill()
		}
		if err := fm.replicated(ctx); err != nil {
			for _, p := range fm.live() {
				p.cmd.Process.Signal(syscall.SIGQUIT)
				<-p.exited
			}
			t.Fatal(err)
		}
		t.Logf("%v: %s %s", time.Since(start).Round(time.Millisecond), what, p.name)
		mu.Lock()
		_, err := fm.start(ctx, i, p.name, p.url[len("http://"):len(p.url)-1])
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if err := fm.replicated(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("%v: restarted %s", time.Since(start).Round(time.Millisecond), p.name)
		faults++
	}
	stopClients()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Every session's counter, read back through every server, equals
	// what its client saw acknowledged.
	total := 0
	for i, b := range clients {
		for _, p := range fm.live() {
			got, err := b.read(ctx, p)
			if err != nil {
				t.Fatalf("client %d: reading through %s: %v", i, p.name, err)
			}
			if got != b.count {
				t.Fatalf("client %d: counter %d through %s, %d increments acknowledged", i, got, p.name, b.count)
			}
		}
		total += b.count
	}
	t.Logf("%d faults, %d sessions, %d increments acknowledged, none lost", faults, len(clients), total)
}

// read returns the session's counter as loaded by p, without a visit.
func (b *browser) read(ctx context.Context, p *proc) (int, error) {
	for tries := 0; ; tries++ {
		req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"api/visit?peek=1", nil)
		resp, err := b.client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var rep visitReply
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &rep) == nil {
				return rep.Count, nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if tries == 20 || ctx.Err() != nil {
			return 0, err
		}
		time.Sleep(100 * time.Millisecond) // retry backoff
	}
}

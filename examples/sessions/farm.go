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
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A proc is one web server process.
type proc struct {
	name   string
	url    string // http://127.0.0.1:port/
	status string // the cluster status page, or "-"
	gossip string
	cmd    *exec.Cmd
	exited chan struct{}
	left   chan struct{} // closed when it reports a graceful leave
	dead   bool
}

// A farm is a set of web server processes started from this executable.
type farm struct {
	exe   string
	flags serverFlags
	seeds []string
	procs []*proc
	out   io.Writer // where the servers' stderr goes
}

func newFarm(exe string, f serverFlags, n int, stderr io.Writer) (*farm, error) {
	fm := &farm{exe: exe, flags: f, out: stderr}
	for range n {
		addr, err := freeUDP()
		if err != nil {
			return nil, err
		}
		fm.seeds = append(fm.seeds, addr)
	}
	return fm, nil
}

func freeUDP() (string, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

func freeTCP() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start starts server i (its gossip address is the i-th seed), reusing the
// HTTP address of an earlier life if it had one.
func (fm *farm) start(ctx context.Context, i int, name, httpAddr string) (*proc, error) {
	if httpAddr == "" {
		var err error
		if httpAddr, err = freeTCP(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(fm.exe, "-node", name, "-http", httpAddr, "-gossip", fm.seeds[i],
		"-seeds", strings.Join(fm.seeds, ","), "-key", fm.flags.key)
	if fm.flags.verbose {
		cmd.Args = append(cmd.Args, "-v")
	}
	if fm.flags.status != "" {
		cmd.Args = append(cmd.Args, "-status", "127.0.0.1:0")
	}
	cmd.Stderr = fm.out
	cmd.SysProcAttr = procAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, gossip: fm.seeds[i], cmd: cmd, exited: make(chan struct{}), left: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) >= 5 && f[0] == "READY":
				p.status = strings.TrimPrefix(f[4], "status=")
				ready <- strings.TrimPrefix(f[2], "http=")
			case len(f) >= 2 && f[0] == "LEFT":
				close(p.left)
			}
		}
	}()
	go func() { cmd.Wait(); close(p.exited) }()
	select {
	case p.url = <-ready:
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before it was ready", name)
	case <-ctx.Done():
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s: not ready: %w", name, ctx.Err())
	}
	if i < len(fm.procs) {
		fm.procs[i] = p
	} else {
		fm.procs = append(fm.procs, p)
	}
	return p, nil
}

// kill kills p with SIGKILL and waits for it to exit.
func (p *proc) kill() {
	if !p.dead {
		p.dead = true
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// stop stops p with SIGTERM: it hands its sessions over and leaves.
func (p *proc) stop(ctx context.Context) error {
	if !p.dead {
		p.dead = true
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		// SIGQUIT makes the Go runtime print every goroutine's stack to
		// the server's stderr: what it was waiting for.
		p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		return fmt.Errorf("%s did not stop: %w", p.name, ctx.Err())
	}
}

func (fm *farm) live() []*proc {
	var l []*proc
	for _, p := range fm.procs {
		if !p.dead {
			l = append(l, p)
		}
	}
	return l
}

func (fm *farm) stopAll() {
	var wg sync.WaitGroup
	for _, p := range fm.live() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.kill()
		}()
	}
	wg.Wait()
}

// status is what a server's /api/status answers.
type status struct {
	Node    string   `json:"node"`
	Epoch   uint64   `json:"epoch"`
	Members []string `json:"members"`
	Ring    string   `json:"ring"`
	Owned   int      `json:"owned"`
	Copies  int      `json:"copies"`
}

func getStatus(ctx context.Context, url string) (status, error) {
	var st status
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"api/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// settle waits until every live server has committed the same topology of
// exactly the live servers, and returns it.
func (fm *farm) settle(ctx context.Context) (status, error) {
	live := fm.live()
	tick := time.NewTicker(25 * time.Millisecond) // polling other processes: no event to await
	defer tick.Stop()
	var why string
	for {
		st, ok := fm.agreed(ctx, live)
		if ok {
			return st, nil
		}
		why = fmt.Sprintf("%s: epoch %d, %v", st.Node, st.Epoch, st.Members)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return status{}, fmt.Errorf("servers did not agree on a topology (last seen %s): %w", why, ctx.Err())
		}
	}
}

func (fm *farm) agreed(ctx context.Context, live []*proc) (status, bool) {
	var first status
	for i, p := range live {
		st, err := getStatus(ctx, p.url)
		if err != nil {
			return status{Node: p.name}, false
		}
		if i == 0 {
			first = st
		}
		if len(st.Members) != len(live) || st.Epoch != first.Epoch {
			return st, false
		}
	}
	return first, true
}

// errStatus is a visit's non-200 answer.
var errStatus = errors.New("visit refused")

// replicated waits until the servers agree on a topology and every live
// session has its full count of copies: each owner's neighbours (two in a
// ring of three or more) hold one.
func (fm *farm) replicated(ctx context.Context) error {
	if _, err := fm.settle(ctx); err != nil {
		return err
	}
	live := fm.live()
	backups := min(2, len(live)-1)
	tick := time.NewTicker(25 * time.Millisecond) // polling other processes: no event to await
	defer tick.Stop()
	for {
		owned, copies := 0, 0
		var err error
		for _, p := range live {
			var st status
			if st, err = getStatus(ctx, p.url); err != nil {
				break
			}
			owned += st.Owned
			copies += st.Copies
		}
		if err == nil && copies >= backups*owned {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("sessions not fully replicated (%d owned, %d copies): %w", owned, copies, ctx.Err())
		}
	}
}

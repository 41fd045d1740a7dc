package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// A browser visits the farm's pages with one session cookie, as a browser
// would (cookies are per host, so the servers on 127.0.0.1 share it).
type browser struct {
	client *http.Client
	count  int // increments acknowledged
}

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{client: &http.Client{Jar: jar, Timeout: 5 * time.Second}}
}

// visit increments the session's counter through p. The increment is
// idempotent (it names the count it expects), so a visit that failed is
// retried until it is acknowledged or ctx ends.
func (b *browser) visit(ctx context.Context, p *proc) (visitReply, int, error) {
	for tries := 1; ; tries++ {
		rep, err := b.once(ctx, p)
		if err == nil {
			if rep.Count != b.count+1 {
				return rep, tries, fmt.Errorf("counter %d after %d acknowledged increments: an increment was lost", rep.Count, b.count)
			}
			b.count++
			return rep, tries, nil
		}
		select {
		case <-ctx.Done():
			return rep, tries, fmt.Errorf("visit %s: %w (last: %v)", p.name, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond): // backoff before a retry
		}
	}
}

func (b *browser) once(ctx context.Context, p *proc) (visitReply, error) {
	var rep visitReply
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%sapi/visit?expect=%d", p.url, b.count), nil)
	resp, err := b.client.Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("%w: %s: %s", errStatus, resp.Status, strings.TrimSpace(string(body)))
	}
	return rep, json.Unmarshal(body, &rep)
}

// runScenario starts the farm and plays the scenario (or, with serve, keeps
// the farm running).
func runScenario(f serverFlags, serve bool) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if f.servers < 3 {
		return fmt.Errorf("-servers %d: the scenario needs at least 3", f.servers)
	}
	fm, err := newFarm(exe, f, f.servers, os.Stderr)
	if err != nil {
		return err
	}
	defer fm.stopAll()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	fmt.Printf("Trellis sessions: %d web servers on 127.0.0.1 in a ring; each session is replicated to its owner's two neighbours\n\n", f.servers)
	for i := range f.servers {
		if _, err := fm.start(ctx, i, fmt.Sprintf("web%d", i+1), ""); err != nil {
			return err
		}
	}
	st, err := fm.settle(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("1. The farm is up: %s\n", st.Ring)
	if serve {
		for _, p := range fm.procs {
			fmt.Printf("   %s  %s", p.name, p.url)
			if p.status != "-" {
				fmt.Printf("   (cluster status: %s)", p.status)
			}
			fmt.Println()
		}
		fmt.Println("\nOpen any of them; every page load counts a visit in your session. Ctrl-C stops the farm.")
		sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		<-sig.Done()
		return nil
	}

	b := newBrowser()
	say := func(p *proc) (visitReply, error) {
		rep, tries, err := b.visit(ctx, p)
		if err != nil {
			return rep, err
		}
		retried := ""
		if tries > 1 {
			retried = fmt.Sprintf(" (after %d tries)", tries)
		}
		fmt.Printf("   visit %-2d on %s: counter %d, owner %s, copies on %s%s\n", b.count, p.name, rep.Count, rep.Owner, strings.Join(rep.Backups, ", "), retried)
		return rep, nil
	}
	fmt.Println("2. A browser visits web1 three times, then each other server")
	var rep visitReply
	for _, i := range []int{0, 0, 0, 1, 2, 3} {
		if rep, err = say(fm.procs[i%len(fm.procs)]); err != nil {
			return err
		}
	}
	owner := fm.byName(rep.Owner)
	if owner == nil {
		return fmt.Errorf("the owner %q is not one of the servers", rep.Owner)
	}
	fmt.Printf("3. The session's owner, %s, is killed (SIGKILL)\n", owner.name)
	killed := time.Now()
	owner.kill()
	next := fm.live()[0]
	if rep, err = say(next); err != nil {
		return err
	}
	fmt.Printf("   the session answered again on %s %v after the kill\n", next.name, time.Since(killed).Round(time.Millisecond))
	if st, err = fm.settle(ctx); err != nil {
		return err
	}
	fmt.Printf("   ring healed: %s\n", st.Ring)
	for _, p := range fm.live() {
		if _, err = say(p); err != nil {
			return err
		}
	}
	newOwner := fm.byName(rep.Owner)
	if newOwner == nil || newOwner.dead {
		newOwner = fm.live()[0]
	}
	fmt.Printf("4. The new owner, %s, is stopped gracefully (SIGTERM): it hands its sessions to a neighbour first\n", newOwner.name)
	if err := newOwner.stop(ctx); err != nil {
		return err
	}
	for _, p := range fm.live() {
		if _, err = say(p); err != nil {
			return err
		}
	}
	fmt.Printf("\n%d visits acknowledged, counter %d: no increment was lost.\n", b.count, b.count)
	return nil
}

func (fm *farm) byName(name string) *proc {
	for _, p := range fm.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

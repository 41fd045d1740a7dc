package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// chromium returns the path of a headless-capable Chromium, or skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on this machine (Debian: apt-get install -y chromium); .ci/run installs it")
	return ""
}

var (
	countRE = regexp.MustCompile(`<b id="count">(\d+)</b>`)
	ownerRE = regexp.MustCompile(`<span id="owner">([^<]+)</span>`)
	nodeRE  = regexp.MustCompile(`<span id="node">([^<]+)</span>`)
)

// page is what the session page showed.
type page struct {
	count       int
	node, owner string
}

// load loads url in headless Chromium with the given profile (which keeps
// the session cookie from one load to the next) and returns what the page
// shows; a page without a counter (a 503 during a failover) is loaded again.
func load(ctx context.Context, t *testing.T, chrome, profile, url, screenshot string) page {
	t.Helper()
	for {
		args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + profile}
		if screenshot != "" {
			args = append(args, "--screenshot="+screenshot, "--window-size=800,400")
			if out, err := exec.CommandContext(ctx, chrome, append(args, url)...).CombinedOutput(); err != nil {
				t.Fatalf("chromium --screenshot: %v\n%s", err, out)
			}
			return page{}
		}
		out, err := exec.CommandContext(ctx, chrome, append(args, "--dump-dom", url)...).Output()
		if err != nil && ctx.Err() != nil {
			t.Fatalf("chromium: %v", err)
		}
		if m := countRE.FindSubmatch(out); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			p := page{count: n}
			if m := nodeRE.FindSubmatch(out); m != nil {
				p.node = string(m[1])
			}
			if m := ownerRE.FindSubmatch(out); m != nil {
				p.owner = string(m[1])
			}
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no counter on the page: %s", url, out)
		case <-time.After(200 * time.Millisecond): // the farm is failing over
		}
	}
}

// TestBrowserSessionSurvivesOwnerKill drives the session page in a real
// browser across two servers with the session cookie, kills the session's
// owner with SIGKILL, and checks that the next page load on another server
// shows the next counter value.
func TestBrowserSessionSurvivesOwnerKill(t *testing.T) {
	chrome := chromium(t)
	fm := startFarm(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile := t.TempDir()

	p1 := load(ctx, t, chrome, profile, fm.procs[0].url, "")
	p2 := load(ctx, t, chrome, profile, fm.procs[1].url, "")
	if p1.count != 1 || p2.count != 2 {
		t.Fatalf("counters %d then %d across two servers, want 1 then 2 (is the cookie kept?)", p1.count, p2.count)
	}
	if p2.node != "web2" {
		t.Fatalf("second page answered by %q, want web2", p2.node)
	}
	owner := fm.byName(p2.owner)
	if owner == nil {
		t.Fatalf("owner %q is not a server", p2.owner)
	}
	owner.kill()
	var next *proc
	for _, p := range fm.live() {
		if p != owner {
			next = p
			break
		}
	}
	p3 := load(ctx, t, chrome, profile, next.url, "")
	if p3.count != 3 {
		t.Fatalf("after the owner %s was killed, %s shows counter %d, want 3", owner.name, next.name, p3.count)
	}
	t.Logf("owner %s killed; %s showed counter %d, owned now by %s", owner.name, p3.node, p3.count, p3.owner)
	if dir := os.Getenv("TRELLIS_SCREENSHOTS"); dir != "" {
		shot := filepath.Join(dir, "trellis-sessions-browser.png")
		load(ctx, t, chrome, profile, next.url, shot)
		t.Logf("screenshot of the next load: %s", shot)
	}
}

package status_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium, or skips the test where it is absent.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no Chromium on this machine (Debian: apt-get install -y chromium): the status page's browser test is skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1200, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser now (the first run's context owns the browser:
	// no timeout on it; a hung start ends with the test's own timeout).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// counts is what the test reads of the rendered page.
type counts struct {
	Nodes, Edges, Failed int
	Self, Leader         string
}

const countScript = `(() => {
  const svg = document.querySelector("svg#topo");
  const q = s => svg ? svg.querySelectorAll(s) : [];
  const name = s => { const g = svg && svg.querySelector(s + " text"); return g ? g.textContent : ""; };
  return {Nodes: q("g.nodes g.node").length, Edges: q("g.edges line.edge").length,
          Failed: q("g.nodes g.node.failed").length, Self: name("g.node.self"), Leader: name("g.node.leader")};
})()`

// TestStatusPageInBrowser loads the status page of a ring of four in
// headless Chromium and checks the drawn topology from the rendered DOM:
// four nodes and the ring's four edges, then, once a node is killed,
// three nodes and three edges within 3 s.
func TestStatusPageInBrowser(t *testing.T) {
	ctx := browser(t)
	ms := startCluster(t, 4)
	_, srv := serve(t, ms[0], 250*time.Millisecond)

	wait := func(within time.Duration, ok func(counts) bool) counts {
		t.Helper()
		deadline := time.Now().Add(within)
		var last counts
		for {
			c, err := chromedp.Run(ctx, chromedp.Evaluate[counts](countScript))
			if err != nil {
				t.Fatalf("reading the page: %v", err)
			}
			if ok(c) {
				return c
			}
			last = c
			if time.Now().After(deadline) {
				t.Fatalf("after %v the page shows %+v", within, last)
			}
			time.Sleep(50 * time.Millisecond) // polling the DOM: the page redraws on its own timer
		}
	}
	navCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(navCtx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("svg#topo g.node"))); err != nil {
		t.Fatalf("loading the status page: %v", err)
	}
	c := wait(10*time.Second, func(c counts) bool { return c.Nodes == 4 && c.Edges == 4 })
	if c.Self != "A" || c.Leader != "A" {
		t.Errorf("the page marks %q as this node and %q as leader, want A and A", c.Self, c.Leader)
	}
	screenshot(t, ctx, "trellis-status-4.png")

	ms[3].kill()
	start := time.Now()
	wait(3*time.Second, func(c counts) bool { return c.Nodes == 3 && c.Edges == 3 && c.Failed == 0 })
	t.Logf("the page showed 3 nodes and 3 edges %v after the kill", time.Since(start).Round(time.Millisecond))
	screenshot(t, ctx, "trellis-status-3.png")
}

// screenshot saves the page to the temporary directory, outside the repository.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	path := filepath.Join(os.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", path)
}

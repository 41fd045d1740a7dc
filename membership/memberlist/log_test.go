package memberlist

import (
	"bytes"
	"log"
	"log/slog"
	"strings"
	"testing"
)

func TestLogLevels(t *testing.T) {
	for _, tc := range []struct {
		line, level, msg string
	}{
		{"[DEBUG] memberlist: Stream connection from=x\n", "DEBUG", "memberlist: Stream connection from=x"},
		{"[INFO] memberlist: Suspect n has failed, no acks received\n", "INFO", "memberlist: Suspect n"},
		{"[WARN] memberlist: Refuting a dead message\n", "WARN", "memberlist: Refuting"},
		{"[ERR] memberlist: Failed to send\n", "ERROR", "memberlist: Failed to send"},
		{"no level at all\n", "INFO", "no level at all"},
	} {
		var buf bytes.Buffer
		sl := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		var hooked string
		l := log.New(&logWriter{log: sl, hook: func(m string) { hooked = m }}, "", 0)
		l.Print(tc.line)
		out := buf.String()
		if !strings.Contains(out, "level="+tc.level) || !strings.Contains(out, tc.msg) {
			t.Errorf("%q logged as %q, want level %s and %q", tc.line, out, tc.level, tc.msg)
		}
		if strings.Contains(out, "[") || !strings.HasPrefix(hooked, tc.msg) {
			t.Errorf("%q: level tag kept (%q) or hook saw %q", tc.line, out, hooked)
		}
	}
}

// TestLogWhileClosing checks that memberlist's complaints while it shuts
// down (writes to the sockets it closed) are logged at debug level only.
func TestLogWhileClosing(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	closing := false
	l := log.New(&logWriter{log: sl, closing: func() bool { return closing }}, "", 0)
	l.Print("[ERR] memberlist: Failed to send gossip before closing\n")
	closing = true
	l.Print("[ERR] memberlist: Failed to send gossip: use of closed network connection\n")
	out := buf.String()
	if !strings.Contains(out, "before closing") || strings.Contains(out, "use of closed") {
		t.Fatalf("logged %q; want the error before closing only", out)
	}
}

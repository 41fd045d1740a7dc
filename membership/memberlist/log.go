package memberlist

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into slog
// records at the matching level. hook, if set, sees each message first. Once
// closing, if set, reports true, every message is logged at debug level:
// memberlist's goroutines still running as it shuts down fail to write to
// the sockets it has closed, which is no error of the cluster's.
type logWriter struct {
	log     *slog.Logger
	hook    func(msg string)
	closing func() bool
}

// Write implements io.Writer for a log.Logger with no prefix and no flags: p is
// one line.
func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level, msg := slog.LevelInfo, line
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG] ", slog.LevelDebug},
		{"[TRACE] ", slog.LevelDebug},
		{"[INFO] ", slog.LevelInfo},
		{"[WARN] ", slog.LevelWarn},
		{"[ERR] ", slog.LevelError},
		{"[ERROR] ", slog.LevelError},
	} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			level, msg = l.level, rest
			break
		}
	}
	if w.hook != nil {
		w.hook(msg)
	}
	if w.closing != nil && w.closing() {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

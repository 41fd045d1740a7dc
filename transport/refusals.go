package transport

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// refusalWindow is how long a source's refused handshakes are counted
// rather than logged after one is logged; maxRefusalSources caps the
// sources remembered (beyond it they share one entry).
const (
	refusalWindow     = time.Minute
	maxRefusalSources = 1024
)

// refusalLog logs refused handshakes once per source address per window,
// so that a flood of bad handshakes costs a few log lines, not one each.
// The next line logged for a source says how many were not.
type refusalLog struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	sources map[netip.Addr]*refusals
}

type refusals struct {
	logged     time.Time // when the last line was logged
	suppressed int       // refusals since, not logged
}

func newRefusalLog(log *slog.Logger) *refusalLog {
	return &refusalLog{log: log, now: time.Now, sources: make(map[netip.Addr]*refusals)}
}

// sourceOf returns the IP address of a remote address, or the zero Addr.
func sourceOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// refused records a refused handshake from addr and logs it unless one from
// the same source was logged within the window.
func (r *refusalLog) refused(addr net.Addr, msg string, err error) {
	src := sourceOf(addr)
	now := r.now()
	r.mu.Lock()
	e, ok := r.sources[src]
	if !ok {
		if len(r.sources) >= maxRefusalSources {
			r.prune(now)
		}
		if len(r.sources) >= maxRefusalSources {
			src = netip.Addr{} // too many sources: they share one entry
			e = r.sources[src]
		}
		if e == nil {
			e = &refusals{}
			r.sources[src] = e
		}
	}
	if !e.logged.IsZero() && now.Sub(e.logged) < refusalWindow {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.logged, e.suppressed = now, 0
	r.mu.Unlock()
	attrs := []any{"addr", addr.String(), "err", err}
	if suppressed > 0 {
		attrs = append(attrs, "not_logged_since_last", suppressed)
	}
	r.log.Info(msg, attrs...)
}

// prune forgets the sources whose window has passed with nothing to
// report. r.mu must be held.
func (r *refusalLog) prune(now time.Time) {
	for src, e := range r.sources {
		if now.Sub(e.logged) >= refusalWindow && e.suppressed == 0 {
			delete(r.sources, src)
		}
	}
}

package status

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

//go:embed page.html
var pageSource string

var page = template.Must(template.New("page").Parse(pageSource))

// ServeHTTP implements http.Handler: the page, /status.json, /healthz and
// /readyz (see the package documentation).
func (s *Status) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case "":
		// Mounted under a prefix (http.StripPrefix) and asked for without
		// the trailing slash: the page's relative links would then resolve
		// outside the mount, so send the browser to the prefix with one.
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil && u.Path != "" && !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
			u.RawPath = ""
			http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
			return
		}
		fallthrough
	case "/":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		page.Execute(w, struct {
			Name      string
			RefreshMS int64
		}{s.cfg.Node.Name(), s.cfg.Refresh.Milliseconds()})
	case "/status.json":
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.Snapshot())
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	case "/readyz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		snap := s.Snapshot()
		if !snap.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: " + snap.NotReady + "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	default:
		http.NotFound(w, r)
	}
}

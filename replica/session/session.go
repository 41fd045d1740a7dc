// Package session gives net/http handlers sessions kept in a replicated
// store: every server of a farm serves every session, so it works behind
// any load balancer, sticky or not, and a server can be stopped or killed
// without its users losing their sessions.
//
// Wrap the application's handler with [Manager.Handler]; handlers find their
// session with [From]:
//
//	m, _ := session.New(session.Options{Store: store})
//	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
//		s := session.From(r)
//		s.Set("name", r.FormValue("name"))
//		fmt.Fprintln(w, "hello", s.Get("name"))
//	})
//	http.ListenAndServe(addr, m.Handler(mux))
//
// Changes made with Set and Delete are saved when the handler starts its
// response, before any of it is written: a response the client receives
// means the change is held by the session's owner and its backups. If the
// save fails the client gets 503 instead. [Session.Update] changes a session
// atomically at once, for read-modify-write such as counters.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica"
)

// Options configure a Manager.
type Options struct {
	// Store keeps the sessions. Required.
	Store *replica.Store
	// CookieName names the session cookie (default "trellis_session").
	CookieName string
	// TTL is the sessions' sliding idle timeout (default 30 minutes).
	TTL time.Duration
	// Path is the cookie's path (default "/").
	Path string
	// Domain is the cookie's domain (default: the request's host only).
	Domain string
	// InsecureCookie leaves out the cookie's Secure attribute, for plain
	// HTTP during development. By default the cookie is Secure, HttpOnly
	// and SameSite=Lax. (Browsers treat http://localhost as secure.)
	InsecureCookie bool
	// SameSite overrides the cookie's SameSite attribute (default Lax).
	SameSite http.SameSite
	// Timeout bounds loading and saving a session (default 5 s).
	Timeout time.Duration
	// Logger receives the manager's logs; nil discards them.
	Logger *slog.Logger
}

// A Manager loads and saves the sessions of the requests it handles.
type Manager struct {
	opts Options
}

// New returns a Manager.
func New(opts Options) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("session: Options.Store is required")
	}
	if opts.CookieName == "" {
		opts.CookieName = "trellis_session"
	}
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Minute
	}
	if opts.Path == "" {
		opts.Path = "/"
	}
	if opts.SameSite == 0 {
		opts.SameSite = http.SameSiteLaxMode
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{opts: opts}, nil
}

// A Session is the state a client keeps across requests. Its methods are
// safe for concurrent use within the request.
type Session struct {
	m   *Manager
	id  string
	ctx context.Context

	mu      sync.Mutex
	values  map[string]string
	version uint64 // 0: not stored yet
	owner   nodeid.ID
	backups []nodeid.ID
	dirty   bool
}

type ctxKey struct{}

// From returns the session of a request handled by Manager.Handler, or nil.
func From(r *http.Request) *Session {
	s, _ := r.Context().Value(ctxKey{}).(*Session)
	return s
}

// ID returns the session's id (the cookie's value).
func (s *Session) ID() string { return s.id }

// Get returns the value stored under key ("" if none).
func (s *Session) Get(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key]
}

// Set stores value under key; it is saved before the response starts.
func (s *Session) Set(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = make(map[string]string)
	}
	s.values[key] = value
	s.dirty = true
}

// Delete removes key; the change is saved before the response starts.
func (s *Session) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.values, key)
	s.dirty = true
}

// Values returns a copy of the session's values.
func (s *Session) Values() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.values)
}

// Where returns the node that owns the session and the nodes that hold its
// copies, as of the last load or save (zero and nil before the session is
// first stored).
func (s *Session) Where() (owner nodeid.ID, backups []nodeid.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owner, append([]nodeid.ID(nil), s.backups...)
}

// Update changes the session atomically and saves it at once: f gets the
// stored values (a fresh map it may change) and runs again if another
// request changed the session in between. Changes pending from Set and
// Delete are applied after f's.
func (s *Session) Update(f func(values map[string]string) error) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.m.opts.Timeout)
	defer cancel()
	change := func(old []byte, exists bool) ([]byte, error) {
		vals, err := decode(old)
		if err != nil {
			return nil, err
		}
		if err := f(vals); err != nil {
			return nil, err
		}
		s.mu.Lock()
		if s.dirty {
			maps.Copy(vals, s.values)
		}
		s.mu.Unlock()
		return cbor.Marshal(vals)
	}
	var it replica.Item
	var err error
	s.mu.Lock()
	created := s.version == 0
	s.mu.Unlock()
	if created {
		// A new session: its id was made here a moment ago, so it is
		// created here without looking for it first.
		var v []byte
		if v, err = change(nil, false); err == nil {
			it, err = s.m.opts.Store.Create(ctx, s.id, v, replica.WithTTL(s.m.opts.TTL))
		}
		created = !errors.Is(err, replica.ErrConflict)
	}
	if !created {
		it, err = s.m.opts.Store.Update(ctx, s.id, change, replica.WithTTL(s.m.opts.TTL))
	}
	if err != nil {
		return fmt.Errorf("session %s: update: %w", s.id, err)
	}
	vals, _ := decode(it.Value)
	s.mu.Lock()
	s.values, s.version, s.owner, s.backups, s.dirty = vals, it.Version, it.Owner, it.Backups, false
	s.mu.Unlock()
	return nil
}

// Destroy deletes the session now and clears its cookie.
func (s *Session) Destroy(w http.ResponseWriter) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.m.opts.Timeout)
	defer cancel()
	err := s.m.opts.Store.Delete(ctx, s.id)
	if errors.Is(err, replica.ErrNotFound) {
		err = nil
	}
	s.mu.Lock()
	s.values, s.dirty, s.version = nil, false, 0
	s.mu.Unlock()
	c := s.m.cookie("")
	c.MaxAge = -1
	http.SetCookie(w, c)
	return err
}

// save stores pending changes; the session's version guards against a
// concurrent request's changes, which are kept: ours are applied on top.
func (s *Session) save() error {
	s.mu.Lock()
	dirty := s.dirty
	s.mu.Unlock()
	if !dirty {
		return nil
	}
	return s.Update(func(map[string]string) error { return nil })
}

func decode(b []byte) (map[string]string, error) {
	vals := make(map[string]string)
	if len(b) == 0 {
		return vals, nil
	}
	if err := cbor.Unmarshal(b, &vals); err != nil {
		return nil, fmt.Errorf("session: stored value: %w", err)
	}
	return vals, nil
}

// cookie returns the session cookie carrying id.
func (m *Manager) cookie(id string) *http.Cookie {
	return &http.Cookie{
		Name: m.opts.CookieName, Value: id, Path: m.opts.Path, Domain: m.opts.Domain,
		MaxAge: int(m.opts.TTL / time.Second), HttpOnly: true,
		Secure: !m.opts.InsecureCookie, SameSite: m.opts.SameSite,
	}
}

// validID reports whether id has the form of a key made by Store.NewKey.
func validID(id string) bool {
	if len(id) != 16+1+32 || id[16] != '-' {
		return false
	}
	return strings.IndexFunc(id, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || r == '-')
	}) < 0
}

// Handler returns next with a session on every request: the one its cookie
// names, or a new one (stored when first changed).
func (m *Manager) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &Session{m: m}
		if c, err := r.Cookie(m.opts.CookieName); err == nil && validID(c.Value) {
			ctx, cancel := context.WithTimeout(r.Context(), m.opts.Timeout)
			it, err := m.opts.Store.Get(ctx, c.Value)
			cancel()
			switch {
			case err == nil:
				vals, derr := decode(it.Value)
				if derr != nil {
					http.Error(w, "session unreadable", http.StatusInternalServerError)
					return
				}
				s.id, s.values, s.version, s.owner, s.backups = c.Value, vals, it.Version, it.Owner, it.Backups
			case errors.Is(err, replica.ErrNotFound):
				// Expired or never stored: start a new one.
				m.opts.Logger.Info("session not found: a new one starts", "session", c.Value)
			default:
				http.Error(w, "session unavailable: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		if s.id == "" {
			s.id = m.opts.Store.NewKey()
		}
		// The cookie is refreshed on every response (sliding expiry).
		http.SetCookie(w, m.cookie(s.id))
		s.ctx = r.Context()
		sw := &saver{ResponseWriter: w, s: s}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
		sw.commit()
	})
}

// saver saves the session before the response starts.
type saver struct {
	http.ResponseWriter
	s       *Session
	started bool
	failed  bool
}

// commit saves pending changes once; it reports whether the handler's
// response may go out.
func (w *saver) commit() bool {
	if w.started {
		return !w.failed
	}
	w.started = true
	if err := w.s.save(); err != nil {
		w.failed = true
		http.Error(w.ResponseWriter, "session not saved: "+err.Error(), http.StatusServiceUnavailable)
		return false
	}
	return true
}

func (w *saver) WriteHeader(code int) {
	if w.commit() {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *saver) Write(b []byte) (int, error) {
	if !w.commit() {
		return len(b), nil // the 503 went out instead
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *saver) Unwrap() http.ResponseWriter { return w.ResponseWriter }

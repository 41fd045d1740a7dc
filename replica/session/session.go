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
// Calls on a session take effect in the order the handler makes them:
// [Session.Get] returns what the request has made of the session so far.
// Changes made with Set and Delete are pending until they are saved: by the
// next [Session.Update], which saves them together with its own change, or
// else when the handler starts its response (its first Write, WriteHeader
// or Flush, or its Hijack of the connection), before any of it is written.
// A response the client receives thus means the changes are held by the
// session's owner and its backups; if the save fails the client gets 503
// instead (and Hijack an error). Changes made after the response started
// are saved when the handler returns; a failure then can only be logged. A
// handler that hijacks the connection writes the response itself, without
// the session's cookie: a session it starts stays unknown to the client.
//
// A client may have several requests of its session running at once (a
// page's parallel requests, a retry). A save writes only the keys the
// request changed over what is stored by then, so the changes the requests
// make to different keys are all kept; of two changes to one key, the one
// saved last wins. A request sees the session as it was loaded when the
// request started, not what the others save meanwhile, so a value computed
// from a Get may be stale: read-modify-write, such as a counter, belongs in
// Update, which changes the session atomically and loses no increment.
package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
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
// safe for concurrent use by the goroutines of one request.
type Session struct {
	m   *Manager
	id  string
	ctx context.Context

	mu sync.Mutex
	// values is the session as this request sees it: as last loaded or
	// saved, with the pending changes applied.
	values  map[string]string
	version uint64 // 0: not stored yet
	owner   nodeid.ID
	backups []nodeid.ID
	// pending holds the changes made by Set and Delete and not saved yet,
	// by key: only these are written over what is stored, so that the
	// changes other requests and Update made meanwhile are kept.
	pending map[string]change
	seq     uint64 // numbers the changes, so a save forgets only those it wrote
	// renewed is set by Destroy: the session's id is new, and its cookie
	// is to be sent if the new session is stored.
	renewed bool
}

// A change is a pending Set (or Delete, if deleted) of one key.
type change struct {
	value   string
	deleted bool
	seq     uint64
}

// apply makes c, a change of key, in values.
func (c change) apply(values map[string]string, key string) {
	if c.deleted {
		delete(values, key)
	} else {
		values[key] = c.value
	}
}

// applyTo makes the changes cs in values.
func applyTo(values map[string]string, cs map[string]change) {
	for k, c := range cs {
		c.apply(values, k)
	}
}

type ctxKey struct{}

// From returns the session of a request handled by Manager.Handler, or nil.
func From(r *http.Request) *Session {
	s, _ := r.Context().Value(ctxKey{}).(*Session)
	return s
}

// ID returns the session's id (the cookie's value). Destroy gives the
// session a new one.
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// Get returns the value under key ("" if none): as loaded when the request
// started, or as this request's own changes and Updates left it.
func (s *Session) Get(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key]
}

// Set stores value under key. The change is pending until it is saved: by
// the next Update, or before the response starts.
func (s *Session) Set(key, value string) {
	s.record(key, change{value: value})
}

// Delete removes key. The change is pending until it is saved: by the next
// Update, or before the response starts.
func (s *Session) Delete(key string) {
	s.record(key, change{deleted: true})
}

// record makes c pending for key and applies it to the request's view.
func (s *Session) record(key string, c change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = make(map[string]string)
	}
	if s.pending == nil {
		s.pending = make(map[string]change)
	}
	s.seq++
	c.seq = s.seq
	s.pending[key] = c
	c.apply(s.values, key)
}

// Values returns a copy of the session's values, as Get sees them.
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

// Update changes the session atomically and saves it at once, together
// with the changes pending from this request's earlier calls of Set and
// Delete. f gets a fresh map it may change: the values stored now, other
// requests' saves included, with the pending changes applied, so that f
// sees them and its own changes come after them. If another request
// changes the session between the read and the write, f runs again on the
// newer values, so f should do nothing but compute from the map and change
// it. Once Update returns nil, Get sees what f made.
//
// If f returns an error, Update returns it (wrapped) and saves nothing;
// the pending changes stay pending, as they do if the save fails. Update
// gives up with an error wrapping [replica.ErrConflict] if other requests
// keep changing the session (16 rounds). A nil f saves the pending changes
// at once.
func (s *Session) Update(f func(values map[string]string) error) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.m.opts.Timeout)
	defer cancel()
	s.mu.Lock()
	id, created := s.id, s.version == 0
	saving := maps.Clone(s.pending)
	s.mu.Unlock()
	change := func(old []byte, exists bool) ([]byte, error) {
		vals, err := decode(old)
		if err != nil {
			return nil, err
		}
		applyTo(vals, saving)
		if f != nil {
			if err := f(vals); err != nil {
				return nil, err
			}
		}
		return cbor.Marshal(vals)
	}
	var it replica.Item
	var err error
	if created {
		// A new session: its id was made here a moment ago, so it is
		// created here without looking for it first.
		var v []byte
		if v, err = change(nil, false); err == nil {
			it, err = s.m.opts.Store.Create(ctx, id, v, replica.WithTTL(s.m.opts.TTL))
		}
		created = !errors.Is(err, replica.ErrConflict)
	}
	if !created {
		it, err = s.m.opts.Store.Update(ctx, id, change, replica.WithTTL(s.m.opts.TTL))
	}
	if err != nil {
		return fmt.Errorf("session %s: update: %w", id, err)
	}
	vals, err := decode(it.Value)
	if err != nil {
		return fmt.Errorf("session %s: update: %w", id, err)
	}
	s.mu.Lock()
	if s.id != id {
		// Destroyed meanwhile: this write may have landed after Destroy's
		// delete and stored the old session again, which its old cookie
		// would still reach. Delete it again.
		s.mu.Unlock()
		if err := s.m.opts.Store.Delete(ctx, id); err != nil && !errors.Is(err, replica.ErrNotFound) {
			return fmt.Errorf("session %s: deleting the session destroyed during an update: %w", id, err)
		}
		return nil
	}
	defer s.mu.Unlock()
	for k, c := range saving {
		if s.pending[k] == c {
			delete(s.pending, k)
		}
	}
	// Changes made while Update ran (by other goroutines of the request)
	// stay pending and visible.
	applyTo(vals, s.pending)
	s.values, s.version, s.owner, s.backups = vals, it.Version, it.Owner, it.Backups
	return nil
}

// Destroy deletes the session now, with the changes pending, and clears
// its cookie (w is the handler's ResponseWriter; the response must not have
// started). The Session is then a new, empty one with a new id: changes
// made after Destroy, such as a farewell message, are saved in it, and its
// cookie is sent with them.
func (s *Session) Destroy(w http.ResponseWriter) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.m.opts.Timeout)
	defer cancel()
	s.mu.Lock()
	id := s.id
	s.id = s.m.opts.Store.NewKey()
	s.values, s.pending, s.version, s.owner, s.backups, s.renewed = nil, nil, 0, nodeid.None, nil, true
	s.mu.Unlock()
	err := s.m.opts.Store.Delete(ctx, id)
	if errors.Is(err, replica.ErrNotFound) {
		err = nil
	}
	c := s.m.cookie("")
	c.MaxAge = -1
	http.SetCookie(w, c)
	if err != nil {
		return fmt.Errorf("session %s: destroy: %w", id, err)
	}
	return nil
}

// renewedCookie returns the cookie of a session stored since Destroy gave
// it a new id, once; nil if there is none to send.
func (s *Session) renewedCookie() *http.Cookie {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.renewed || s.version == 0 {
		return nil
	}
	s.renewed = false
	return s.m.cookie(s.id)
}

// save stores the pending changes, if any, over what is stored now: the
// changes a concurrent request made to other keys are kept.
func (s *Session) save() error {
	s.mu.Lock()
	n := len(s.pending)
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	return s.Update(nil)
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
		sw.finish()
	})
}

// saver saves the session before the response starts.
type saver struct {
	http.ResponseWriter
	s       *Session
	started bool
	failed  error // the save that failed: the client got 503 instead
}

// commit saves pending changes once; it reports whether the handler's
// response may go out.
func (w *saver) commit() bool {
	if w.started {
		return w.failed == nil
	}
	w.started = true
	if err := w.s.save(); err != nil {
		w.failed = err
		http.Error(w.ResponseWriter, "session not saved: "+err.Error(), http.StatusServiceUnavailable)
		return false
	}
	if c := w.s.renewedCookie(); c != nil {
		http.SetCookie(w.ResponseWriter, c)
	}
	return true
}

// finish saves what the handler left pending: before the response starts
// if the handler wrote nothing, otherwise (changes made after the response
// started) at once, logging a failure, which the client can no longer be
// told of.
func (w *saver) finish() {
	if !w.started {
		w.commit()
		return
	}
	if w.failed != nil {
		return // the client was told that nothing was saved
	}
	if err := w.s.save(); err != nil {
		w.s.m.opts.Logger.Warn("changes made after the response started not saved", "session", w.s.ID(), "err", err)
	}
	if w.s.renewedCookie() != nil {
		w.s.m.opts.Logger.Warn("a session started after Destroy once the response had started: its cookie could not be sent", "session", w.s.ID())
	}
}

// Flush saves pending changes, then sends what is buffered of the response.
func (w *saver) Flush() { w.FlushError() }

// FlushError is Flush for http.ResponseController, reporting an error if the
// underlying writer cannot flush.
func (w *saver) FlushError() error {
	if !w.commit() {
		return nil // the 503 went out instead
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
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

// Hijack saves pending changes, then hands the connection over to the
// handler (http.Hijacker; http.ResponseController calls it too): whatever
// the handler then writes to the client comes after the save, as a response
// does. If the save fails, the client gets 503 instead and Hijack returns
// the error. Changes made after Hijack are saved when the handler returns;
// the session's cookie is not sent (the handler writes the response), so a
// new session, or one renewed by Destroy, stays unknown to the client.
func (w *saver) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.commit() {
		return nil, nil, fmt.Errorf("session %s: not saved, connection not hijacked: %w", w.s.ID(), w.failed)
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *saver) Unwrap() http.ResponseWriter { return w.ResponseWriter }

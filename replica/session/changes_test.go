package session_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/trellisrpc/trellis/replica"
	"github.com/trellisrpc/trellis/replica/internal/farmtest"
	"github.com/trellisrpc/trellis/replica/session"
)

// An op is one call a handler makes on its session.
type op struct {
	kind  string // "set", "del", "get", "incr", "upd", "updErr", "updSees"
	key   string
	value string // set, upd: the value to store; get, updSees: the value expected
}

func set(k, v string) op       { return op{"set", k, v} }
func del(k string) op          { return op{"del", k, ""} }
func get(k, want string) op    { return op{"get", k, want} }
func incr(k string) op         { return op{"incr", k, ""} }
func upd(k, v string) op       { return op{"upd", k, v} } // Update that sets k to v ("" deletes it)
func updErr(k string) op       { return op{"updErr", k, ""} }
func updSees(k, v string) op   { return op{"updSees", k, v} }
func (o op) String() string    { return fmt.Sprintf("%s(%s,%s)", o.kind, o.key, o.value) }
func vals(kv ...string) values { return values(kvMap(kv...)) }

type values map[string]string

// same reports whether a and b hold the same values, nil (nothing stored)
// being unlike an empty session.
func same(a, b values) bool { return (a == nil) == (b == nil) && maps.Equal(a, b) }

func kvMap(kv ...string) map[string]string {
	m := make(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

var errRefused = errors.New("refused")

// run makes the calls ops on s and returns what went other than expected.
func run(s *session.Session, ops []op) []string {
	var bad []string
	for i, o := range ops {
		var err error
		switch o.kind {
		case "set":
			s.Set(o.key, o.value)
		case "del":
			s.Delete(o.key)
		case "get":
			if got := s.Get(o.key); got != o.value {
				bad = append(bad, fmt.Sprintf("op %d %v: Get(%q) = %q", i, o, o.key, got))
			}
		case "incr":
			err = s.Update(func(m map[string]string) error {
				n, _ := strconv.Atoi(m[o.key])
				m[o.key] = strconv.Itoa(n + 1)
				return nil
			})
		case "upd":
			err = s.Update(func(m map[string]string) error {
				if o.value == "" {
					delete(m, o.key)
				} else {
					m[o.key] = o.value
				}
				return nil
			})
		case "updSees":
			err = s.Update(func(m map[string]string) error {
				if got := m[o.key]; got != o.value {
					bad = append(bad, fmt.Sprintf("op %d %v: f sees %q = %q", i, o, o.key, got))
				}
				return nil
			})
		case "updErr":
			err = s.Update(func(m map[string]string) error {
				m[o.key] = "changed by a failed update"
				return errRefused
			})
			if !errors.Is(err, errRefused) {
				bad = append(bad, fmt.Sprintf("op %d %v: Update returned %v, want f's error", i, o, err))
			}
			err = nil
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("op %d %v: %v", i, o, err))
		}
	}
	return bad
}

// sessionFarm serves handlers with sessions on a farm of n servers.
type sessionFarm struct {
	t     *testing.T
	farm  *farmtest.Farm
	urls  []string
	mu    sync.Mutex
	paths map[string]http.HandlerFunc
	done  map[string]func() // by path, see afterHandler
}

func newSessionFarm(t *testing.T, n int) *sessionFarm {
	sf := &sessionFarm{t: t, farm: farmtest.New(t, n, farmtest.Config{}),
		paths: make(map[string]http.HandlerFunc), done: make(map[string]func())}
	for _, s := range sf.farm.Servers {
		m, err := session.New(session.Options{Store: s.Store, InsecureCookie: true})
		if err != nil {
			t.Fatal(err)
		}
		h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sf.mu.Lock()
			h := sf.paths[r.URL.Path]
			sf.mu.Unlock()
			if h == nil {
				http.NotFound(w, r)
				return
			}
			h(w, r)
		}))
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r)
			sf.mu.Lock()
			done := sf.done[r.URL.Path]
			sf.mu.Unlock()
			if done != nil {
				done()
			}
		}))
		t.Cleanup(hs.Close)
		sf.urls = append(sf.urls, hs.URL)
	}
	return sf
}

// handle serves path with h on every server.
func (sf *sessionFarm) handle(path string, h http.HandlerFunc) {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	sf.paths[path] = h
}

// afterHandler makes f run each time the session handler returns from a
// request for path: its saves are done.
func (sf *sessionFarm) afterHandler(path string, f func()) {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	sf.done[path] = f
}

// client returns a browser with a cookie jar of its own.
func (sf *sessionFarm) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// get requests path from server i and fails the test unless it gets 200.
func (sf *sessionFarm) get(c *http.Client, i int, path string) string {
	sf.t.Helper()
	resp, err := c.Get(sf.urls[i] + path)
	if err != nil {
		sf.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		sf.t.Fatalf("GET %s from server %d: %s: %s", path, i, resp.Status, b)
	}
	return string(b)
}

// stored returns the values stored for the session of client c, read from
// the store itself; nil if none is stored.
func (sf *sessionFarm) stored(c *http.Client) values {
	sf.t.Helper()
	u, _ := url.Parse(sf.urls[0])
	var id string
	for _, k := range c.Jar.Cookies(u) {
		if k.Name == "trellis_session" {
			id = k.Value
		}
	}
	if id == "" {
		sf.t.Fatal("the client has no session cookie")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	it, err := sf.farm.Servers[0].Store.Get(ctx, id)
	if errors.Is(err, replica.ErrNotFound) {
		return nil
	}
	if err != nil {
		sf.t.Fatalf("session %s: %v", id, err)
	}
	v := make(values)
	if err := cbor.Unmarshal(it.Value, &v); err != nil {
		sf.t.Fatalf("session %s: %v", id, err)
	}
	return v
}

// TestChangesWithinARequest checks that the Set, Delete, Update and Get calls
// a handler makes take effect in the order it makes them, whichever way
// they mix, and that all of them are saved: in a new session (the first
// request) and in a stored one (the second).
func TestChangesWithinARequest(t *testing.T) {
	sf := newSessionFarm(t, 1)
	for i, tc := range []struct {
		name          string
		seed          values // stored before the first request, if not nil
		ops           []op
		first, second values // stored after the first and the second request
	}{
		{
			name:   "set then update",
			ops:    []op{set("user", "ann"), incr("visits")},
			first:  vals("user", "ann", "visits", "1"),
			second: vals("user", "ann", "visits", "2"),
		},
		{
			name:   "set then update, stored session",
			seed:   vals("user", "old", "visits", "4"),
			ops:    []op{set("user", "ann"), incr("visits")},
			first:  vals("user", "ann", "visits", "5"),
			second: vals("user", "ann", "visits", "6"),
		},
		{
			name:   "update then set",
			ops:    []op{incr("visits"), set("user", "ann")},
			first:  vals("user", "ann", "visits", "1"),
			second: vals("user", "ann", "visits", "2"),
		},
		{
			name:   "update then update",
			ops:    []op{incr("visits"), incr("visits")},
			first:  vals("visits", "2"),
			second: vals("visits", "4"),
		},
		{
			name:   "set, update, set",
			ops:    []op{set("a", "1"), incr("visits"), set("b", "2")},
			first:  vals("a", "1", "b", "2", "visits", "1"),
			second: vals("a", "1", "b", "2", "visits", "2"),
		},
		{
			name:   "update, set, update",
			ops:    []op{incr("visits"), set("a", "1"), incr("visits")},
			first:  vals("a", "1", "visits", "2"),
			second: vals("a", "1", "visits", "4"),
		},
		{
			name:   "delete then update",
			seed:   vals("user", "old", "visits", "4"),
			ops:    []op{del("user"), incr("visits")},
			first:  vals("visits", "5"),
			second: vals("visits", "6"),
		},
		{
			name:   "update then delete",
			seed:   vals("user", "old", "visits", "4"),
			ops:    []op{incr("visits"), del("user")},
			first:  vals("visits", "5"),
			second: vals("visits", "6"),
		},
		{
			name:   "f sees the pending set and its change comes after it",
			seed:   vals("visits", "4"),
			ops:    []op{set("visits", "10"), updSees("visits", "10"), incr("visits"), get("visits", "11")},
			first:  vals("visits", "11"),
			second: vals("visits", "11"),
		},
		{
			name:   "f sees the pending delete",
			seed:   vals("user", "old", "visits", "4"),
			ops:    []op{del("user"), updSees("user", ""), upd("user", "new"), get("user", "new")},
			first:  vals("user", "new", "visits", "4"),
			second: vals("user", "new", "visits", "4"),
		},
		{
			name:   "set after update wins",
			seed:   vals("visits", "4"),
			ops:    []op{incr("visits"), set("visits", "0"), get("visits", "0")},
			first:  vals("visits", "0"),
			second: vals("visits", "0"),
		},
		{
			name:   "delete after update wins",
			seed:   vals("visits", "4", "user", "old"),
			ops:    []op{upd("user", "new"), del("user"), get("user", "")},
			first:  vals("visits", "4"),
			second: vals("visits", "4"),
		},
		{
			name:   "set, delete, update",
			seed:   vals("visits", "4"),
			ops:    []op{set("x", "1"), del("x"), incr("visits"), get("x", "")},
			first:  vals("visits", "5"),
			second: vals("visits", "6"),
		},
		{
			name:   "delete, set, update",
			seed:   vals("visits", "4", "x", "old"),
			ops:    []op{del("x"), set("x", "new"), incr("visits"), get("x", "new")},
			first:  vals("visits", "5", "x", "new"),
			second: vals("visits", "6", "x", "new"),
		},
		{
			name:   "get sees what is stored",
			seed:   vals("user", "old"),
			ops:    []op{get("user", "old"), get("visits", "")},
			first:  vals("user", "old"),
			second: vals("user", "old"),
		},
		{
			name: "get sees every change so far",
			seed: vals("user", "old", "visits", "7"),
			ops: []op{
				set("user", "ann"), get("user", "ann"), set("visits", "0"),
				incr("visits"), get("visits", "1"), get("user", "ann"),
				del("user"), get("user", ""), incr("visits"), get("visits", "2"),
			},
			first:  vals("visits", "2"),
			second: vals("visits", "2"),
		},
		{
			name:   "a failed update changes nothing and keeps what is pending",
			seed:   vals("visits", "4"),
			ops:    []op{set("user", "ann"), updErr("visits"), get("visits", "4"), get("user", "ann")},
			first:  vals("user", "ann", "visits", "4"),
			second: vals("user", "ann", "visits", "4"),
		},
		{
			name:   "set only",
			seed:   vals("user", "old", "visits", "4"),
			ops:    []op{set("user", "ann")},
			first:  vals("user", "ann", "visits", "4"),
			second: vals("user", "ann", "visits", "4"),
		},
		{
			name:   "get only stores nothing new",
			ops:    []op{get("user", "")},
			first:  nil,
			second: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sf.t = t
			path := fmt.Sprintf("/case%d", i)
			sf.handle(path+"/seed", func(w http.ResponseWriter, r *http.Request) {
				s := session.From(r)
				for k, v := range tc.seed {
					s.Set(k, v)
				}
			})
			sf.handle(path, func(w http.ResponseWriter, r *http.Request) {
				for _, b := range run(session.From(r), tc.ops) {
					t.Error(b)
				}
			})
			c := sf.client()
			if tc.seed != nil {
				sf.get(c, 0, path+"/seed")
				if got := sf.stored(c); !same(got, tc.seed) {
					t.Fatalf("seeded %v, stored %v", tc.seed, got)
				}
			}
			for i, want := range []values{tc.first, tc.second} {
				sf.get(c, 0, path)
				if got := sf.stored(c); !same(got, want) {
					t.Errorf("after request %d: stored %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

// TestConcurrentRequestsKeepEachOthersChanges checks that a request saves
// only what it changed: a request of the same session that ran meanwhile
// keeps its own changes, deletions included, wherever the two ran.
func TestConcurrentRequestsKeepEachOthersChanges(t *testing.T) {
	sf := newSessionFarm(t, 2)
	c := sf.client()
	sf.handle("/seed", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Set("a", "1")
		s.Set("b", "1")
		s.Set("gone", "x")
	})
	loaded, release := make(chan struct{}), make(chan struct{})
	sf.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Set("a", "2")
		s.Set("shared", "slow")
		close(loaded)
		<-release
	})
	sf.handle("/fast", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Set("b", "2")
		s.Set("shared", "fast")
		s.Delete("gone")
	})
	sf.get(c, 0, "/seed")
	done := make(chan error, 1)
	go func() {
		resp, err := c.Get(sf.urls[0] + "/slow")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
		}
		done <- err
	}()
	select {
	case <-loaded:
	case err := <-done:
		t.Fatalf("the slow request ended early: %v", err)
	}
	sf.get(c, 1, "/fast")
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The slow request saved last: its change of "shared" wins.
	want := vals("a", "2", "b", "2", "shared", "slow")
	if got := sf.stored(c); !same(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
}

// TestConcurrentUpdatesAllCount runs requests of one session at once, each
// setting a key of its own and counting a visit with Update: every visit
// and every key is kept.
func TestConcurrentUpdatesAllCount(t *testing.T) {
	sf := newSessionFarm(t, 2)
	c := sf.client()
	sf.handle("/", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Set("by-"+r.FormValue("i"), "yes")
		if err := s.Update(func(m map[string]string) error {
			n, _ := strconv.Atoi(m["visits"])
			m["visits"] = strconv.Itoa(n + 1)
			return nil
		}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	sf.get(c, 0, "/?i=first") // the session exists before the others start
	// Each request writes once, so an Update loses at most n-1 rounds:
	// fewer than the rounds Store.Update tries.
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(fmt.Sprintf("%s/?i=%d", sf.urls[i%2], i))
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("request %d: %s: %s", i, resp.Status, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := vals("visits", strconv.Itoa(n+1), "by-first", "yes")
	for i := range n {
		want["by-"+strconv.Itoa(i)] = "yes"
	}
	if got := sf.stored(c); !same(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
}

// TestChangesAfterTheResponseStarted checks that changes a handler makes
// after it started its response are saved too (when it returns), and that
// flushing the response first saves what is pending before anything goes
// out.
func TestChangesAfterTheResponseStarted(t *testing.T) {
	sf := newSessionFarm(t, 1)
	c := sf.client()
	sf.handle("/late", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Set("early", "1")
		io.WriteString(w, "hello")
		s.Set("late", "1")
	})
	sf.get(c, 0, "/late")
	if got, want := sf.stored(c), vals("early", "1", "late", "1"); !same(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}

	release := make(chan struct{})
	sf.handle("/flush", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("flushed", "1")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
		<-release
	})
	resp, err := c.Get(sf.urls[0] + "/flush") // returns once the headers are in
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	got := sf.stored(c)
	close(release)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if want := vals("early", "1", "late", "1", "flushed", "1"); !same(got, want) {
		t.Fatalf("stored when the flushed headers came in: %v, want %v", got, want)
	}
}

// TestUpdateNilSavesAtOnce checks that Update(nil) saves the pending
// changes before it returns.
func TestUpdateNilSavesAtOnce(t *testing.T) {
	sf := newSessionFarm(t, 1)
	c := sf.client()
	store := sf.farm.Servers[0].Store
	sf.handle("/", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Set("a", "1")
		if err := s.Update(nil); err != nil {
			t.Errorf("Update(nil): %v", err)
			return
		}
		it, err := store.Get(r.Context(), s.ID())
		if err != nil {
			t.Errorf("the session is not stored after Update(nil): %v", err)
			return
		}
		var got values
		if err := cbor.Unmarshal(it.Value, &got); err != nil || !same(got, vals("a", "1")) {
			t.Errorf("stored after Update(nil): %v (%v), want a=1", got, err)
		}
	})
	sf.get(c, 0, "/")
}

// TestChangesAfterDestroy checks that Destroy deletes the session and
// drops its pending changes, and that changes made after it start a new
// session, which the client gets the cookie of.
func TestChangesAfterDestroy(t *testing.T) {
	sf := newSessionFarm(t, 1)
	for i, tc := range []struct {
		name string
		ops  []op // after Destroy
		want values
	}{
		{"destroy only", nil, nil},
		{"pending set dropped", nil, nil},
		{"set after destroy", []op{get("user", ""), set("flash", "bye")}, vals("flash", "bye")},
		{"update after destroy", []op{incr("visits"), set("flash", "bye")}, vals("visits", "1", "flash", "bye")},
		{"delete after destroy", []op{del("user")}, vals()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sf.t = t
			path := fmt.Sprintf("/destroy%d", i)
			sf.handle(path+"/seed", func(w http.ResponseWriter, r *http.Request) {
				session.From(r).Set("user", "old")
			})
			var oldID string
			sf.handle(path, func(w http.ResponseWriter, r *http.Request) {
				s := session.From(r)
				s.Set("pending", "dropped")
				if err := s.Destroy(w); err != nil {
					t.Errorf("Destroy: %v", err)
				}
				if s.ID() == oldID {
					t.Errorf("the session's id is still %s after Destroy", oldID)
				}
				for _, b := range run(s, tc.ops) {
					t.Error(b)
				}
			})
			c := sf.client()
			sf.get(c, 0, path+"/seed")
			u, _ := url.Parse(sf.urls[0])
			oldID = c.Jar.Cookies(u)[0].Value
			sf.get(c, 0, path)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := sf.farm.Servers[0].Store.Get(ctx, oldID); !errors.Is(err, replica.ErrNotFound) {
				t.Errorf("the destroyed session: %v, want %v", err, replica.ErrNotFound)
			}
			cookies := c.Jar.Cookies(u)
			if tc.want == nil {
				if len(cookies) != 0 {
					t.Errorf("the client kept cookies %v", cookies)
				}
				return
			}
			if len(cookies) != 1 || cookies[0].Value == oldID {
				t.Fatalf("the client has cookies %v, want one for the new session", cookies)
			}
			if got := sf.stored(c); !same(got, tc.want) {
				t.Errorf("stored %v, want %v", got, tc.want)
			}
		})
	}
}

// TestChangesBeforeAHijack checks that a handler that takes the connection
// over (http.Hijacker, directly or through http.ResponseController) has its
// pending changes saved before it gets the connection, so that the response
// it writes there means they are held, as any other response does; and that
// changes it makes after the hijack are saved when it returns.
func TestChangesBeforeAHijack(t *testing.T) {
	sf := newSessionFarm(t, 1)
	for _, tc := range []struct {
		name   string
		hijack func(http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error)
	}{
		{"ResponseController", func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
			return http.NewResponseController(w).Hijack()
		}},
		{"Hijacker", func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
			h, ok := w.(http.Hijacker)
			if !ok {
				return nil, nil, fmt.Errorf("%T is not an http.Hijacker", w)
			}
			return h.Hijack()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sf.t = t
			c := sf.client()
			sf.handle("/seed", func(w http.ResponseWriter, r *http.Request) {
				session.From(r).Set("seed", "1") // the client gets its cookie
			})
			sf.get(c, 0, "/seed")
			release := make(chan struct{})
			returned := make(chan struct{})
			sf.afterHandler("/hijack", func() { close(returned) })
			sf.handle("/hijack", func(w http.ResponseWriter, r *http.Request) {
				s := session.From(r)
				s.Set("before", "1")
				conn, _, err := tc.hijack(w)
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				defer conn.Close()
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
				select {
				case <-release:
				case <-time.After(10 * time.Second):
					t.Error("not released")
				}
				s.Set("after", "1")
			})
			got := sf.get(c, 0, "/hijack") // the handler's own response over the connection
			stored := sf.stored(c)
			close(release)
			select {
			case <-returned:
			case <-time.After(10 * time.Second):
				t.Fatal("the session handler did not return")
			}
			if got != "ok" {
				t.Errorf("response %q, want the hijacker's %q", got, "ok")
			}
			if want := vals("seed", "1", "before", "1"); !same(stored, want) {
				t.Errorf("stored when the hijacker's response came in: %v, want %v", stored, want)
			}
			// Manager.Handler has returned: it saved what the handler changed
			// after the hijack.
			if got, want := sf.stored(c), vals("seed", "1", "before", "1", "after", "1"); !same(got, want) {
				t.Errorf("stored once the handler returned: %v, want %v", got, want)
			}
		})
	}
}

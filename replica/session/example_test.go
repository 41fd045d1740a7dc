package session_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	"github.com/trellisrpc/trellis/replica"
	"github.com/trellisrpc/trellis/replica/session"
)

// A web server counts each visitor's visits in its session. The session
// lives in a replicated store, so every server of the farm would serve it.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gossip, err := net.ListenPacket("udp", "127.0.0.1:0") // a free port for the membership
	if err != nil {
		log.Fatal(err)
	}
	seed := gossip.LocalAddr().String()
	gossip.Close()
	c, err := cluster.Join(ctx, cluster.Options{Name: "web1", Addr: "127.0.0.1:0", Key: []byte("an-example-cluster-key-0123456789"), GossipAddr: seed, Seeds: []string{seed}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	store, err := replica.New(replica.Config{Cluster: c})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	sessions, err := session.New(session.Options{Store: store, InsecureCookie: true})
	if err != nil {
		log.Fatal(err)
	}

	visits := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		err := session.From(r).Update(func(v map[string]string) error {
			n, _ = strconv.Atoi(v["visits"])
			n++
			v["visits"] = strconv.Itoa(n)
			return nil
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "visit %d", n)
	})
	srv := httptest.NewServer(sessions.Handler(visits))
	defer srv.Close()

	jar, _ := cookiejar.New(nil) // the browser keeps the session cookie
	browser := &http.Client{Jar: jar}
	for range 3 {
		resp, err := browser.Get(srv.URL)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	// Output:
	// visit 1
	// visit 2
	// visit 3
}

// Set and Delete are pending until saved; Update saves them together with
// its own change, and its f sees them: calls take effect in the order the
// handler makes them.
func ExampleSession_Update() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sessions, stop := exampleSessions(ctx)
	defer stop()

	login := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Set("user", r.FormValue("user")) // pending
		err := s.Update(func(v map[string]string) error {
			n, _ := strconv.Atoi(v["logins"])
			v["logins"] = strconv.Itoa(n + 1)
			v["greeting"] = "hello " + v["user"] // f sees the pending Set
			return nil
		})
		if err != nil { // nothing saved, "user" still pending
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%s, login %s", s.Get("greeting"), s.Get("logins"))
	})
	srv := httptest.NewServer(sessions.Handler(login))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	for _, user := range []string{"ann", "bob"} {
		resp, err := browser.Get(srv.URL + "?user=" + user)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	// Output:
	// hello ann, login 1
	// hello bob, login 2
}

// exampleSessions starts a one-member cluster with a replicated store and a
// session manager over it, as Example does, and returns the manager and a
// function that stops them all.
func exampleSessions(ctx context.Context) (*session.Manager, func()) {
	gossip, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	seed := gossip.LocalAddr().String()
	gossip.Close()
	c, err := cluster.Join(ctx, cluster.Options{Name: "web1", Addr: "127.0.0.1:0", Key: []byte("an-example-cluster-key-0123456789"), GossipAddr: seed, Seeds: []string{seed}})
	if err != nil {
		log.Fatal(err)
	}
	store, err := replica.New(replica.Config{Cluster: c})
	if err != nil {
		c.Close()
		log.Fatal(err)
	}
	sessions, err := session.New(session.Options{Store: store, InsecureCookie: true})
	if err != nil {
		store.Close()
		c.Close()
		log.Fatal(err)
	}
	return sessions, func() {
		store.Close()
		c.Close()
	}
}

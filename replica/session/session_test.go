package session_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trellisrpc/trellis/replica/internal/farmtest"
	"github.com/trellisrpc/trellis/replica/session"
)

// counterHandler increments the session's counter and prints it.
func counterHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		var n int
		err := s.Update(func(v map[string]string) error {
			n, _ = strconv.Atoi(v["count"])
			n++
			v["count"] = strconv.Itoa(n)
			return nil
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%d %s", n, name)
	})
}

func TestSessionSurvivesOwnerKill(t *testing.T) {
	f := farmtest.New(t, 3, farmtest.Config{})
	var urls []string
	for _, s := range f.Servers {
		m, err := session.New(session.Options{Store: s.Store, InsecureCookie: true})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(m.Handler(counterHandler(s.Name)))
		t.Cleanup(hs.Close)
		urls = append(urls, hs.URL)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(i int) (int, string) {
		t.Helper()
		resp, err := client.Get(urls[i])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("server %d: %s: %s", i, resp.Status, b)
		}
		n, name, _ := strings.Cut(string(b), " ")
		c, _ := strconv.Atoi(n)
		return c, name
	}
	// The session is created on s0, then served by every node in turn.
	for i := range 6 {
		if n, _ := get(i % 3); n != i+1 {
			t.Fatalf("request %d: counter %d, want %d", i, n, i+1)
		}
	}
	f.Servers[0].Kill()
	f.Agree()
	if n, _ := get(1); n != 7 {
		t.Fatalf("after the owner's kill: counter %d, want 7", n)
	}
	if n, _ := get(2); n != 8 {
		t.Fatalf("counter %d, want 8", n)
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trellisrpc/trellis/cluster"
	clusterstatus "github.com/trellisrpc/trellis/cluster/status"
	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/replica"
	"github.com/trellisrpc/trellis/replica/session"
	"github.com/trellisrpc/trellis/topology"
)

// serverFlags configure one web server.
type serverFlags struct {
	name, http, gossip, seeds, key string
	status                         string // address of the cluster status page ("" for none)
	verbose                        bool
	servers                        int
}

// runServer runs one web server of the farm until SIGINT or SIGTERM, on
// which it hands its sessions to its neighbours and leaves.
func runServer(f serverFlags) error {
	level := slog.LevelError
	if f.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := cluster.Join(ctx, cluster.Options{
		Name: f.name, Addr: "127.0.0.1:0", Key: []byte(f.key), Label: "sessions-example",
		Seeds: strings.Split(f.seeds, ","), GossipAddr: f.gossip, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer cl.Close() // after a graceful Leave, Close does nothing
	// A *cluster.Cluster is what a store needs: its node and its topology.
	store, err := replica.New(replica.Config{Cluster: cl, Logger: logger})
	if err != nil {
		return err
	}
	defer store.Close()
	sessions, err := session.New(session.Options{Store: store, InsecureCookie: true, Logger: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.http)
	if err != nil {
		return err
	}
	w := &web{name: f.name, cl: cl, store: store}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", sessions.Handler(http.HandlerFunc(w.page)))
	mux.Handle("GET /api/visit", sessions.Handler(http.HandlerFunc(w.visit)))
	mux.HandleFunc("GET /api/status", w.status)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	statusURL := "-"
	if f.status != "" {
		st, err := clusterstatus.ForCluster(cl)
		if err != nil {
			return err
		}
		sl, err := net.Listen("tcp", f.status)
		if err != nil {
			return err
		}
		ss := &http.Server{Handler: st, ReadHeaderTimeout: 5 * time.Second}
		go ss.Serve(sl)
		defer ss.Close()
		statusURL = "http://" + sl.Addr().String() + "/"
	}
	fmt.Printf("READY %s http=http://%s/ id=%s status=%s\n", f.name, ln.Addr(), cl.Node().ID(), statusURL)

	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-sig.Done()
	// Graceful stop: hand the sessions over, stop serving, then leave the
	// cluster.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.Leave(ctx); err != nil {
		fmt.Fprintln(os.Stderr, f.name+":", err)
	}
	hs.Shutdown(ctx)
	store.Close()
	if err := cl.Leave(ctx); err != nil {
		fmt.Fprintln(os.Stderr, f.name+":", err)
	}
	fmt.Printf("LEFT %s\n", f.name)
	return nil
}

// web serves a server's pages.
type web struct {
	name  string
	cl    *cluster.Cluster
	store *replica.Store
}

// visitReply is what /api/visit answers, and what the page shows.
type visitReply struct {
	Count   int      `json:"count"`
	Node    string   `json:"node"`
	Owner   string   `json:"owner"`
	Backups []string `json:"backups"`
}

var (
	errDone        = errors.New("already counted")
	errNotExpected = errors.New("counter not as expected")
)

// bump increments the session's counter. With expect ≥ 0 the increment is
// idempotent: the counter becomes expect+1 only if it is expect, and a
// counter already at expect+1 is a retry of an increment that was applied.
func (w *web) bump(r *http.Request, expect int) (visitReply, int, error) {
	s := session.From(r)
	var n int
	err := s.Update(func(v map[string]string) error {
		n, _ = strconv.Atoi(v["count"])
		switch {
		case expect < 0 || n == expect:
			n++
			v["count"] = strconv.Itoa(n)
			return nil
		case n == expect+1:
			return errDone
		default:
			return errNotExpected
		}
	})
	switch {
	case errors.Is(err, errNotExpected):
		return visitReply{Count: n}, http.StatusConflict, fmt.Errorf("counter is %d, not %d", n, expect)
	case errors.Is(err, errDone):
		// A retry of an increment that was applied.
	case err != nil:
		return visitReply{}, http.StatusServiceUnavailable, err
	}
	owner, backups := s.Where()
	rep := visitReply{Count: n, Node: w.name, Owner: w.nameOf(owner)}
	for _, b := range backups {
		rep.Backups = append(rep.Backups, w.nameOf(b))
	}
	return rep, http.StatusOK, nil
}

func (w *web) nameOf(id nodeid.ID) string {
	if m, ok := w.cl.Topology().Lookup(id); ok && m.Name != "" {
		return m.Name
	}
	return id.String()
}

func (w *web) visit(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("peek") {
		// The count as loaded, without a visit.
		n, _ := strconv.Atoi(session.From(r).Get("count"))
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(visitReply{Count: n, Node: w.name})
		return
	}
	expect := -1
	if e := r.URL.Query().Get("expect"); e != "" {
		expect, _ = strconv.Atoi(e)
	}
	rep, code, err := w.bump(r, expect)
	rw.Header().Set("Content-Type", "application/json")
	if err != nil {
		rw.WriteHeader(code)
		json.NewEncoder(rw).Encode(map[string]any{"error": err.Error(), "count": rep.Count})
		return
	}
	json.NewEncoder(rw).Encode(rep)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Trellis sessions</title>
<style>body{font-family:sans-serif;margin:2em}b{font-size:2em}</style></head>
<body><h1>Trellis sessions</h1>
<p>Visits in this session: <b id="count">{{.Count}}</b></p>
<p>Answered by <span id="node">{{.Node}}</span>; the session is owned by
<span id="owner">{{.Owner}}</span>, with copies on
<span id="backups">{{range $i, $b := .Backups}}{{if $i}}, {{end}}{{$b}}{{end}}</span>.</p>
<p><a href="/">Visit again</a></p></body></html>
`))

func (w *web) page(rw http.ResponseWriter, r *http.Request) {
	rep, code, err := w.bump(r, -1)
	if err != nil {
		http.Error(rw, err.Error(), code)
		return
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.Execute(rw, rep)
}

func (w *web) status(rw http.ResponseWriter, r *http.Request) {
	t := w.cl.Topology()
	var names []string
	for _, m := range t.Members {
		names = append(names, m.Name)
	}
	st := w.store.Stats()
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(map[string]any{
		"node": w.name, "epoch": t.Epoch, "members": names, "ring": topology.Diagram(t),
		"owned": st.Owned, "copies": st.Copies,
	})
}

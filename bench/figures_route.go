package main

// The route figure: A → B → C, direct and routed calls.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/trellisrpc/trellis/bench/echo"
	"github.com/trellisrpc/trellis/nodeid"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// routes is a fixed routing table.
type routes map[trellis.NodeID]trellis.NodeID

func (r routes) NextHop(dst trellis.NodeID) (trellis.NodeID, bool) {
	next, ok := r[dst]
	return next, ok
}

// serveRelay starts B: a Trellis server connected onward to the node at
// connect (C), routing calls for C and for the caller (peerID) straight to
// them. It returns " peer C-ID" for the first line of its output.
func serveRelay(addr, connect, peerID string) (string, func(), string, error) {
	a, err := nodeid.Parse(peerID)
	if err != nil {
		return "", nil, "", fmt.Errorf("-peer-id: %v", err)
	}
	n, err := newTrellisServer(addr)
	if err != nil {
		return "", nil, "", err
	}
	stop := func() { n.Close(context.Background()) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.Connect(ctx, connect)
	if err != nil {
		stop()
		return "", nil, "", err
	}
	n.SetRouter(routes{a: a, c: c})
	return n.Addr().String(), stop, " peer " + c.String(), nil
}

// runRouteClient is A of the routing figure.
func runRouteClient(o clientOpts) (err error) {
	stopProfiles, err := startProfiles(o.cpuprofile, o.memprofile)
	if err != nil {
		return err
	}
	defer func() {
		if perr := stopProfiles(); err == nil {
			err = perr
		}
	}()
	aID := nodeid.New()
	c, err := startServerProc("trellis", "", "")
	if err != nil {
		return err
	}
	defer c.close()
	b, err := startServerProc("trellis", o.srvCPU, o.srvMem, "-connect", c.addr, "-peer-id", aID.String())
	if err != nil {
		return err
	}
	defer b.close()
	cID, err := nodeid.Parse(b.peer)
	if err != nil {
		return fmt.Errorf("relay: %v", err)
	}
	ctx := context.Background()
	a, err := trellis.NewNode(trellis.Config{Name: "A", ID: aID, Keyring: benchKeyring})
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	bID, err := a.Connect(ctx, b.addr)
	if err != nil {
		return err
	}
	a.SetRouter(routes{bID: bID, cID: bID})
	direct := &trellisClient{n: a, p: echo.NewEchoerProxy(a, bID)}
	routed := &trellisClient{n: a, p: echo.NewEchoerProxy(a, cID)}
	return serveLines(func(phase, variant string, m *XMeasure) error {
		if phase+" "+variant != "hop both" {
			return fmt.Errorf("route client: unknown phase %q", phase+" "+variant)
		}
		d, r, err := hopPhase(ctx, direct, routed, o)
		if err != nil {
			return err
		}
		if a.Connected(cID) || len(a.Peers()) != 1 {
			return fmt.Errorf("node A is connected to %v: the routed calls may not have gone through B", a.Peers())
		}
		m.Calls, m.P50, m.P99 = len(d), d[len(d)/2], d[len(d)*99/100]
		m.RoutedCalls, m.RoutedP50, m.RoutedP99 = len(r), r[len(r)/2], r[len(r)*99/100]
		return nil
	})
}

// hopPhase: one caller, small calls alternately on direct and on routed,
// for o.warmup, then for 2×o.seqDur measured; the sorted latencies of each.
func hopPhase(ctx context.Context, direct, routed caller, o clientOpts) (d, r []time.Duration, err error) {
	req := payloads["small"].req(0)
	call := func(cl caller, id int64) (time.Duration, error) {
		req.ID = id
		t0 := time.Now()
		resp, err := cl.Echo(ctx, &req)
		lat := time.Since(t0)
		if err == nil {
			err = verify(&req, &resp)
		}
		return lat, err
	}
	id := int64(1)
	for t := time.Now(); time.Since(t) < o.warmup; id += 2 {
		if _, err := call(direct, id); err != nil {
			return nil, nil, err
		}
		if _, err := call(routed, id+1); err != nil {
			return nil, nil, err
		}
	}
	d, r = make([]time.Duration, 0, 1<<16), make([]time.Duration, 0, 1<<16)
	for end := time.Now().Add(2 * o.seqDur); time.Now().Before(end); id += 2 {
		ld, err := call(direct, id)
		if err != nil {
			return nil, nil, fmt.Errorf("direct call: %v", err)
		}
		lr, err := call(routed, id+1)
		if err != nil {
			return nil, nil, fmt.Errorf("routed call: %v", err)
		}
		d, r = append(d, ld), append(r, lr)
	}
	slices.Sort(d)
	slices.Sort(r)
	return d, r, nil
}

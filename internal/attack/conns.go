package attack

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/trellisrpc/trellis/nodeid"
	"github.com/trellisrpc/trellis/runtime/wire"
	"github.com/trellisrpc/trellis/transport"
)

// ConnFlood opens, as a member, as many connections as 8 workers can,
// each with a node ID of its own, and holds them: the target must refuse
// them beyond its limit rather than hold ~150 KiB and three goroutines for
// each.
func ConnFlood(ctx context.Context, t *Target) (string, error) {
	const maxHeld = 4000 // the attacker's own file descriptors
	var (
		mu      sync.Mutex
		held    []*transport.Conn
		opened  atomic.Int64
		refused atomic.Int64
		reason  atomic.Value
		wg      sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && opened.Load() < maxHeld {
				c, err := transport.Dial(ctx, t.Addr, member(t), t.ID)
				var he *transport.HandshakeError
				switch {
				case errors.As(err, &he) && he.Remote:
					refused.Add(1)
					reason.Store(he.Reason)
					continue
				case err != nil:
					continue
				}
				opened.Add(1)
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-ctx.Done()
	for _, c := range held {
		c.Abort(nil)
	}
	why, _ := reason.Load().(string)
	return fmt.Sprintf("%d connections opened and held, %d refused (%q)", opened.Load(), refused.Load(), why), nil
}

// member returns the attacker's transport configuration as a member with
// a node ID of its own.
func member(t *Target) transport.Config {
	cfg := t.Transport
	cfg.Self = nodeid.New()
	return cfg
}

// counter is a transport.Handler that counts the requests and replies it
// receives, and answers nothing.
type counter struct {
	requests, replies, errors atomic.Int64
	replied                   chan struct{} // capacity 1: a reply arrived
	closed                    chan struct{}
}

func newCounter() *counter {
	return &counter{replied: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (h *counter) HandleMessage(kind transport.Kind, id uint64, payload []byte) error {
	switch kind {
	case kindRequest:
		h.requests.Add(1)
	case kindResponse:
		h.replies.Add(1)
		if isErrorResponse(payload) {
			h.errors.Add(1)
		}
		select {
		case h.replied <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h *counter) HandleGoAway()      {}
func (h *counter) HandleClosed(error) { close(h.closed) }

// BigThenIdle opens 100 member connections, sends on each one 4 MiB call
// (of a method the target does not have), waits for its reply and then
// idles: the target must not keep a buffer that size for each connection.
func BigThenIdle(ctx context.Context, t *Target) (string, error) {
	const conns, size = 100, 4 << 20
	msg := appendRequest(nil, request{method: 0x5eed})
	msg = append(msg, make([]byte, size-len(msg))...)
	var held []*transport.Conn
	defer func() {
		for _, c := range held {
			c.Abort(nil)
		}
	}()
	var answered, closed int
	for i := 0; i < conns && ctx.Err() == nil; i++ {
		c, err := transport.Dial(ctx, t.Addr, member(t), t.ID)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			return "", fmt.Errorf("connection %d: %w", i, err)
		}
		held = append(held, c)
		h := newCounter()
		c.Start(h)
		buf := transport.GetBuffer()
		buf.Write(msg)
		if err := c.Send(ctx, kindRequest, 1, buf); err != nil {
			closed++
			continue
		}
		select {
		case <-h.replied:
			answered++
		case <-h.closed:
			closed++
		case <-ctx.Done():
		}
	}
	<-ctx.Done()
	return fmt.Sprintf("%d connections each sent a %d MiB call and then idled: %d answered, %d closed", len(held), size>>20, answered, closed), nil
}

// RelayFlood opens two member connections, A and B, and sends on A, as
// fast as the target reads them, routed calls whose destination is B,
// which reads them and never answers: the target must not hold a relay
// record for each.
func RelayFlood(ctx context.Context, t *Target) (string, error) {
	ca, cb := member(t), member(t)
	a, err := transport.Dial(ctx, t.Addr, ca, t.ID)
	if err != nil {
		return "", err
	}
	defer a.Abort(nil)
	b, err := transport.Dial(ctx, t.Addr, cb, t.ID)
	if err != nil {
		return "", err
	}
	defer b.Abort(nil)
	ha, hb := newCounter(), newCounter()
	a.Start(ha)
	b.Start(hb)
	req := appendRequest(nil, request{routed: true, dst: cb.Self, src: ca.Self, ttl: 8, method: methodEcho})
	req = append(req, wire.AppendString(wire.AppendArrayHeader(nil, 1), "relay me")...)
	sent := 0
	for id := uint64(1); ctx.Err() == nil; id++ {
		buf := transport.GetBuffer()
		buf.Write(req)
		if err := a.Send(ctx, kindRequest, id, buf); err != nil {
			break
		}
		sent++
	}
	return fmt.Sprintf("%d routed calls to a member that never answers: %d relayed to it, %d refused",
		sent, hb.requests.Load(), ha.errors.Load()), nil
}

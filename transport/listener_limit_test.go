package transport

import (
	"errors"
	"strings"
	"testing"

	"github.com/trellisrpc/trellis/nodeid"
)

// A member can open as many connections as it likes, each with a node id
// of its own: beyond MaxConns open at once, a Listener refuses dialers in
// the handshake with a reason that says why, and takes them again once one
// has closed.
func TestListenerMaxConns(t *testing.T) {
	checkLeaks(t)
	const limit = 3
	lcfg := testConfig(1, nil)
	lcfg.MaxConns = limit
	l := listen(t, lcfg)
	dial := func(self uint64) (*Conn, error) {
		c, err := Dial(ctxT(t), l.Addr().String(), testConfig(nodeid.ID(self), nil), 1)
		if err == nil {
			closeAtEnd(t, c)
		}
		return c, err
	}
	var accepted []*Conn
	for i := range limit {
		if _, err := dial(uint64(10 + i)); err != nil {
			t.Fatalf("dial %d within the limit: %v", i, err)
		}
		a := accept(t, l)
		closeAtEnd(t, a)
		accepted = append(accepted, a)
	}
	_, err := dial(20)
	var he *HandshakeError
	if !errors.As(err, &he) || !he.Remote || !strings.Contains(he.Reason, "3 connections open, its limit (MaxConns)") {
		t.Fatalf("dial beyond the limit: %v; want a refusal that names MaxConns", err)
	}
	accepted[0].Abort(nil)
	if _, err := dial(21); err != nil {
		t.Fatalf("dial once a connection closed: %v", err)
	}
	closeAtEnd(t, accept(t, l))
}

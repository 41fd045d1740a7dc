package transport

import (
	"fmt"
	"sync/atomic"
)

// A Budget bounds the memory that all the connections of one node hold on
// behalf of their peers, and shares it. It is charged with the partly
// received messages of every connection, with the replies each owes its
// peer and has not written yet (Conn.SendReply), and with what Handlers
// hold for peers (Conn.Charge: the arguments of calls being served). The
// connections together never hold more than the limit, and while the
// others hold more than half of it a connection may hold no more than its
// share, the limit divided by the number of connections (so one message
// of up to half the limit always fits while the others hold little); nor
// may one connection owe its peer replies of more than half the limit.
//
// A connection whose partly received messages ask for more than they may
// is closed with a *ProtocolError: a peer that opens many messages and
// completes none, on one connection or on many, cannot hold more than the
// node's limit. A reply or a charge refused fails with ErrOverBudget
// instead, and the connection stays up. Give the same Budget to every
// Listener and Dial of a node (Config.Budget). A Budget is safe for
// concurrent use.
type Budget struct {
	limit int64
	used  atomic.Int64
	conns atomic.Int64
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Limit returns the budget's limit in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Used returns the bytes held now by the connections sharing the budget.
func (b *Budget) Used() int64 { return b.used.Load() }

// join and leave count the connections that share the budget.
func (b *Budget) join()  { b.conns.Add(1) }
func (b *Budget) leave() { b.conns.Add(-1) }

// take charges n more bytes for a connection that holds held bytes,
// reporting whether it may.
func (b *Budget) take(n, held int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if used-held > b.limit/2 && held+n > b.limit/max(1, b.conns.Load()) {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// takeOwed charges n bytes of a reply owed by a connection that holds held
// bytes of replies and charges, reporting whether it may: as take, and one
// connection owes no more than half the limit (beyond its first reply).
func (b *Budget) takeOwed(n, held int64) bool {
	if held > 0 && held+n > b.limit/2 {
		return false
	}
	return b.take(n, held)
}

// force charges n bytes that cannot be refused (a small reply).
func (b *Budget) force(n int64) { b.used.Add(n) }

// give returns n bytes to the budget.
func (b *Budget) give(n int64) { b.used.Add(-n) }

func (b *Budget) refusal(held int64) error {
	return &ProtocolError{Reason: fmt.Sprintf("partly received messages (%d bytes held) exceed this connection's share of the node's budget (%d bytes used of %d, %d connections)",
		held, b.used.Load(), b.limit, b.conns.Load())}
}

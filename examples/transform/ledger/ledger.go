// Package ledger is the service of the transform example: a Ledger whose
// arguments and results hold *Account values, which cannot be serialized
// as they are.
//
// An Account holds a lock and an open journal file. Two ways let it cross
// the network:
//
//   - By value, through a marshal transformer registered on both nodes with
//     runtime.RegisterTransformer: on the way out an *Account is replaced by
//     its Snapshot, and on the way in a new Account is built from the
//     snapshot (Restore), journaling to the receiving node's own file.
//     proxygen is told with -transformed Account that it need not look into
//     the type (without it, it refuses a type it cannot serialize), and
//     lists *Account in the desc of Settle: a node that has not registered
//     the transformer refuses to call or serve Settle
//     (runtime.ErrNoTransformer) rather than send an empty Account.
//   - By reference, as a Wallet: Wallet is a service interface that *Account
//     implements, so an account passed as a Wallet stays live on its node and
//     the receiver gets a proxy whose calls act on the original.
package ledger

import (
	"context"
)

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Ledger,Wallet -transformed Account

// Ledger settles postings on accounts.
type Ledger interface {
	// Settle applies the postings to the accounts they carry and returns
	// the resulting accounts by ID. The accounts cross by value (as
	// snapshots): Settle works on copies, and the caller's own accounts
	// are unchanged.
	Settle(ctx context.Context, postings []Posting) (map[string]*Account, error)
	// Pay credits amount to w and returns w's new balance. w crosses by
	// reference: the credit is applied to the caller's account itself.
	Pay(ctx context.Context, w Wallet, amount int64, memo string) (int64, error)
}

// Wallet is the live face of an account; *Account implements it.
type Wallet interface {
	// Credit adds amount (a debit if negative) and returns the new balance.
	Credit(ctx context.Context, amount int64, memo string) (int64, error)
}

// A Posting is an amount to add to an account.
type Posting struct {
	Account *Account // crosses as a Snapshot
	Amount  int64
	Memo    string
}

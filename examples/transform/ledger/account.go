package ledger

import (
	"context"
	"fmt"
	"os"
	"sync"
)

// An Account is a bank account that lives on one node. It cannot be
// serialized as it is: its fields are unexported, it holds a lock, and it
// writes every change to a journal, an open file of its node.
type Account struct {
	mu      sync.Mutex
	id      string
	owner   string
	balance int64
	journal *os.File
}

// NewAccount returns an account that journals its changes to journal.
func NewAccount(id, owner string, balance int64, journal *os.File) *Account {
	return &Account{id: id, owner: owner, balance: balance, journal: journal}
}

// ID returns the account's identifier.
func (a *Account) ID() string { return a.id }

// Balance returns the account's balance.
func (a *Account) Balance() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.balance
}

// String describes the account.
func (a *Account) String() string {
	return fmt.Sprintf("%s (%s) %d", a.id, a.owner, a.Balance())
}

// Credit implements Wallet: it adds amount to the balance and writes the
// change to the journal.
func (a *Account) Credit(ctx context.Context, amount int64, memo string) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.balance+amount < 0 {
		return a.balance, fmt.Errorf("ledger: %s: %d would overdraw %d", a.id, amount, a.balance)
	}
	a.balance += amount
	if _, err := fmt.Fprintf(a.journal, "%s %+d %q -> %d\n", a.id, amount, memo, a.balance); err != nil {
		return a.balance, err
	}
	return a.balance, nil
}

// A Snapshot is the state of an Account: its wire form when a marshal
// transformer replaces it (see the package documentation).
type Snapshot struct {
	ID      string
	Owner   string
	Balance int64
}

// Snapshot returns the account's state.
func (a *Account) Snapshot() Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Snapshot{ID: a.id, Owner: a.owner, Balance: a.balance}
}

// Restore returns a new account with the state s, journaling to journal.
// A marshal transformer that restores the accounts of a message makes one
// Account per Snapshot: an account that appeared twice in the message
// arrives as two distinct objects. An object that must remain one live
// object is passed by reference instead, as a Wallet.
func Restore(s Snapshot, journal *os.File) *Account {
	return NewAccount(s.ID, s.Owner, s.Balance, journal)
}

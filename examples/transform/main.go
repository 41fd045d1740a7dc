// Command transform runs two Trellis nodes in one process, over TCP on
// 127.0.0.1, and passes objects that cannot be serialized in a remote call.
//
// A *ledger.Account holds a lock and an open journal file. Both nodes
// register a marshal transformer (runtime.RegisterTransformer) that replaces
// every *Account in the arguments and results of a call by a snapshot, and
// builds a new Account from it on arrival, journaling to the receiving
// node's own file. bob sends accounts inside a slice of postings to
// alice's Ledger.Settle and receives the settled accounts inside a map.
//
// An object that must stay live is passed by reference instead: Wallet is
// a service interface that *Account implements, and an account passed as a
// Wallet to Ledger.Pay is credited in place, on bob's node.
//
//	go run ./examples/transform
package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/trellisrpc/trellis/examples/transform/ledger"
	"github.com/trellisrpc/trellis/keyring"
	"github.com/trellisrpc/trellis/runtime"
	"github.com/trellisrpc/trellis/runtime/runtimetest"
)

// clerk implements ledger.Ledger on alice's node.
type clerk struct{}

// Settle implements ledger.Ledger. The accounts in postings were restored
// from snapshots on alice's node: they are alice's copies.
func (clerk) Settle(ctx context.Context, postings []ledger.Posting) (map[string]*ledger.Account, error) {
	// Each posting carries its own copy of its account; settle on the first
	// copy of each.
	accounts := make(map[string]*ledger.Account)
	for i, p := range postings {
		if p.Account == nil {
			return nil, fmt.Errorf("posting %d has no account", i)
		}
		a := accounts[p.Account.ID()]
		if a == nil {
			a = p.Account
			accounts[a.ID()] = a
		}
		if _, err := a.Credit(ctx, p.Amount, p.Memo); err != nil {
			return nil, err
		}
	}
	return accounts, nil
}

// Pay implements ledger.Ledger. w is a proxy of the caller's account:
// Credit runs on the caller's node.
func (clerk) Pay(ctx context.Context, w ledger.Wallet, amount int64, memo string) (int64, error) {
	defer runtime.Release(w) // done with it: release now rather than at the next GC
	return w.Credit(ctx, amount, memo)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "transform:", err)
		os.Exit(1)
	}
}

// newNode starts a node of the cluster whose key ring holds, with its own
// journal file, and registers the *Account transformer on it. The caller
// closes both.
func newNode(name, addr string, ring *keyring.Ring) (*runtime.Node, *os.File, error) {
	journal, err := os.CreateTemp("", "trellis-"+name+"-journal-*.log")
	if err != nil {
		return nil, nil, err
	}
	n, err := runtime.NewNode(runtime.Config{Name: name, Addr: addr, Keyring: ring})
	if err == nil {
		err = transformAccounts(n, journal)
	}
	if err != nil {
		journal.Close()
		os.Remove(journal.Name())
		return nil, nil, err
	}
	return n, journal, nil
}

// transformAccounts registers on n the marshal transformer of *Account:
// wherever an *Account appears in the arguments or results of a call that n
// sends or serves (here inside a slice of postings and inside a map), it
// crosses as its Snapshot and arrives as a new Account that journals to
// journal, the file of the receiving node. The functions print what they
// do, to show the round trip.
func transformAccounts(n *runtime.Node, journal *os.File) error {
	name := n.Name()
	return runtime.RegisterTransformer(n,
		func(a *ledger.Account) (ledger.Snapshot, error) {
			s := a.Snapshot()
			fmt.Printf("    %-5s out %v -> %+v\n", name, a, s)
			return s, nil
		},
		func(s ledger.Snapshot) (*ledger.Account, error) {
			a := ledger.Restore(s, journal)
			fmt.Printf("    %-5s in  %+v -> new %v\n", name, s, a)
			return a, nil
		})
}

// closeJournal prints the journal of node name, then closes and removes it.
func closeJournal(name string, journal *os.File) {
	defer os.Remove(journal.Name())
	defer journal.Close()
	b, err := os.ReadFile(journal.Name())
	if err != nil {
		fmt.Fprintln(os.Stderr, "transform:", err)
		return
	}
	fmt.Printf("%s's journal:\n", name)
	for line := range strings.Lines(string(b)) {
		fmt.Printf("  %s", line)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The cluster key: only nodes that hold it connect to each other.
	ring, err := keyring.New(keyring.NewKey())
	if err != nil {
		return err
	}
	alice, aliceJournal, err := newNode("alice", "127.0.0.1:0", ring)
	if err != nil {
		return err
	}
	defer closeJournal("alice", aliceJournal)
	defer alice.Close(context.Background())
	if err := ledger.RegisterLedger(alice, clerk{}); err != nil {
		return err
	}

	bob, bobJournal, err := newNode("bob", "", ring)
	if err != nil {
		return err
	}
	defer closeJournal("bob", bobJournal)
	defer bob.Close(context.Background())
	aliceID, err := bob.Connect(ctx, alice.Addr().String())
	if err != nil {
		return err
	}
	var l ledger.Ledger = ledger.NewLedgerProxy(bob, aliceID)
	fmt.Printf("bob connected to alice (%s) at %s\n", aliceID, alice.Addr())

	// bob's accounts, live on bob's node.
	ada := ledger.NewAccount("ada", "Ada Lovelace", 100, bobJournal)
	grace := ledger.NewAccount("grace", "Grace Hopper", 250, bobJournal)
	fmt.Printf("bob's accounts: %v, %v\n", ada, grace)

	// By value: the accounts inside the postings cross as snapshots, and
	// the settled accounts come back inside a map as new objects.
	postings := []ledger.Posting{
		{Account: ada, Amount: -30, Memo: "coffee beans"},
		{Account: grace, Amount: +30, Memo: "coffee beans"},
		{Account: ada, Amount: +5, Memo: "refund"},
	}
	fmt.Printf("bob: Settle(%d postings) on alice\n", len(postings))
	settled, err := l.Settle(ctx, postings)
	if err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(settled)) {
		a := settled[id]
		fmt.Printf("  settled %v (a new object: %v)\n", a, a != ada && a != grace)
	}
	fmt.Printf("bob's own accounts are unchanged: %v, %v\n", ada, grace)

	// By reference: ada crosses as a Wallet, and alice's Credit call comes
	// back to bob's node and changes ada herself.
	balance, err := l.Pay(ctx, ada, 42, "interest")
	if err != nil {
		return err
	}
	fmt.Printf("bob: Pay(ada as a Wallet, 42) on alice = %d; bob's ada is now %v\n", balance, ada)

	// Nothing stays exported once alice has released her Wallet proxy.
	if err := runtimetest.WaitNoLeaks(2*time.Second, alice, bob); err != nil {
		return err
	}
	fmt.Printf("references: alice %+v, bob %+v\n", alice.RefStats(), bob.RefStats())
	return nil
}

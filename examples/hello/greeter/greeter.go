// Package greeter is the service of the hello example: an ordinary Go
// interface from which proxygen generates a proxy and a stub.
package greeter

import (
	"context"
	"errors"
	"time"
)

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Greeter

// Greeter greets people.
type Greeter interface {
	// Hello returns a greeting for name.
	Hello(ctx context.Context, name string) (Greeting, error)
	// Count returns how many greetings were made.
	Count(ctx context.Context) (int, error)
}

// A Greeting is what Hello returns.
type Greeting struct {
	Text string
	From string
	At   time.Time
}

// ErrNoName is returned by Hello for an empty name.
var ErrNoName = errors.New("greeter: no name given")

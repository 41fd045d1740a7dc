// Package ringsvc is the service each node of the ring example serves.
package ringsvc

import "context"

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Where

// Where tells a caller which node answered and how far the call travelled.
type Where interface {
	// Where returns the answering node's name and the number of
	// connections the call crossed to reach it.
	Where(ctx context.Context, from string) (Answer, error)
}

// An Answer is the reply of Where.
type Answer struct {
	Node string
	Hops int
}

// Package feed is the service of the callback example: a Feed to which
// other nodes subscribe by passing a Subscriber, which the feed calls back.
//
// Subscriber is in the same proxygen -type set as Feed, so a Subscriber
// parameter crosses by reference: the subscriber object stays on its own
// node, and the feed receives a proxy whose calls go back to it.
package feed

import (
	"context"
	"time"
)

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Feed,Subscriber

// Feed delivers the events published on topics to remote subscribers.
type Feed interface {
	// Subscribe registers s for the events of topic. s is passed by
	// reference: the feed keeps a proxy of it and calls s.Event on the
	// subscriber's node for every event until Unsubscribe.
	Subscribe(ctx context.Context, topic string, s Subscriber) error
	// Unsubscribe cancels the subscriptions to topic made by the calling
	// node; the feed releases its proxies of them.
	Unsubscribe(ctx context.Context, topic string) error
}

// Subscriber receives events; it is implemented by subscribers and passed
// to Feed.Subscribe by reference.
type Subscriber interface {
	// Event delivers one event.
	Event(ctx context.Context, e Event) error
}

// An Event is one publication on a topic.
type Event struct {
	Topic string
	Seq   int // numbers the events of a topic from 1
	Text  string
	At    time.Time
}

// Package echo is the service every system of the benchmark serves, in the
// shape a Trellis user writes it: one interface, plain structs.
package echo

import "context"

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Echoer,Streamer

// Echoer returns its request as its response.
type Echoer interface {
	Echo(ctx context.Context, req Req) (Resp, error)
}

// Req is the request of Echo.
type Req struct {
	ID      int64
	Name    string
	Tags    []string
	Payload []byte
}

// Resp is the response of Echo: the fields of the request, sent back.
type Resp struct {
	ID      int64
	Name    string
	Tags    []string
	Payload []byte
}

// Impl is the Echoer the servers run: it copies the request into the
// response, sharing the slices (as every other system's handler does).
type Impl struct{}

// Echo returns req as a Resp.
func (Impl) Echo(_ context.Context, req Req) (Resp, error) {
	return Resp(req), nil
}

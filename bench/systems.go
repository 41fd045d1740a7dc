package main

import (
	"context"
	"net"

	"github.com/trellisrpc/trellis/bench/echo"
)

// A caller makes Echo calls; one is shared by all the callers of a phase.
type caller interface {
	Echo(ctx context.Context, req *echo.Req) (echo.Resp, error)
	Close() error
}

// A system is one RPC stack under test.
type system struct {
	name  string
	about string
	// serve starts a server listening on addr and returns its address and
	// a function that stops it.
	serve func(addr string) (string, func(), error)
	dial  func(ctx context.Context, addr string) (caller, error)
}

var systems = []*system{
	{"trellis", "Trellis, generated proxy, one connection, CBOR, cluster key", serveTrellis, dialTrellis},
	{"trellis-open", "the same with authentication off (Insecure)", serveTrellisOpen, dialTrellisOpen},
	{"grpc", "gRPC-Go unary, protobuf, default options", serveGRPC, dialGRPC},
	{"netrpc", "net/rpc with gob, one connection", serveNetRPC, dialNetRPC},
	{"raw", "raw TCP echo, pipelined, requests handled inline (the floor)", serveRawInline, dialRaw},
	{"raw-go", "raw TCP echo, pipelined, a goroutine per request", serveRawPerRequest, dialRaw},
}

func findSystem(name string) *system {
	for _, s := range systems {
		if s.name == name {
			return s
		}
	}
	return nil
}

func serveRawInline(addr string) (string, func(), error)     { return listenRaw(addr, false) }
func serveRawPerRequest(addr string) (string, func(), error) { return listenRaw(addr, true) }

func listenRaw(addr string, perRequest bool) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	go serveRaw(ln, perRequest)
	return ln.Addr().String(), func() { ln.Close() }, nil
}

package main

import (
	"context"
	"errors"
	"net"
	"net/rpc"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellisrpc/trellis/bench/echo"
	"github.com/trellisrpc/trellis/bench/pb"
	"github.com/trellisrpc/trellis/keyring"
	trellis "github.com/trellisrpc/trellis/runtime"
)

// ---- Trellis: the generated proxy over one connection ----

// benchKeyring is the cluster key of the benchmark's Trellis nodes, which
// may run in separate processes: a fixed key, fit for a benchmark only.
var benchKeyring = func() *keyring.Ring {
	r, err := keyring.New([]byte("trellis-bench-cluster-key-000000"))
	if err != nil {
		panic(err)
	}
	return r
}()

// authOn is the authentication of the "trellis" system (the default: the
// cluster key), authOff that of "trellis-open" (Insecure), to measure what
// authentication costs in the same run.
var (
	authOn  = trellis.Config{Keyring: benchKeyring}
	authOff = trellis.Config{Insecure: true}
)

func serveTrellis(addr string) (string, func(), error)     { return serveTrellisWith(addr, authOn) }
func serveTrellisOpen(addr string) (string, func(), error) { return serveTrellisWith(addr, authOff) }

func serveTrellisWith(addr string, auth trellis.Config) (string, func(), error) {
	n, err := newTrellisServerWith(addr, auth)
	if err != nil {
		return "", nil, err
	}
	return n.Addr().String(), func() { n.Close(context.Background()) }, nil
}

// newTrellisServer starts a node serving Echoer (and Streamer, for the
// stream figures) on addr, with the cluster key.
func newTrellisServer(addr string) (*trellis.Node, error) { return newTrellisServerWith(addr, authOn) }

func newTrellisServerWith(addr string, auth trellis.Config) (*trellis.Node, error) {
	n, err := trellis.NewNode(trellis.Config{Name: "bench-server", Addr: addr, Keyring: auth.Keyring, Insecure: auth.Insecure})
	if err != nil {
		return nil, err
	}
	if err := errors.Join(echo.RegisterEchoer(n, echo.Impl{}), echo.RegisterStreamer(n, echo.StreamImpl{})); err != nil {
		n.Close(context.Background())
		return nil, err
	}
	return n, nil
}

type trellisClient struct {
	n *trellis.Node
	p *echo.EchoerProxy
}

func dialTrellis(ctx context.Context, addr string) (caller, error) {
	return dialTrellisWith(ctx, addr, authOn)
}

func dialTrellisOpen(ctx context.Context, addr string) (caller, error) {
	return dialTrellisWith(ctx, addr, authOff)
}

func dialTrellisWith(ctx context.Context, addr string, auth trellis.Config) (caller, error) {
	n, err := trellis.NewNode(trellis.Config{Name: "bench-client", Keyring: auth.Keyring, Insecure: auth.Insecure})
	if err != nil {
		return nil, err
	}
	id, err := n.Connect(ctx, addr)
	if err != nil {
		n.Close(ctx)
		return nil, err
	}
	return &trellisClient{n: n, p: echo.NewEchoerProxy(n, id)}, nil
}

func (c *trellisClient) Echo(ctx context.Context, req *echo.Req) (echo.Resp, error) {
	return c.p.Echo(ctx, *req)
}

func (c *trellisClient) Close() error { return c.n.Close(context.Background()) }

// ---- gRPC-Go: unary calls, protobuf, default options ----

type grpcServer struct {
	pb.UnimplementedEchoServer
}

func (grpcServer) Echo(ctx context.Context, in *pb.EchoMsg) (*pb.EchoMsg, error) {
	r, err := echo.Impl{}.Echo(ctx, echo.Req{ID: in.Id, Name: in.Name, Tags: in.Tags, Payload: in.Payload})
	if err != nil {
		return nil, err
	}
	return &pb.EchoMsg{Id: r.ID, Name: r.Name, Tags: r.Tags, Payload: r.Payload}, nil
}

func serveGRPC(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	s := grpc.NewServer()
	pb.RegisterEchoServer(s, grpcServer{})
	go s.Serve(ln)
	return ln.Addr().String(), s.Stop, nil
}

type grpcClient struct {
	cc *grpc.ClientConn
	c  pb.EchoClient
}

func dialGRPC(ctx context.Context, addr string) (caller, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &grpcClient{cc: cc, c: pb.NewEchoClient(cc)}, nil
}

func (c *grpcClient) Echo(ctx context.Context, req *echo.Req) (echo.Resp, error) {
	r, err := c.c.Echo(ctx, &pb.EchoMsg{Id: req.ID, Name: req.Name, Tags: req.Tags, Payload: req.Payload})
	if err != nil {
		return echo.Resp{}, err
	}
	return echo.Resp{ID: r.Id, Name: r.Name, Tags: r.Tags, Payload: r.Payload}, nil
}

func (c *grpcClient) Close() error { return c.cc.Close() }

// ---- net/rpc with gob ----

// NetRPCEcho is the net/rpc receiver.
type NetRPCEcho struct{}

// Echo serves echo.Impl.
func (NetRPCEcho) Echo(req *echo.Req, resp *echo.Resp) error {
	r, err := echo.Impl{}.Echo(context.Background(), *req)
	*resp = r
	return err
}

func serveNetRPC(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	s := rpc.NewServer()
	if err := s.RegisterName("Echo", NetRPCEcho{}); err != nil {
		ln.Close()
		return "", nil, err
	}
	go s.Accept(ln)
	return ln.Addr().String(), func() { ln.Close() }, nil
}

type netrpcClient struct{ c *rpc.Client }

func dialNetRPC(ctx context.Context, addr string) (caller, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return netrpcClient{rpc.NewClient(conn)}, nil
}

func (c netrpcClient) Echo(ctx context.Context, req *echo.Req) (echo.Resp, error) {
	var resp echo.Resp
	err := c.c.Call("Echo.Echo", req, &resp)
	return resp, err
}

func (c netrpcClient) Close() error { return c.c.Close() }

package testsvc

//go:generate go run github.com/trellisrpc/trellis/cmd/proxygen -type Shard -output shard_trellis.go

import (
	"context"
	"sync/atomic"
)

// Shard is served by several members of a cluster; tests call it through
// cluster proxies and count where calls ran.
type Shard interface {
	// Who returns the name of the node that serves the call.
	Who(ctx context.Context, key string) (string, error)
	// Hit counts an execution and returns the node's name; if the
	// implementation's Block is set, it first waits until ctx is done.
	Hit(ctx context.Context, key string) (string, error)
	// Look does what Hit does, and is declared idempotent.
	//
	//trellis:idempotent
	Look(ctx context.Context, key string) (string, error)
}

// ShardImpl implements Shard for the node called Name.
type ShardImpl struct {
	Name string
	// Runs counts the executions of Hit and Look.
	Runs atomic.Int64
	// Block makes Hit and Look wait until their context is done, after
	// sending Name on Started (if set).
	Block   atomic.Bool
	Started chan string
}

// Who implements Shard.
func (s *ShardImpl) Who(ctx context.Context, key string) (string, error) { return s.Name, nil }

// Hit implements Shard.
func (s *ShardImpl) Hit(ctx context.Context, key string) (string, error) {
	s.Runs.Add(1)
	if s.Block.Load() {
		if s.Started != nil {
			s.Started <- s.Name
		}
		<-ctx.Done()
		return "", ctx.Err()
	}
	return s.Name, nil
}

// Look implements Shard.
func (s *ShardImpl) Look(ctx context.Context, key string) (string, error) { return s.Hit(ctx, key) }

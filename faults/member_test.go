package faults

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
)

// Members run in the test process (node.Start) on their disks, with
// short raft timings, a raft log truncation every 100 applied entries
// (20 kept for followers), and the same flags as etcd's defaults
// otherwise.

const (
	heartbeat   = 50 * time.Millisecond
	election    = 500 * time.Millisecond
	startWithin = 20 * time.Second // a member's start, a cluster's convergence
)

// memberConfig is a member's configuration, serving clients on a port of
// its own; the caller adds the peer URLs and the cluster.
func memberConfig(t testing.TB, name string) node.Config {
	cfg := nodetest.Config(name, "/"+name)
	cfg.InitialClusterToken = "faults"
	cfg.SnapshotCount, cfg.SnapshotCatchUpEntries = 100, 20
	cfg.StrictReconfigCheck = true
	cfg.HeartbeatInterval, cfg.ElectionTimeout = heartbeat, election
	cfg.Logger = testLogger(t)
	return cfg
}

// loneConfig is a one-member cluster without a peer listener.
func loneConfig(t testing.TB, name string) node.Config {
	cfg := memberConfig(t, name)
	cfg.InitialCluster = map[string][]string{name: {"http://127.0.0.1:1"}}
	return cfg
}

// testLogger is silent unless METASTORE_FAULTS_LOG names a level (info,
// warn, error): hundreds of members start in a run.
func testLogger(t testing.TB) *zap.Logger {
	level, err := zapcore.ParseLevel(os.Getenv("METASTORE_FAULTS_LOG"))
	if os.Getenv("METASTORE_FAULTS_LOG") == "" || err != nil {
		return zap.NewNop()
	}
	return zaptest.NewLogger(t, zaptest.Level(level))
}

// startOn starts a member with cfg on fs and waits until it serves.
func startOn(cfg node.Config, fs vfs.FS) (*node.Node, error) {
	cfg.FS = fs
	n, err := node.Start(cfg)
	if err != nil {
		return nil, err
	}
	if err := nodetest.WaitReady(n); err != nil {
		n.Stop()
		return nil, err
	}
	return n, nil
}

// dial connects to a member's client address; the connection outlives
// restarts of a member on the same port, and reconnects fast.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitApplied waits until the member has a leader and has applied what
// it knows committed, at least index; it returns its status.
func waitApplied(ctx context.Context, conn *grpc.ClientConn, index uint64) (*pb.StatusResponse, error) {
	mc := pb.NewMaintenanceClient(conn)
	for {
		st, err := mc.Status(ctx, &pb.StatusRequest{})
		if err == nil && st.Leader != 0 && st.RaftAppliedIndex >= st.RaftIndex && st.RaftAppliedIndex >= index {
			return st, nil
		}
		if sleepCtx(ctx) != nil {
			if err == nil {
				err = fmt.Errorf("applied %d of %d (want %d), leader %x", st.RaftAppliedIndex, st.RaftIndex, index, st.Leader)
			}
			return nil, fmt.Errorf("not caught up: %w", err)
		}
	}
}

// sleepCtx waits a poll's interval, or until ctx ends (its error).
func sleepCtx(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Millisecond):
		return nil
	}
}

package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/metastore/metastore/node"
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

// memberConfig is a member's configuration; the caller adds the URLs and
// the cluster.
func memberConfig(t testing.TB, name string) node.Config {
	return node.Config{
		Name: name, DataDir: "/" + name,
		InitialClusterToken: "faults", InitialClusterState: "new",
		SnapshotCount: 100, SnapshotCatchUpEntries: 20,
		StrictReconfigCheck: true, MaxLearners: 1,
		HeartbeatInterval: heartbeat, ElectionTimeout: election,
		QuotaBackendBytes: 2 << 30, MaxRequestBytes: 1.5 * 1024 * 1024, MaxTxnOps: 128,
		WatchProgressNotifyInterval: 10 * time.Minute, BcryptCost: 4, AuthTokenTTL: 300 * time.Second,
		Logger: testLogger(t),
	}
}

// loneConfig is a one-member cluster without a peer listener, serving
// clients on a port of its own.
func loneConfig(t testing.TB, name string) node.Config {
	cfg := memberConfig(t, name)
	cfg.InitialCluster = map[string][]string{name: {"http://127.0.0.1:1"}}
	cfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
	cfg.AdvertiseClientURLs = cfg.ListenClientURLs
	return cfg
}

// testLogger is silent unless METASTORE_FAULTS_LOG is set: hundreds of
// members start in a run.
func testLogger(t testing.TB) *zap.Logger {
	if os.Getenv("METASTORE_FAULTS_LOG") == "" {
		return zap.NewNop()
	}
	return zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
}

// startOn starts a member with cfg on fs and waits until it serves.
func startOn(cfg node.Config, fs vfs.FS) (*node.Node, error) {
	cfg.FS = fs
	n, err := node.Start(cfg)
	if err != nil {
		return nil, err
	}
	if err := waitReady(n); err != nil {
		n.Stop()
		return nil, err
	}
	return n, nil
}

// waitReady waits until n knows a leader.
func waitReady(n *node.Node) error {
	select {
	case <-n.Ready():
		return nil
	case err := <-n.Fatal():
		return fmt.Errorf("stopped while starting: %w", err)
	case <-time.After(startWithin):
		return errors.New("no leader")
	}
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

func freeURL(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
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

// readState reads the load's keys and the leases from a member that has
// caught up and takes no writes: it reads until two reads agree, since
// the lessor learns of applied leases just after the store publishes
// them.
func readState(ctx context.Context, conn *grpc.ClientConn) (memberState, error) {
	var prev memberState
	for i := 0; ; i++ {
		st, err := readOnce(ctx, conn)
		if err != nil {
			return st, err
		}
		if i > 0 && sameState(prev, st) {
			return st, nil
		}
		prev = st
		if err := sleepCtx(ctx); err != nil {
			return st, fmt.Errorf("the member's state did not settle: %w", err)
		}
	}
}

func readOnce(ctx context.Context, conn *grpc.ClientConn) (memberState, error) {
	kv, lc := pb.NewKVClient(conn), pb.NewLeaseClient(conn)
	st := memberState{kvs: map[string]*mvccpb.KeyValue{}, leases: map[int64]bool{}}
	from, end := []byte("f/"), []byte("f0")
	for {
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: from, RangeEnd: end, Limit: 2000, Revision: st.rev, Serializable: true})
		if err != nil {
			return st, err
		}
		st.rev = r.Header.Revision
		for _, x := range r.Kvs {
			st.kvs[string(x.Key)] = x
		}
		if !r.More {
			break
		}
		from = append(bytes.Clone(r.Kvs[len(r.Kvs)-1].Key), 0)
	}
	ls, err := lc.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	if err != nil {
		return st, err
	}
	for _, l := range ls.Leases {
		st.leases[l.ID] = true
	}
	return st, nil
}

func sameState(a, b memberState) bool {
	return a.rev == b.rev && maps.Equal(a.leases, b.leases) &&
		maps.EqualFunc(a.kvs, b.kvs, func(x, y *mvccpb.KeyValue) bool { return x.ModRevision == y.ModRevision })
}

// lone is a one-member cluster on a crashable disk whose operations can
// be made to fail.
type lone struct {
	cfg    node.Config
	disk   *disk
	faults faultSwitch
	n      *node.Node
	conn   *grpc.ClientConn
}

func startLone(t *testing.T, p *power) *lone {
	l := &lone{cfg: loneConfig(t, "lone"), disk: newDisk(p, vfs.NewCrashableMem())}
	n, err := startOn(l.cfg, errorfs.Wrap(l.disk.FS(), &l.faults))
	if err != nil {
		t.Fatal(err)
	}
	l.n = n
	t.Cleanup(n.Stop)
	l.conn = dial(t, n.ClientAddrs()[0])
	t.Cleanup(func() { l.conn.Close() })
	return l
}

// restartSynced starts a member on what l's disk has synced — as a power
// loss with the member stopped leaves it, on a disk that no longer fails
// — checks it at rest and with the model, and stops it.
func (l *lone) restartSynced(t *testing.T, r *run, m *model) {
	clone := l.disk.mem.CrashClone(vfs.CrashCloneCfg{})
	rest, err := readRest(clone, l.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	bad := rest.check()
	n, err := startOn(l.cfg, clone)
	if err != nil {
		t.Fatalf("restart on the synced disk (%v): %v", rest, err)
	}
	defer n.Stop()
	conn := dial(t, n.ClientAddrs()[0])
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startWithin)
	defer cancel()
	if _, err := waitApplied(ctx, conn, rest.commit); err != nil {
		t.Fatal(err)
	}
	st, err := readState(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	v := verify(m.ops, m.writer, m.deleter, m.granter, m.revoker, st, m.acks)
	bad = append(append(bad, m.live...), v.violations...)
	m.mu.Unlock()
	r.count("ops-took-effect", v.took)
	r.report(fmt.Sprintf("restarted on the synced disk (%v)", rest), bad)
}

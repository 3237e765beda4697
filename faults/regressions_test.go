package faults

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"
)

// Regression tests of bugs these suites found outside the storage code
// (raftactor/); docs/reliability.md describes each.

// A snapshot install recorded the snapshot in the raft log (the
// truncation point and the deletion of the entries it replaces, one
// synced batch) and only then, in another batch, the Ready's hard state
// with the commit index the snapshot brings — not synced when only the
// commit changed. A power loss in between left a commit index below the
// truncation point, from which raft refuses to start ("state.commit 417
// is out of range [1302, 1302]"): the member never started again. Now
// one synced batch (raftactor.Node.persist).

// TestPowerLossBetweenSnapshotRecordAndHardState cuts a follower's power
// after the batch recording an installed snapshot is synced, before the
// raft log's next write: the member must start again on that disk.
func TestPowerLossBetweenSnapshotRecordAndHardState(t *testing.T) {
	r := newRun(t)
	p := newPower(r.seed)
	c := startCluster(t, p)
	m := newModel()
	l := startLoad(m, c.conns(), 6, r.seed)
	t.Cleanup(l.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.waitOps(ctx, 50)
	lead, x := c.leaveBehind(ctx, r, m, l, 0)
	c.installCrash(ctx, r, m, 0, lead, x, installStep{"record", 3}, 3)
	l.pause()
	lead, err := c.converge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.report("after the cluster caught up", c.check(ctx, r, m, lead))
}

// A failed WAL sync did not reach the raft actor's own failure path:
// pebble's DB.Apply does not return the commit error but calls its
// logger's Fatalf, which panics (storeactor/pebblelog.go), in the raft
// actor's persist; the guardian restarted the actor on a log holding the
// entries whose sync failed, ten times, then gave up on it, and requests
// waited out their deadline. Now the raft actor's commits recover that
// panic as an error and fail the member (raftactor/log.go commit).

// TestDiskFaultWALSyncRefusesRequests: once the lone member's WAL sync
// failed, the raft actor says so and refuses every request at once.
func TestDiskFaultWALSyncRefusesRequests(t *testing.T) {
	core, logs := zapobserver.New(zapcore.InfoLevel)
	cfg := loneConfig(t, "lone")
	cfg.Logger = zap.New(core)
	var faults faultSwitch
	d := newDisk(newPower(1), vfs.NewCrashableMem())
	n, err := startOn(cfg, errorfs.Wrap(d.FS(), &faults))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	conn := dial(t, n.ClientAddrs()[0])
	defer conn.Close()
	kv := pb.NewKVClient(conn)
	faults.set(walSyncFailures)
	put := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
		return err
	}
	if err := put(); err == nil {
		t.Fatal("a put was acknowledged with the WAL's syncs failing")
	}
	<-n.Fatal()
	if err := put(); rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(rpctypes.ErrGRPCStopped) {
		t.Errorf("a put to the stopped member: %v, want %v", err, rpctypes.ErrGRPCStopped)
	}
	if logs.FilterMessage("raft cannot go on; stopping the member").Len() == 0 {
		t.Errorf("not logged: raft cannot go on; stopping the member")
	}
}

package faults

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// Disk faults: pebble's errorfs injects errors into a member's disk
// operations (writes, syncs, reads); what the member acknowledged must be
// on its disk all the same, and a disk that fails must not be taken for
// one that did not.

// walSyncFailures fails every sync of the DB's WAL.
var walSyncFailures = errorfs.InjectorFunc(func(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		if walPath(op.Path) {
			return errorfs.ErrInjected
		}
	}
	return nil
})

// TestDiskFaultFollowerFsync: with the third member cut off, the leader
// and one follower are the quorum; once the follower's WAL syncs fail, a
// write can be durable on the leader alone, and must not be acknowledged.
func TestDiskFaultFollowerFsync(t *testing.T) {
	c := startCluster(t, newPower(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lead, _, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var follower, away *cmember
	for _, m := range c.members {
		switch {
		case m == lead:
		case follower == nil:
			follower = m
		default:
			away = m
		}
	}
	away.dead.Store(true)
	kv := pb.NewKVClient(lead.conn)
	put := func(key string) error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte("v")})
		return err
	}
	if err := put("before"); err != nil {
		t.Fatalf("put with the leader and %s: %v", follower.name, err)
	}
	follower.faults.set(walSyncFailures)
	if err := put("after"); err == nil {
		t.Fatalf("a put was acknowledged while %s's WAL syncs failed and %s was cut off: only the leader's disk holds it",
			follower.name, away.name)
	}
}

// TestDiskFaultWALSync: under load, the lone member's WAL syncs start to
// fail. The member must stop (Fatal), acknowledge nothing more, stop
// without crashing the process, and — restarted on what its disk had
// synced — hold every write it acknowledged.
func TestDiskFaultWALSync(t *testing.T) {
	diskFailure(t, walSyncFailures)
}

// TestDiskFaultENOSPC: the same with a full disk: every write to the data
// dir fails with ENOSPC.
func TestDiskFaultENOSPC(t *testing.T) {
	diskFailure(t, errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpCreate, errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFilePreallocate:
			return &os.PathError{Op: "write", Path: op.Path, Err: syscall.ENOSPC}
		}
		return nil
	}))
}

// diskFailure runs the lone member under load until faults make its disk
// fail, and checks what it did and what its disk holds.
func diskFailure(t *testing.T, faults errorfs.Injector) {
	r := newRun(t)
	lm := startLone(t, newPower(r.seed))
	m := newModel()
	l := startLoad(m, []*grpc.ClientConn{lm.conn}, 4, r.seed)
	t.Cleanup(l.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.waitOps(ctx, 100+r.rng.IntN(200))
	lm.faults.set(faults)
	select {
	case err := <-lm.n.Fatal():
		t.Logf("the member stopped: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the member went on after its disk failed")
	}
	// Writes issued from now on have no disk to be synced to.
	from := m.opCount()
	l.waitOps(ctx, 4)
	l.pause()
	m.mu.Lock()
	for _, o := range m.ops[from:] {
		if o.ack > 0 {
			t.Errorf("%v: acknowledged, issued after the member stopped", o)
		}
	}
	m.mu.Unlock()
	lm.n.Stop() // must not take the process down with it
	r.count("acks", int(m.ackCount()))
	lm.restartSynced(t, r, m)
}

// tablePath: the path is one of the DB's tables (sstables).
func tablePath(path string) bool {
	return strings.HasSuffix(path, ".sst") && strings.Contains(path, "/member/pebble/")
}

// tableReads fails every read of the DB's tables, and counts them.
type tableReads struct{ failed atomic.Int64 }

func (f *tableReads) MaybeError(op errorfs.Op) error {
	if (op.Kind == errorfs.OpFileRead || op.Kind == errorfs.OpFileReadAt) && tablePath(op.Path) {
		f.failed.Add(1)
		return errorfs.ErrInjected
	}
	return nil
}

func (f *tableReads) String() string { return "tableReads" }

// TestDiskFaultReads: under load, the lone member's disk stops reading
// its tables (written anew just before, so the block cache has none of
// them): whatever needs them fails. A read must then fail or be right —
// never a wrong value or a missing key; a write whose apply cannot read
// must not be acknowledged. Once the disk reads again, the member
// (restarted: the store, failing to load, stops it) must hold every
// acknowledged write.
func TestDiskFaultReads(t *testing.T) {
	r := newRun(t)
	lm := startLone(t, newPower(r.seed))
	m := newModel()
	l := startLoad(m, []*grpc.ClientConn{lm.conn}, 4, r.seed)
	t.Cleanup(l.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.waitOps(ctx, 300)
	// No read between the defragmentation and the failures: it would
	// bring the new tables' blocks into the cache.
	l.pause()
	if _, err := pb.NewMaintenanceClient(lm.conn).Defragment(ctx, &pb.DefragmentRequest{}); err != nil {
		t.Fatal(err)
	}
	reads := new(tableReads)
	lm.faults.set(reads)
	l.resume()
	// Until the member stops, or the load has done enough.
	opsCtx, stopOps := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() {
		select {
		case err := <-lm.n.Fatal():
			stopped <- err
			stopOps()
		case <-opsCtx.Done():
		}
	}()
	l.waitOps(opsCtx, 100)
	stopOps()
	l.pause()
	failed, right := checkReads(ctx, t, m, pb.NewKVClient(lm.conn))
	r.count("reads-failed", failed)
	r.count("reads-right", right)
	r.count("table-reads-failed", int(reads.failed.Load()))
	if reads.failed.Load() == 0 {
		t.Fatal("no table read was failed: the test tested nothing")
	}
	select {
	case err := <-stopped:
		r.count("member-stopped", 1)
		t.Logf("the member stopped: %v", err)
	default:
	}
	lm.faults.set(nil)
	lm.n.Stop()
	lm.restartSynced(t, r, m)
}

// checkReads reads every key the load wrote whose fate its client knows
// (acknowledged, and deleted by an acknowledged operation or by none):
// each read fails, or answers what was acknowledged.
func checkReads(ctx context.Context, t *testing.T, m *model, kv pb.KVClient) (failed, right int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, w := range m.writer {
		d := m.deleter[key]
		if w.ack == 0 || d != nil && d.ack == 0 {
			continue
		}
		resp, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte(key), Serializable: true})
		if err != nil {
			failed++
			continue
		}
		switch {
		case d != nil && len(resp.Kvs) != 0:
			t.Errorf("%v: %q read as %v after %v", w, key, resp.Kvs, d)
		case d == nil && (len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != w.rev):
			t.Errorf("%v: %q read as %v", w, key, resp.Kvs)
		default:
			right++
		}
	}
	return failed, right
}

// TestDiskFaultTableWrites: for a while, under load, every write of a
// table fails (pebble's flushes and compactions; the WAL still works). A
// defragmentation then must fail with an error, the member must go on
// acknowledging writes, and once tables can be written again a
// defragmentation must succeed, and the member — and one restarted on
// what its disk synced — hold every acknowledged write.
func TestDiskFaultTableWrites(t *testing.T) {
	r := newRun(t)
	lm := startLone(t, newPower(r.seed))
	m := newModel()
	l := startLoad(m, []*grpc.ClientConn{lm.conn}, 4, r.seed)
	t.Cleanup(l.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mc := pb.NewMaintenanceClient(lm.conn)
	l.waitOps(ctx, 200)
	var failed atomic.Int64
	lm.faults.set(errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpCreate, errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData:
			if tablePath(op.Path) {
				failed.Add(1)
				return errorfs.ErrInjected
			}
		}
		return nil
	}))
	defrag := func(within time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		_, err := mc.Defragment(ctx, &pb.DefragmentRequest{})
		return err
	}
	// pebble retries the flush a defragmentation starts with at once and
	// for ever: the request ends with its deadline.
	if err := defrag(2 * time.Second); err == nil {
		t.Error("a defragmentation succeeded without writing a table")
	} else {
		t.Logf("defragmentation with tables failing: %v", err)
	}
	acks := m.ackCount()
	l.waitOps(ctx, 200)
	if m.ackCount() == acks {
		t.Error("no write acknowledged while only table writes failed")
	}
	lm.faults.set(nil)
	if err := defrag(20 * time.Second); err != nil {
		t.Errorf("defragmentation once tables can be written: %v", err)
	}
	l.pause()
	r.count("table-writes-failed", int(failed.Load()))
	select {
	case err := <-lm.n.Fatal():
		t.Fatalf("the member stopped: %v", err)
	default:
	}
	_, bad := checkMember(ctx, r, lm.conn, m, allAcks)
	r.report("the member, once tables can be written again", bad)
	lm.n.Stop()
	lm.restartSynced(t, r, m)
}

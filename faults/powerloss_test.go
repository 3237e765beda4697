package faults

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/node"
)

// Power loss: a member under load loses power at a crash point; a member
// started on what its disk kept must hold every acknowledged write and a
// prefix of the raft log (verify), and its disk what raft and the store
// promise at rest (restState.check).

// crashPoint is where a power loss strikes, and what it left.
type crashPoint struct {
	n      int
	kind   string
	during bool   // it struck in the middle of what kind names (not after it ended)
	at     diskOp // the disk operation it struck before, if armed
	loss   loss
	cut    int64 // acknowledgements that must survive
}

func (c crashPoint) String() string {
	when := "after"
	if c.during {
		when = "during"
	}
	s := fmt.Sprintf("crash point %d (%s, %s it, %d%% of unsynced data kept", c.n, c.kind, when, c.loss.unsynced)
	if c.at.path != "" {
		s += fmt.Sprintf(", before op %d on %s", c.at.kind, c.at.path)
	}
	return s + ")"
}

// trigger cuts the power of its disks once: when pulled, or at the k-th
// disk operation an armed match accepts (from 1); fired delivers the
// loss. during runs while the power is down and returns the
// acknowledgements that must survive.
type trigger struct {
	p      *power
	disks  []*disk
	during func() int64
	once   sync.Once
	fired  chan crashPoint
}

func newTrigger(p *power, disks []*disk, during func() int64) *trigger {
	return &trigger{p: p, disks: disks, during: during, fired: make(chan crashPoint, 1)}
}

// arm pulls the trigger at the k-th operation on d that match accepts.
func (tr *trigger) arm(r *run, d *disk, k int, match func(diskOp) bool) {
	unsynced := r.unsynced()
	var mu sync.Mutex
	seen := 0
	d.watchOps(func(op diskOp) {
		mu.Lock()
		if match(op) {
			seen++
		}
		now := seen == k
		mu.Unlock()
		if now {
			tr.pullAt(unsynced, true, op)
		}
	})
}

// pull cuts the power now (unless it was cut already); during says
// whether what the crash point names was under way.
func (tr *trigger) pull(unsynced int, during bool) { tr.pullAt(unsynced, during, diskOp{}) }

func (tr *trigger) pullAt(unsynced int, during bool, at diskOp) {
	tr.once.Do(func() {
		for _, d := range tr.disks {
			d.watchOps(nil)
		}
		c := crashPoint{during: during, at: diskOp{kind: at.kind, path: at.path}}
		c.loss = tr.p.cut(tr.disks, unsynced, func() { c.cut = tr.during() })
		tr.fired <- c
	})
}

// walMarker is how a raft log truncation or snapshot install shows in
// pebble's WAL: the batch sets the raft actor's 'rs' key (a pebble batch
// record: kind Set, key length 2, key).
var walMarker = []byte{1, 2, 'r', 's'}

func isWAL(op diskOp) bool { return walPath(op.path) }

// walPath: the path is one of the DB's WAL files (a received checkpoint
// has .log files too).
func walPath(path string) bool {
	return strings.HasSuffix(path, ".log") && strings.Contains(path, "/member/pebble/")
}

func isSync(op diskOp) bool {
	return op.kind == errorfs.OpFileSync || op.kind == errorfs.OpFileSyncData || op.kind == errorfs.OpFileSyncTo
}

// TestPowerLossLoneMember: one member under load; at each crash point its
// disk is cloned as a power loss leaves it — at a random moment, or in
// the middle of a defragmentation, a physical compaction or a raft log
// truncation — and a second member started on the clone (the first runs
// on) must hold every write acknowledged before the crash and a prefix of
// the log, and agree with the first on HashKV at its revision.
func TestPowerLossLoneMember(t *testing.T) {
	r := newRun(t)
	points := r.pick(24, 200)
	p := newPower(r.seed)
	live := newDisk(p, vfs.NewCrashableMem())
	cfg := loneConfig(t, "lone")
	n, err := startOn(cfg, live.FS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	conn := dial(t, n.ClientAddrs()[0])
	t.Cleanup(func() { conn.Close() })
	m := newModel()
	l := startLoad(m, []*grpc.ClientConn{conn}, 4, r.seed)
	t.Cleanup(l.stop)
	kv, mc := pb.NewKVClient(conn), pb.NewMaintenanceClient(conn)
	var compacted int64
	kinds := []string{"random", "defrag", "compaction", "truncation"}
	for i := range points {
		kind := kinds[i%len(kinds)]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		l.resume()
		l.waitOps(ctx, 20+r.rng.IntN(100))
		var bg sync.WaitGroup
		tr := newTrigger(p, []*disk{live}, m.ackCount)
		switch kind {
		case "random":
			tr.pull(r.unsynced(), true)
		case "defrag":
			// Anything but the WAL: flushes, compaction outputs, the
			// MANIFEST, directory syncs.
			tr.arm(r, live, 1+r.rng.IntN(20), func(op diskOp) bool { return !isWAL(op) })
			bg.Go(func() {
				if _, err := mc.Defragment(ctx, &pb.DefragmentRequest{}); err != nil {
					t.Errorf("defragment: %v", err)
				}
				tr.pull(r.unsynced(), false)
			})
		case "compaction":
			cur, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("f0")})
			if err != nil {
				t.Fatal(err)
			}
			rev := cur.Header.Revision - int64(r.rng.IntN(30))
			if rev <= compacted {
				rev = cur.Header.Revision
			}
			compacted = rev
			tr.arm(r, live, 1+r.rng.IntN(10), isWAL)
			bg.Go(func() {
				if _, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: rev, Physical: true}); err != nil {
					t.Errorf("compact at %d: %v", rev, err)
				}
				tr.pull(r.unsynced(), false)
			})
		case "truncation":
			// At the WAL write of the batch that truncates the log, or at
			// the sync after it.
			atSync := r.rng.IntN(2) == 0
			var marked sync.Once
			var armed bool
			tr.arm(r, live, 1, func(op diskOp) bool {
				if !isWAL(op) {
					return false
				}
				if bytes.Contains(op.data, walMarker) {
					marked.Do(func() { armed = true })
					return !atSync
				}
				return armed && isSync(op)
			})
		}
		var c crashPoint
		select {
		case c = <-tr.fired:
		case <-ctx.Done():
			t.Fatalf("crash point %d (%s): never struck", i, kind)
		}
		l.pause()
		bg.Wait()
		cancel()
		c.n, c.kind = i, kind
		r.count(kind, 1)
		if c.during {
			r.count(kind+"-during", 1)
		}
		if c.loss.unsynced > 0 {
			r.count("unsynced-kept", 1)
		}
		r.report(c.String(), checkLoneCrash(t, r, c, cfg, m, mc))
	}
	r.count("ops", m.opCount())
	r.count("acks", int(m.ackCount()))
}

// checkLoneCrash checks the disk a power loss left, starts a member on it
// and checks that member against the model and the live member.
func checkLoneCrash(t *testing.T, r *run, c crashPoint, cfg node.Config, m *model, live pb.MaintenanceClient) []string {
	clone := c.loss.clones[0]
	rest, err := readRest(clone, cfg.DataDir)
	if err != nil {
		return []string{err.Error()}
	}
	bad := rest.check()
	for i := range bad {
		bad[i] = "at rest: " + bad[i] + " (" + rest.String() + ")"
	}
	n, err := startOn(cfg, clone)
	if err != nil {
		return append(bad, fmt.Sprintf("start on the crashed disk (%v): %v", rest, err))
	}
	defer n.Stop()
	conn := dial(t, n.ClientAddrs()[0])
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startWithin)
	defer cancel()
	if _, err := waitApplied(ctx, conn, rest.commit); err != nil {
		return append(bad, err.Error())
	}
	st, err := readState(ctx, conn)
	if err != nil {
		return append(bad, err.Error())
	}
	m.mu.Lock()
	v := verify(m.ops, m.writer, m.deleter, m.granter, m.revoker, st, c.cut)
	wrong := m.live
	m.mu.Unlock()
	bad = append(append(bad, wrong...), v.violations...)
	r.count("ops-took-effect", v.took)
	r.count("ops-did-not", v.lost)
	bad = append(bad, compareHashes(ctx, r, st.rev, pb.NewMaintenanceClient(conn), live)...)
	return bad
}

// compareHashes compares two members' HashKV at rev when they have
// compacted to the same revision (a hash covers the versions from the
// compaction point on).
func compareHashes(ctx context.Context, r *run, rev int64, a, b pb.MaintenanceClient) []string {
	ha, err := a.HashKV(ctx, &pb.HashKVRequest{Revision: rev})
	if err != nil {
		return []string{fmt.Sprintf("HashKV at %d: %v", rev, err)}
	}
	hb, err := b.HashKV(ctx, &pb.HashKVRequest{Revision: rev})
	if err != nil || ha.CompactRevision != hb.CompactRevision {
		r.count("hash-skipped", 1)
		return nil
	}
	r.count("hash-compared", 1)
	if ha.Hash != hb.Hash {
		return []string{fmt.Sprintf("HashKV at revision %d (compacted at %d): %x and %x", rev, ha.CompactRevision, ha.Hash, hb.Hash)}
	}
	return nil
}

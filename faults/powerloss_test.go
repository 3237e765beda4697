package faults

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// Power loss: a member under load loses power at a crash point; a member
// started on what its disk kept must hold every acknowledged write and a
// prefix of the raft log (verify), and its disk what raft and the store
// promise at rest (restState.check).

// TestPowerLossLoneMember: one member under load; at each crash point its
// disk is cloned as a power loss leaves it — at a random moment, or in
// the middle of a defragmentation, a physical compaction or a raft log
// truncation — and a second member started on the clone (the first runs
// on) must hold every write acknowledged before the crash and a prefix of
// the log, and agree with the first on HashKV at its revision.
func TestPowerLossLoneMember(t *testing.T) {
	r := newRun(t)
	lm := startLone(t, newPower(r.seed))
	m := newModel()
	l := startLoad(m, []*grpc.ClientConn{lm.conn}, 4, r.seed)
	t.Cleanup(l.stop)
	kinds := []string{"random", "defrag", "compaction", "truncation"}
	for i := range r.pick(24, 200) {
		kind := kinds[i%len(kinds)]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		l.resume()
		l.waitOps(ctx, 20+r.rng.IntN(100))
		tr := newTrigger(lm.disk.power, []*disk{lm.disk}, m.ackCount)
		done := lm.strike(ctx, t, r, tr, kind)
		var c crashPoint
		select {
		case c = <-tr.fired:
		case <-ctx.Done():
			t.Fatalf("crash point %d (%s): never struck", i, kind)
		}
		l.pause()
		<-done
		cancel()
		c.n, c.kind = i, kind
		r.count(kind, 1)
		if c.during {
			r.count(kind+"-during", 1)
		}
		if c.loss.unsynced > 0 {
			r.count("unsynced-kept", 1)
		}
		r.report(c.String(), lm.checkClone(t, r, c.loss.clones[0], m, c.cut,
			func(ctx context.Context, st memberState, mc pb.MaintenanceClient) []string {
				return compareHashes(ctx, r, st.rev, mc, pb.NewMaintenanceClient(lm.conn))
			}))
	}
	r.count("ops", m.opCount())
	r.count("acks", int(m.ackCount()))
}

// strike arms tr for a crash point of the kind named and starts what it
// strikes in the middle of; done is closed once that has ended (the
// trigger is pulled then, if it was not yet).
func (lm *lone) strike(ctx context.Context, t *testing.T, r *run, tr *trigger, kind string) (done chan struct{}) {
	done = make(chan struct{})
	background := func(what string, f func() error) {
		go func() {
			defer close(done)
			if err := f(); err != nil {
				t.Errorf("%s: %v", what, err)
			}
			tr.pull(r.unsynced(), false)
		}()
	}
	kv, mc := pb.NewKVClient(lm.conn), pb.NewMaintenanceClient(lm.conn)
	switch kind {
	case "random":
		tr.pull(r.unsynced(), true)
		close(done)
	case "defrag":
		// Anything but the WAL: flushes, compaction outputs, the
		// MANIFEST, directory syncs.
		tr.arm(r, lm.disk, 1+r.rng.IntN(20), func(op diskOp) bool { return !isWAL(op) })
		background("defragment", func() error {
			_, err := mc.Defragment(ctx, &pb.DefragmentRequest{})
			return err
		})
	case "compaction":
		cur, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("f0")})
		if err != nil {
			t.Fatal(err)
		}
		rev := max(cur.Header.Revision-int64(r.rng.IntN(30)), lm.compacted+1)
		lm.compacted = rev
		tr.arm(r, lm.disk, 1+r.rng.IntN(10), isWAL)
		background(fmt.Sprintf("compact at %d", rev), func() error {
			_, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: rev, Physical: true})
			return err
		})
	case "truncation":
		// At the WAL write of the batch that truncates the log, or at
		// the sync after it.
		atSync, marked := r.rng.IntN(2) == 0, false
		tr.arm(r, lm.disk, 1, func(op diskOp) bool {
			switch {
			case !isWAL(op):
				return false
			case bytes.Contains(op.data, walMarker):
				marked = true
				return !atSync
			}
			return marked && isSync(op)
		})
		close(done)
	}
	return done
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

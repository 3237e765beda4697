package leaseactor

import (
	"container/heap"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// Lease checkpoints, as etcd's lessor has them with
// --feature-gates=LeaseCheckpoint=true (CheckpointInterval > 0).
//
// The primary schedules a checkpoint for every lease with more than an
// interval to live, an interval after it promoted, granted, or applied the
// lease's last checkpoint. At each check, once a quorum round confirms it
// still leads, it proposes the due ones — the whole seconds left until
// expiry, rounded up — in LeaseCheckpoint entries of at most
// CheckpointBatch, at most CheckpointRate entries a second. Every member's
// store records the remaining TTL in the lease's record (etcd 3.7 persists
// checkpoints whatever LeaseCheckpointPersist says: its cluster version is
// at least 3.6), so a member promoted later — after a leader change, a
// restart, a restore or a migration — counts down from it instead of the
// whole TTL. A keep-alive of a lease holding a checkpoint clears it first
// (a checkpoint of 0 through raft) and is answered once that is applied:
// at most two checkpoint entries per lease per interval.
//
// Departures from etcd: a due lease renewed less than a second before its
// checkpoint has nothing to checkpoint, and etcd then drops it from its
// schedule until the next promotion, where MetaStore schedules it again an
// interval later; a checkpoint whose leadership round fails stays due
// (etcd's is lost); and a keep-alive always renews for the whole TTL (see
// extend).

// scheduleCheckpoint is etcd's scheduleCheckpointIfNeeded: a lease with
// more than an interval to live is due for a checkpoint an interval from
// now (moved there if it was due already).
func (l *Lessor) scheduleCheckpoint(ls *lease, now time.Time) {
	iv := l.cfg.CheckpointInterval
	if iv <= 0 || ls.remainingOrTTL() <= iv.Truncate(time.Second) {
		return
	}
	if ce := l.cfg.Logger.Check(zap.DebugLevel, "Scheduling lease checkpoint"); ce != nil {
		ce.Write(zap.Int64("leaseID", ls.id), zap.Duration("intervalSeconds", iv))
	}
	l.checkpoints.schedule(ls, now.Add(iv))
}

// checkpointed takes a checkpoint the store applied: what the next
// promotion gives the lease, and, on the primary, the next checkpoint's
// schedule.
func (l *Lessor) checkpointed(r storeactor.LeaseRecord) {
	leaseCheckpointsApplied.Inc()
	ls := l.leases[r.ID]
	if ls == nil {
		return // found in pebble, record and all, when next used
	}
	ls.remaining = r.Remaining
	if l.primary {
		l.scheduleCheckpoint(ls, l.cfg.Clock.Now())
	}
}

// checkpointConfirmed proposes the due checkpoints once a round has
// confirmed the leadership: batches of CheckpointBatch, at most
// CheckpointRate batches a second (etcd's checkpointScheduledLeases).
func (l *Lessor) checkpointConfirmed() {
	now := l.cfg.Clock.Now()
	for range l.perCheck(l.cfg.CheckpointRate) {
		cps := l.dueCheckpoints(now)
		if len(cps) > 0 {
			l.cfg.Propose(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: cps}}, nil)
			leaseCheckpointsProposed.Add(float64(len(cps)))
		}
		if len(cps) < l.cfg.CheckpointBatch {
			return
		}
	}
}

// dueCheckpoints takes up to CheckpointBatch due leases off the schedule
// and returns their checkpoints (etcd's findDueScheduledCheckpoints). An
// expired lease has none (its revoke is on the way); a lease with its
// whole TTL left has nothing to record and is scheduled again.
func (l *Lessor) dueCheckpoints(now time.Time) []*pb.LeaseCheckpoint {
	var cps []*pb.LeaseCheckpoint
	for len(cps) < l.cfg.CheckpointBatch {
		ls := l.checkpoints.peek()
		if ls == nil || ls.cp.at.After(now) {
			break
		}
		heap.Pop(&l.checkpoints)
		if !now.Before(ls.expiry) {
			continue
		}
		remaining := int64(math.Ceil(ls.expiry.Sub(now).Seconds()))
		if remaining >= ls.ttl {
			l.scheduleCheckpoint(ls, now)
			continue
		}
		if ce := l.cfg.Logger.Check(zap.DebugLevel, "Checkpointing lease"); ce != nil {
			ce.Write(zap.Int64("leaseID", ls.id), zap.Int64("remainingTTL", remaining))
		}
		cps = append(cps, &pb.LeaseCheckpoint{ID: ls.id, Remaining_TTL: remaining})
	}
	return cps
}

// clearing is a confirmed renewal waiting for the clear of its lease's
// checkpoint to be applied.
type clearing struct {
	seq, term uint64 // term: the Lessor's primary term when it was proposed
	renew     *Renew
	abandon   chan struct{} // closed when nobody waits for the answer any more
}

// cleared is the answer to a clear, sent to the Lessor by the goroutine
// that waited for it.
type cleared struct {
	seq uint64
	err error
}

// clearFirst starts a confirmed renewal's clear of its lease's
// checkpoint, as etcd's Renew does before it extends the lease, when
// checkpoints are on and the lease (alive) holds one; it reports whether
// it did, and then the renewal is answered in cleared.
func (l *Lessor) clearFirst(rn *Renew) bool {
	if l.cfg.CheckpointInterval <= 0 {
		return false
	}
	ls, _ := l.lookup(rn.ID) // a failed read: extend answers with it
	if ls == nil || ls.remaining <= 0 || !l.cfg.Clock.Now().Before(ls.expiry) {
		return false // extend answers
	}
	c := &l.confirm
	if c.clears == nil {
		c.clears = map[uint64]*clearing{}
	}
	c.seq++
	cl := &clearing{seq: c.seq, term: l.term, renew: rn, abandon: make(chan struct{})}
	c.clears[cl.seq] = cl
	reply := make(chan actors.Result, 1)
	l.cfg.Propose(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
		Checkpoints: []*pb.LeaseCheckpoint{{ID: ls.id, Remaining_TTL: 0}}}}, reply)
	leaseCheckpointsProposed.Inc()
	self, root := l.self, l.root
	go func() {
		select {
		case res := <-reply:
			root.Send(self, cleared{seq: cl.seq, err: res.Err})
		case <-cl.abandon:
		}
	}()
	return true
}

// cleared answers a renewal whose clear was applied (the store told this
// actor before answering, so the lease's checkpoint is gone here too), or
// failed: etcd ignores that failure and renews; a renewal whose
// leadership was lost meanwhile is refused.
func (l *Lessor) cleared(m cleared) {
	cl := l.confirm.clears[m.seq]
	if cl == nil {
		return // abandoned: refused already
	}
	delete(l.confirm.clears, m.seq)
	l.checkPrimary()
	if !l.primary || l.term != cl.term {
		l.refuse([]*Renew{cl.renew}, "leadership lost while clearing the lease's checkpoint")
		return
	}
	if m.err != nil {
		l.cfg.Logger.Warn("failed to clear a renewed lease's checkpointed remaining TTL",
			zap.Int64("lease-id", cl.renew.ID), zap.Error(m.err))
	}
	actors.Reply(cl.renew.Reply, l.extend(cl.renew.ID))
}

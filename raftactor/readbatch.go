package raftactor

import (
	"sync/atomic"

	"github.com/metastore/metastore/actors"
)

// Linearizable reads from clients do not send the raft actor a message
// each: a read joins the batch the raft actor publishes (ViewRef.JoinRead),
// the first read of a batch tells the actor (ReadsWaiting), and the actor
// answers the whole batch by closing one channel, as etcd's read notifier
// does: with a message and a reply channel per read, the raft actor's
// mailbox and one wake-up per read were a large part of what a
// linearizable read cost at 1000 clients (docs/benchmarks.md, session 24).
//
// What must hold: a read joins only a batch whose read index is not yet
// taken. Before the raft actor asks raft for a batch's read index (or fails
// the batch) it publishes a fresh batch (readCell.renew); a read that loaded
// the old one did so before that, so the read index, the commit index when
// raft is asked or later, covers every write acknowledged before the read
// began.

// ReadBatch is one round of linearizable reads, answered together: Done
// closes when the local store has applied the round's read index (Err is
// nil) or the round failed (Err says why).
type ReadBatch struct {
	done    chan struct{}
	err     error       // written before done closes
	claimed atomic.Bool // a read has sent ReadsWaiting for this batch
	// finished guards done; only the raft actor's goroutine (or a test's
	// fake raft) touches it.
	finished bool
}

func newReadBatch() *ReadBatch { return &ReadBatch{done: make(chan struct{})} }

// Done is closed once the batch is answered.
func (b *ReadBatch) Done() <-chan struct{} { return b.done }

// Err is the batch's answer, once Done is closed.
func (b *ReadBatch) Err() error { return b.err }

// Finish answers every read of the batch: the raft actor's (or a fake
// raft's in tests) to call, once.
func (b *ReadBatch) Finish(err error) {
	if b.finished {
		return
	}
	b.finished = true
	b.err = err
	close(b.done)
}

// ReadsWaiting tells the raft actor that reads have joined Batch: it gets a
// read index for them in its next round.
type ReadsWaiting struct{ Batch *ReadBatch }

// readCell holds the batch reads join now.
type readCell struct{ cur atomic.Pointer[ReadBatch] }

// join returns the batch a read starting now belongs to, and whether the
// caller is its first read (and so must send ReadsWaiting).
func (r *readCell) join() (*ReadBatch, bool) {
	b := r.cur.Load()
	if b == nil {
		r.cur.CompareAndSwap(nil, newReadBatch())
		b = r.cur.Load()
	}
	// Load first: a thousand readers of one batch do not all write its
	// cache line.
	return b, !b.claimed.Load() && b.claimed.CompareAndSwap(false, true)
}

// renew publishes a fresh batch for the reads that start from now on.
// A nil cell (a core built without one, in tests) has nothing to renew.
func (r *readCell) renew() {
	if r != nil {
		r.cur.Store(newReadBatch())
	}
}

// readWaiter is where a read index round's answer goes: one read's
// channel (ReadIndex, from the lessor and Handle) or a batch of clients'
// reads (ReadsWaiting).
type readWaiter struct {
	ch    chan<- error
	batch *ReadBatch
}

func (w readWaiter) answer(err error) {
	if w.batch != nil {
		w.batch.Finish(err)
		return
	}
	actors.Reply(w.ch, err)
}

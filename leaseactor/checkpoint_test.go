package leaseactor_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/leaseactor"
	"github.com/metastore/metastore/testkit"
)

// withCheckpoints turns checkpoints on (etcd's LeaseCheckpoint gate) with
// a 10 s interval.
func withCheckpoints(c *leaseactor.Config) { c.CheckpointInterval = 10 * time.Second }

// checkpoints drains the checkpoint proposals, each as "id:remaining"
// batches, e.g. "[1:50 2:50] [3:50]".
func (h *harness) checkpoints() string {
	var out []string
	for {
		select {
		case p := <-h.cps:
			out = append(out, fmtCheckpoints(p))
		default:
			return strings.Join(out, " ")
		}
	}
}

func fmtCheckpoints(p proposal) string {
	var cs []string
	for _, c := range p.req.LeaseCheckpoint.Checkpoints {
		cs = append(cs, fmt.Sprintf("%d:%d", c.ID, c.Remaining_TTL))
	}
	return "[" + strings.Join(cs, " ") + "]"
}

// nextCheckpoint is the next checkpoint proposal (one comes from a
// goroutine when the Lessor waits for its answer).
func (h *harness) nextCheckpoint() proposal {
	h.t.Helper()
	select {
	case p := <-h.cps:
		return p
	case <-time.After(wait):
		h.t.Fatal("no checkpoint proposed")
		return proposal{}
	}
}

// checkpoint applies a LeaseCheckpoint as raft would have committed it.
func (h *harness) checkpoint(id, remaining int64) {
	h.t.Helper()
	res := h.apply(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
		Checkpoints: []*pb.LeaseCheckpoint{{ID: id, Remaining_TTL: remaining}}}})
	if res[0].Err != nil {
		h.t.Fatal(res[0].Err)
	}
}

func (h *harness) remaining(id int64) int64 {
	h.t.Helper()
	r, ok, err := h.reader.Lease(id)
	if err != nil || !ok {
		h.t.Fatalf("lease %d: %v %v", id, ok, err)
	}
	return r.Remaining
}

// The primary checkpoints each lease with more than an interval to live
// an interval after its grant, then an interval after each checkpoint is
// applied, with the whole seconds left; every member's store records it.
// A lease with no more than an interval to live is never checkpointed.
// Both ends are counted.
func TestCheckpointEveryInterval(t *testing.T) {
	reg := testkit.Registry(t)
	h := newHarness(t, withCheckpoints)
	before := testkit.Gather(t, reg)
	h.grant(1, 60)
	h.grant(2, 10)
	h.advance(9500 * time.Millisecond)
	if got := h.checkpoints(); got != "" {
		t.Fatalf("checkpointed before the interval: %s", got)
	}
	h.advance(500 * time.Millisecond)
	p := h.nextCheckpoint()
	if got := fmtCheckpoints(p); got != "[1:50]" {
		t.Fatalf("checkpoints at 10 s = %s, want [1:50]", got)
	}
	h.applyProposal(p)
	if r := h.remaining(1); r != 50 {
		t.Fatalf("store records remaining %d, want 50", r)
	}
	h.advance(9500 * time.Millisecond)
	if got := h.checkpoints(); got != "" {
		t.Fatalf("checkpointed again before an interval after the last: %s", got)
	}
	h.advance(500 * time.Millisecond)
	if got := fmtCheckpoints(h.nextCheckpoint()); got != "[1:40]" {
		t.Fatalf("checkpoints at 20 s = %s, want [1:40]", got)
	}
	after := testkit.Gather(t, reg)
	for name, want := range map[string]float64{
		"metastore_lease_checkpoints_proposed_total": 2,
		"metastore_lease_checkpoints_applied_total":  1,
	} {
		if got := count(after, name) - count(before, name); got != want {
			t.Errorf("%s grew by %v, want %v", name, got, want)
		}
	}
}

// A member promoted after a checkpoint — a new leader, or one restarted
// — gives the lease its checkpointed remaining TTL plus the extension,
// not its whole TTL; so does a member without checkpoints on (etcd reads
// the record whatever its gates).
func TestPromotionUsesCheckpointedRemaining(t *testing.T) {
	h := newHarness(t, withCheckpoints)
	h.grant(1, 60)
	h.advance(10 * time.Second)
	h.applyProposal(h.nextCheckpoint()) // 1:50

	h.primary.Store(false)
	h.advance(500 * time.Millisecond) // demoted
	h.advance(20 * time.Second)       // no checkpoint while not primary
	if got := h.checkpoints(); got != "" {
		t.Fatalf("a demoted lessor checkpointed %s", got)
	}
	h.primary.Store(true)
	if r := h.ttl(1); r.TTL != 51 || r.GrantedTTL != 60 {
		t.Fatalf("ttl after promotion = %+v, want 51 of 60", r)
	}

	h.cfg.CheckpointInterval = 0
	h.kit.Stop(h.lessor)
	h.startLessor()
	if r := h.ttl(1); r.TTL != 51 {
		t.Fatalf("ttl after a restart without checkpoints = %+v, want 51", r)
	}
	// Without checkpoints a keep-alive proposes nothing; it renews with
	// the whole TTL.
	if r := h.renew(1); r.Err != nil || r.TTL != 60 {
		t.Fatalf("renew = %+v", r)
	}
	if r := h.ttl(1); r.TTL != 60 {
		t.Fatalf("ttl after renew = %+v, want 60", r)
	}
	if got := h.checkpoints(); got != "" {
		t.Fatalf("checkpoints off, yet proposed %s", got)
	}
}

// A keep-alive of a lease holding a checkpoint clears it through raft
// first and is answered once the clear is applied, so that a leader
// elected after the answer gives the lease its whole TTL again. A
// keep-alive of a lease without one proposes nothing. A clear still
// waiting when the leadership is lost refuses the keep-alive.
func TestRenewClearsCheckpoint(t *testing.T) {
	h := newHarness(t, withCheckpoints)
	h.grant(1, 60)
	if r := h.renew(1); r.Err != nil || r.TTL != 60 {
		t.Fatalf("renew without a checkpoint = %+v", r)
	}
	if got := h.checkpoints(); got != "" {
		t.Fatalf("renew without a checkpoint proposed %s", got)
	}
	h.advance(10 * time.Second)
	h.applyProposal(h.nextCheckpoint()) // 1:50

	ch := h.renewAsync(1)
	clear := h.nextCheckpoint()
	if got := fmtCheckpoints(clear); got != "[1:0]" {
		t.Fatalf("renew proposed %s, want the clear [1:0]", got)
	}
	h.list()
	h.unanswered(ch, "before its clear was applied")
	h.applyProposal(clear)
	if r := h.answer(ch); r.Err != nil || r.TTL != 60 {
		t.Fatalf("renew = %+v", r)
	}
	if r := h.remaining(1); r != 0 {
		t.Fatalf("store still records remaining %d", r)
	}
	h.primary.Store(false)
	h.advance(500 * time.Millisecond)
	h.primary.Store(true)
	if r := h.ttl(1); r.TTL != 61 {
		t.Fatalf("ttl after promotion = %+v, want the whole 60 + 1", r)
	}

	// The clear is lost with the leadership.
	h.checkpoint(1, 30)
	ch = h.renewAsync(1)
	if got := fmtCheckpoints(h.nextCheckpoint()); got != "[1:0]" {
		t.Fatalf("renew proposed %s", got)
	}
	h.kit.Root().Send(h.lessor, &leaseactor.LeaderChanged{Lead: 2, Term: 2})
	if r := h.answer(ch); !errors.Is(r.Err, leaseactor.ErrNotPrimary) {
		t.Fatalf("renew whose clear was lost = %+v, want %v", r, leaseactor.ErrNotPrimary)
	}
}

// Due checkpoints go out in entries of at most CheckpointBatch, at most
// CheckpointRate entries a second (etcd: 1000 and 1000); the rest wait
// for the next check.
func TestCheckpointBatchesAreRateLimited(t *testing.T) {
	h := newHarness(t, func(c *leaseactor.Config) {
		withCheckpoints(c)
		c.CheckpointBatch, c.CheckpointRate = 3, 4 // 2 entries a check
	})
	var reqs []*pb.InternalRaftRequest
	for id := int64(1); id <= 10; id++ {
		reqs = append(reqs, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: id, TTL: 60}})
	}
	h.apply(reqs...)
	h.advance(9500 * time.Millisecond)
	h.advance(500 * time.Millisecond) // the one check that finds them due
	count := func() (entries, cps int) {
		for {
			select {
			case p := <-h.cps:
				entries, cps = entries+1, cps+len(p.req.LeaseCheckpoint.Checkpoints)
			default:
				return entries, cps
			}
		}
	}
	if e, n := count(); e != 2 || n != 6 {
		t.Fatalf("first check proposed %d entries, %d checkpoints; want 2, 6", e, n)
	}
	h.advance(500 * time.Millisecond)
	if e, n := count(); e != 2 || n != 4 {
		t.Fatalf("second check proposed %d entries, %d checkpoints; want 2, 4", e, n)
	}
}

// Checkpoints wait for a quorum round confirming the leadership, as
// etcd's checkpointer does (ensureLeadership): a failed round proposes
// none, and they go out after the next round that succeeds.
func TestCheckpointWaitsForConfirmedLeadership(t *testing.T) {
	h := newHarness(t, withCheckpoints)
	h.grant(1, 60)
	h.holdRounds.Store(true)
	h.advance(10 * time.Second)
	h.nextRound() <- errors.New("no quorum")
	h.list()
	if got := h.checkpoints(); got != "" {
		t.Fatalf("proposed %s without a confirmed leadership", got)
	}
	h.advance(500 * time.Millisecond)
	h.nextRound() <- nil
	if got := fmtCheckpoints(h.nextCheckpoint()); got != "[1:50]" {
		t.Fatalf("checkpoints after a confirmed round = %s, want [1:50]", got)
	}
}

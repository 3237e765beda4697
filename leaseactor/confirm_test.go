package leaseactor_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/leaseactor"
	"github.com/metastore/metastore/testkit"
)

// renewAsync sends a keep-alive and returns where its answer will come.
func (h *harness) renewAsync(id int64) <-chan leaseactor.RenewResult {
	ch := make(chan leaseactor.RenewResult, 1)
	h.kit.Root().Send(h.lessor, &leaseactor.Renew{ID: id, Reply: ch})
	return ch
}

func (h *harness) answer(ch <-chan leaseactor.RenewResult) leaseactor.RenewResult {
	h.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		h.t.Fatal("keep-alive not answered")
		return leaseactor.RenewResult{}
	}
}

// unanswered checks a keep-alive has no answer yet. Call it when no round
// answer is on its way to the Lessor: after list(), the Lessor has handled
// everything sent before.
func (h *harness) unanswered(ch <-chan leaseactor.RenewResult, when string) {
	h.t.Helper()
	select {
	case r := <-ch:
		h.t.Fatalf("keep-alive answered %s: %+v", when, r)
	default:
	}
}

// nextRound is the quorum round the Lessor started (with holdRounds set).
func (h *harness) nextRound() chan<- error {
	h.t.Helper()
	select {
	case r := <-h.rounds:
		return r
	case <-time.After(wait):
		h.t.Fatal("no quorum round started")
		return nil
	}
}

// noRound checks the Lessor started no round beyond those taken.
func (h *harness) noRound(why string) {
	h.t.Helper()
	h.list()
	if n := len(h.rounds); n != 0 {
		h.t.Fatalf("%d quorum round(s) started %s", n, why)
	}
}

// A keep-alive is acknowledged only after a quorum round begun after it
// arrived confirms the leadership: one that arrives while a round is in
// flight waits for the next, and the keep-alives that waited together
// share that next round. The TTL counts from the confirmation.
func TestRenewalWaitsForRoundBegunAfterIt(t *testing.T) {
	h := newHarness(t, nil)
	h.grant(1, 10)
	h.holdRounds.Store(true)

	a := h.renewAsync(1)
	h.list()
	h.unanswered(a, "before any quorum round confirmed the leadership")
	r1 := h.nextRound()
	h.noRound("for one keep-alive")

	h.advance(4 * time.Second)
	b, c := h.renewAsync(1), h.renewAsync(1)
	h.noRound("while one was in flight")
	h.unanswered(b, "while the round begun before it was in flight")

	r1 <- nil
	if r := h.answer(a); r.Err != nil || r.TTL != 10 {
		t.Fatalf("keep-alive after its round = %+v", r)
	}
	r2 := h.nextRound()
	h.noRound("for the two keep-alives that waited together")
	h.unanswered(b, "on the round begun before it")
	h.unanswered(c, "on the round begun before it")

	h.advance(3 * time.Second) // 7 s after the grant
	r2 <- nil
	for _, ch := range []<-chan leaseactor.RenewResult{b, c} {
		if r := h.answer(ch); r.Err != nil || r.TTL != 10 {
			t.Fatalf("keep-alive after its round = %+v", r)
		}
	}
	h.advance(9500 * time.Millisecond) // 16.5 s
	if ids := h.revokes(); len(ids) != 0 {
		t.Fatalf("revoked before 10 s after the last confirmation: %v", ids)
	}
	h.advance(time.Second)
	h.nextRound() <- nil // the revoke waits for its own round too
	if ids := h.waitRevokes(1); fmt.Sprint(ids) != "[1]" {
		t.Fatalf("revokes = %v, want [1]", ids)
	}
}

// A leader that wakes up from a pause longer than its leases' TTLs (SIGSTOP,
// a stall) still believes it leads, with every expiry in its past. It must
// not revoke before a quorum round confirms it still leads: the round fails
// (the cluster has a new leader), and nothing is revoked. A round that
// confirms lets the revokes go.
func TestExpiredLeasesWaitForAConfirmingRound(t *testing.T) {
	h := newHarness(t, nil)
	h.grant(1, 10)
	h.grant(2, 10)
	h.holdRounds.Store(true)

	h.advance(30 * time.Second) // the pause
	round := h.nextRound()
	if ids := h.revokes(); len(ids) != 0 {
		t.Fatalf("revoked %v before any round confirmed the leadership", ids)
	}
	round <- errors.New("deposed: the quorum answered with a higher term")
	h.list()
	if ids := h.revokes(); len(ids) != 0 {
		t.Fatalf("revoked %v after a round that did not confirm the leadership", ids)
	}

	h.advance(500 * time.Millisecond) // next check: asks again
	h.nextRound() <- nil
	if ids := h.waitRevokes(2); fmt.Sprint(ids) != "[1 2]" {
		t.Fatalf("revokes after a confirming round = %v, want [1 2]", ids)
	}
}

// Raft's word that this member no longer leads (the leader stepping down,
// cut off from its quorum) refuses the keep-alives waiting for a round at
// once, with etcd's "not a primary lessor", and demotes the Lessor even
// though the raft view it reads still says it leads.
func TestLeaderChangeRefusesWaitingRenewals(t *testing.T) {
	h := newHarness(t, nil)
	h.grant(1, 10)
	h.holdRounds.Store(true)
	a := h.renewAsync(1)
	h.list()
	h.unanswered(a, "before any quorum round confirmed the leadership")
	r1 := h.nextRound()

	h.kit.Root().Send(h.lessor, &leaseactor.LeaderChanged{Lead: 0, Term: 1})
	r := h.answer(a)
	if !errors.Is(r.Err, leaseactor.ErrNotPrimary) {
		t.Fatalf("keep-alive waiting when leadership was lost = %+v", r)
	}
	if s := status.Convert(r.Err); s.Code() != codes.Unknown || s.Message() != "not a primary lessor" {
		t.Fatalf("refusal is %v %q, want etcd's Unknown %q", s.Code(), s.Message(), "not a primary lessor")
	}
	r1 <- nil // the round's late answer changes nothing

	// The view still says primary at term 1: keep-alives go to the leader,
	// and nothing expires here.
	if r := h.answer(h.renewAsync(1)); !errors.Is(r.Err, rpctypes.ErrGRPCNotLeader) {
		t.Fatalf("keep-alive on a deposed member = %+v", r)
	}
	h.advance(20 * time.Second)
	if ids := h.revokes(); len(ids) != 0 {
		t.Fatalf("a deposed lessor revoked %v", ids)
	}

	// Leading again, in a later term: primary again, through rounds.
	h.term.Store(2)
	d := h.renewAsync(1)
	h.nextRound() <- nil
	if r := h.answer(d); r.Err != nil || r.TTL != 10 {
		t.Fatalf("keep-alive once leading again = %+v", r)
	}
}

// A round that fails, or ends in another term than it began (this member
// lost and regained leadership meanwhile), acknowledges nothing; the
// refusals are counted.
func TestRoundNotConfirmingRefusesRenewals(t *testing.T) {
	reg := testkit.Registry(t)
	h := newHarness(t, nil)
	h.grant(1, 10)
	h.holdRounds.Store(true)
	before := testkit.Gather(t, reg)

	a := h.renewAsync(1)
	h.list()
	h.unanswered(a, "before any quorum round confirmed the leadership")
	h.nextRound() <- rpctypes.ErrGRPCLeaderChanged
	if r := h.answer(a); !errors.Is(r.Err, leaseactor.ErrNotPrimary) {
		t.Fatalf("keep-alive on a failed round = %+v", r)
	}

	b := h.renewAsync(1)
	r2 := h.nextRound()
	h.term.Store(2)
	r2 <- nil
	if r := h.answer(b); !errors.Is(r.Err, leaseactor.ErrNotPrimary) {
		t.Fatalf("keep-alive on a round across a term change = %+v", r)
	}

	const name = "metastore_lease_renew_unconfirmed_total"
	if got := count(testkit.Gather(t, reg), name) - count(before, name); got != 2 {
		t.Errorf("%s grew by %v, want 2", name, got)
	}
	// Primary in term 2 now: the next keep-alive is confirmed there.
	c := h.renewAsync(1)
	h.nextRound() <- nil
	if r := h.answer(c); r.Err != nil || r.TTL != 10 {
		t.Fatalf("keep-alive in the new term = %+v", r)
	}
}

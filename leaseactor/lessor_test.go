package leaseactor_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/leaseactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

const wait = 5 * time.Second

// harness runs a real Store (on in-memory pebble) feeding a Lessor on a
// fake clock. The test plays raft: it applies requests to the store,
// collects the revokes and checkpoints the Lessor proposes (applying them
// when it wants),
// publishes the raft view (primary, term) and answers quorum rounds: at
// once, or, once holdRounds is set, when the test takes them from rounds.
type harness struct {
	t        *testing.T
	kit      *testkit.Kit
	db       *pebble.DB
	reader   *storeactor.Reader
	clock    *testkit.FakeClock
	raft     *testkit.Probe
	store    *actor.PID
	lessor   *actor.PID
	cfg      leaseactor.Config
	primary  atomic.Bool
	term     atomic.Uint64
	proposed chan *pb.InternalRaftRequest // revokes
	cps      chan proposal                // checkpoints
	index    uint64

	holdRounds atomic.Bool
	rounds     chan chan<- error // quorum rounds the Lessor started, while held
}

// self is the member the harness's Lessor runs on.
const self = 1

func newHarness(t *testing.T, tweak func(*leaseactor.Config)) *harness {
	t.Helper()
	db, err := storeactor.OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessOn(t, db, tweak)
}

// newHarnessOn is newHarness on db, which it closes when the test ends.
func newHarnessOn(t *testing.T, db *pebble.DB, tweak func(*leaseactor.Config)) *harness {
	t.Helper()
	t.Cleanup(func() { db.Close() })
	var err error
	h := &harness{t: t, db: db, kit: testkit.New(t), clock: testkit.NewFakeClock(time.Unix(1000, 0)),
		proposed: make(chan *pb.InternalRaftRequest, 100000), cps: make(chan proposal, 100000),
		rounds: make(chan chan<- error, 100)}
	h.primary.Store(true)
	h.term.Store(1)
	if h.reader, err = storeactor.NewReader(db); err != nil {
		t.Fatal(err)
	}
	h.cfg = leaseactor.Config{
		Store: h.reader, Clock: h.clock, Extend: time.Second,
		ID:      self,
		Primary: func() (uint64, bool) { return h.term.Load(), h.primary.Load() },
		ReadIndex: func(reply chan<- error) {
			if h.holdRounds.Load() {
				h.rounds <- reply
			} else {
				reply <- nil
			}
		},
		Propose: func(r *pb.InternalRaftRequest, reply chan<- actors.Result) {
			if r.LeaseCheckpoint != nil {
				h.cps <- proposal{r, reply}
				return
			}
			h.proposed <- r
		},
	}
	if tweak != nil {
		tweak(&h.cfg)
	}
	h.startLessor()
	h.store = h.kit.Spawn(storeactor.New(storeactor.Config{DB: db, Leases: h.lessor, MinLeaseTTL: 2}, h.reader))
	h.raft = h.kit.NewProbe()
	return h
}

func (h *harness) startLessor() {
	h.lessor = h.kit.Spawn(leaseactor.New(h.cfg))
	h.clock.WaitPending(1, wait) // its check timer is armed
}

// proposal is a request the Lessor proposed, and where it waits for the
// store's answer (nil: it does not).
type proposal struct {
	req   *pb.InternalRaftRequest
	reply chan<- actors.Result
}

// apply applies reqs through the store as committed raft entries.
func (h *harness) apply(reqs ...*pb.InternalRaftRequest) []actors.Result {
	h.t.Helper()
	chans := make([]chan actors.Result, len(reqs))
	entries := make([]storeactor.Entry, len(reqs))
	for i, r := range reqs {
		h.index++
		chans[i] = make(chan actors.Result, 1)
		entries[i] = storeactor.Entry{Index: h.index, Term: 1, Req: r, Reply: chans[i]}
	}
	h.raft.Request(h.store, &storeactor.Apply{Entries: entries})
	out := make([]actors.Result, len(reqs))
	for i := range chans {
		out[i] = <-chans[i]
	}
	testkit.Expect[*storeactor.Applied](h.raft, wait)
	h.list() // the Lessor has handled what the store told it
	return out
}

// applyProposal applies what the Lessor proposed, answering it as raft
// would once the store has.
func (h *harness) applyProposal(p proposal) {
	h.t.Helper()
	h.index++
	h.raft.Request(h.store, &storeactor.Apply{Entries: []storeactor.Entry{{Index: h.index, Term: 1, Req: p.req, Reply: p.reply}}})
	testkit.Expect[*storeactor.Applied](h.raft, wait)
	h.list()
}

func (h *harness) grant(id, ttl int64) {
	h.t.Helper()
	if res := h.apply(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: id, TTL: ttl}}); res[0].Err != nil {
		h.t.Fatal(res[0].Err)
	}
}

// advance moves the fake clock and waits until the Lessor has handled the
// ticks that fired. A tick may be handled at any time between when it
// fired and the end of the advance.
func (h *harness) advance(d time.Duration) {
	h.clock.Advance(d)
	h.list()
}

func (h *harness) list() []int64 {
	ids, err := actors.Ask(context.Background(), h.kit.Root(), h.lessor, func(r chan<- []int64) any { return &leaseactor.List{Reply: r} })
	if err != nil {
		h.t.Fatal(err)
	}
	return ids
}

func (h *harness) renew(id int64) leaseactor.RenewResult {
	res, _ := actors.Ask(context.Background(), h.kit.Root(), h.lessor, func(r chan<- leaseactor.RenewResult) any {
		return &leaseactor.Renew{ID: id, Reply: r}
	})
	return res
}

func (h *harness) ttl(id int64) leaseactor.TTLResult {
	res, _ := actors.Ask(context.Background(), h.kit.Root(), h.lessor, func(r chan<- leaseactor.TTLResult) any {
		return &leaseactor.TimeToLive{ID: id, Reply: r}
	})
	return res
}

// waitRevokes collects proposed revokes until n have come (a round's
// answer reaches the Lessor from another goroutine) or the wait bound.
func (h *harness) waitRevokes(n int) []int64 {
	var ids []int64
	deadline := time.After(wait)
	for len(ids) < n {
		select {
		case r := <-h.proposed:
			ids = append(ids, r.LeaseRevoke.ID)
		case <-deadline:
			return ids
		}
	}
	return append(ids, h.revokes()...)
}

// revokes drains the proposed revokes.
func (h *harness) revokes() []int64 {
	var ids []int64
	for {
		select {
		case r := <-h.proposed:
			ids = append(ids, r.LeaseRevoke.ID)
		default:
			return ids
		}
	}
}

func TestExpiryProposesRevoke(t *testing.T) {
	h := newHarness(t, nil)
	h.grant(1, 10)
	h.grant(2, 20)
	if r := h.ttl(1); !r.Found || r.TTL != 10 || r.GrantedTTL != 10 {
		t.Fatalf("ttl = %+v", r)
	}
	h.advance(9 * time.Second)
	if ids := h.revokes(); len(ids) != 0 {
		t.Fatalf("revoked early: %v", ids)
	}
	h.advance(1500 * time.Millisecond)
	if ids := h.revokes(); fmt.Sprint(ids) != "[1]" {
		t.Fatalf("revokes = %v, want [1]", ids)
	}
	// Expired, revoke pending: a keep-alive gets "not found", as in etcd.
	if r := h.renew(1); !errors.Is(r.Err, rpctypes.ErrGRPCLeaseNotFound) {
		t.Fatalf("renew of an expired lease: %+v", r)
	}
	// The revoke applied: the lease is gone.
	h.apply(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1}})
	if r := h.ttl(1); r.Found {
		t.Fatalf("revoked lease still known: %+v", r)
	}
	if ids := h.list(); fmt.Sprint(ids) != "[2]" {
		t.Fatalf("leases = %v", ids)
	}
}

func TestKeepAlivePushesExpiryBack(t *testing.T) {
	h := newHarness(t, nil)
	h.grant(7, 10)
	h.advance(6 * time.Second)
	if r := h.renew(7); r.Err != nil || r.TTL != 10 {
		t.Fatalf("renew = %+v", r)
	}
	h.advance(6 * time.Second) // 12 s after the grant, 6 after the renew
	if ids := h.revokes(); len(ids) != 0 {
		t.Fatalf("revoked a renewed lease: %v", ids)
	}
	h.advance(5 * time.Second)
	if ids := h.revokes(); fmt.Sprint(ids) != "[7]" {
		t.Fatalf("revokes = %v", ids)
	}
	if r := h.renew(99); !errors.Is(r.Err, rpctypes.ErrGRPCLeaseNotFound) {
		t.Fatalf("renew of an unknown lease: %+v", r)
	}
}

// A revoke that is not applied (lost with a leader change) is proposed
// again after the retry interval, and an expired lease is not revived by
// the retry's bookkeeping.
func TestUnappliedRevokeIsRetried(t *testing.T) {
	h := newHarness(t, nil)
	h.grant(3, 5)
	h.advance(5500 * time.Millisecond) // proposed at 5 s or 5.5 s
	if ids := h.revokes(); fmt.Sprint(ids) != "[3]" {
		t.Fatalf("revokes = %v", ids)
	}
	h.advance(2 * time.Second) // 7.5 s: the retry is due at 8 s or 8.5 s
	if ids := h.revokes(); len(ids) != 0 {
		t.Fatalf("retried too soon: %v", ids)
	}
	if r := h.renew(3); r.Err == nil {
		t.Fatalf("expired lease renewed: %+v", r)
	}
	h.advance(1500 * time.Millisecond)
	if ids := h.revokes(); fmt.Sprint(ids) != "[3]" {
		t.Fatalf("retry = %v", ids)
	}
}

// A member that is not primary expires nothing; on promotion every lease
// gets its full TTL plus Extend.
func TestOnlyPrimaryExpiresAndPromotionRefreshes(t *testing.T) {
	h := newHarness(t, nil)
	h.grant(1, 10)
	h.advance(8 * time.Second)
	h.primary.Store(false)
	h.advance(time.Second) // demoted at this tick
	h.advance(30 * time.Second)
	if ids := h.revokes(); len(ids) != 0 {
		t.Fatalf("a demoted lessor revoked %v", ids)
	}
	if r := h.renew(1); !errors.Is(r.Err, rpctypes.ErrGRPCNotLeader) {
		t.Fatalf("renew on a non-primary member: %+v", r)
	}
	h.primary.Store(true)
	if r := h.ttl(1); r.TTL != 11 { // 10 s + 1 s extend
		t.Fatalf("ttl after promotion = %+v", r)
	}
	h.advance(10 * time.Second)
	if ids := h.revokes(); len(ids) != 0 {
		t.Fatalf("revoked before the refreshed expiry: %v", ids)
	}
	h.advance(1500 * time.Millisecond)
	if ids := h.revokes(); fmt.Sprint(ids) != "[1]" {
		t.Fatalf("revokes = %v", ids)
	}
}

// A restarted Lessor reloads every lease from pebble and gives it its full
// TTL again; a grant it never heard of is found in pebble on first use.
func TestRestartReloadsLeases(t *testing.T) {
	h := newHarness(t, nil)
	h.grant(1, 10)
	h.grant(2, 30)
	h.advance(8 * time.Second)
	h.kit.Stop(h.lessor)
	h.startLessor()
	if ids := h.list(); len(ids) != 2 {
		t.Fatalf("leases after restart = %v", ids)
	}
	if r := h.ttl(1); r.TTL != 11 {
		t.Fatalf("ttl after restart = %+v", r)
	}
	// A lease granted while the Lessor was not told (store wired to none).
	h.kit.Stop(h.store)
	h.store = h.kit.Spawn(storeactor.New(storeactor.Config{DB: h.db, MinLeaseTTL: 2}, h.reader))
	h.grant(5, 20)
	if r := h.renew(5); r.Err != nil || r.TTL != 20 {
		t.Fatalf("renew of a lease only pebble knows: %+v", r)
	}
}

// 2000 leases expiring at once are revoked at most RevokeRate a second.
func TestMassExpiryIsRateLimited(t *testing.T) {
	h := newHarness(t, func(c *leaseactor.Config) { c.RevokeRate = 1000; c.CheckInterval = 500 * time.Millisecond })
	var reqs []*pb.InternalRaftRequest
	for id := int64(1); id <= 2000; id++ {
		reqs = append(reqs, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: id, TTL: 10}})
	}
	h.apply(reqs...)
	h.advance(9500 * time.Millisecond)
	if n := len(h.revokes()); n != 0 {
		t.Fatalf("%d revoked before expiry", n)
	}
	h.advance(500 * time.Millisecond) // one tick: 1000/s x 0.5 s
	if n := len(h.revokes()); n != 500 {
		t.Fatalf("first tick revoked %d, want 500", n)
	}
	h.advance(500 * time.Millisecond)
	if n := len(h.revokes()); n != 500 {
		t.Fatalf("second tick revoked %d, want 500", n)
	}
}

func TestGrantRules(t *testing.T) {
	h := newHarness(t, nil)
	res := h.apply(
		&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 1}},
		&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 5}},
		&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 2, TTL: storeactor.MaxLeaseTTL + 1}},
		&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 3}},
	)
	if g := res[0].Resp.(*pb.LeaseGrantResponse); g.TTL != 2 {
		t.Fatalf("TTL below the minimum granted as %d", g.TTL)
	}
	for i, want := range []error{nil, rpctypes.ErrGRPCLeaseExist, rpctypes.ErrGRPCLeaseTTLTooLarge, rpctypes.ErrGRPCLeaseNotFound} {
		if !errors.Is(res[i].Err, want) {
			t.Errorf("request %d: err %v, want %v", i, res[i].Err, want)
		}
	}
}

// A leadership transfer's target campaigns at once in a new term: raft
// says "no leader" in that term before this member leads in it. The Lessor
// must become primary then (it was never promoted, and leases never
// expired, after a move-leader).
func TestPromotedInTheTermItCampaignedIn(t *testing.T) {
	h := newHarness(t, nil)
	h.grant(1, 10)
	h.primary.Store(false)
	h.advance(time.Second) // a follower in term 1
	h.kit.Root().Send(h.lessor, &leaseactor.LeaderChanged{Lead: 0, Term: 2, Campaigning: true})
	h.term.Store(2)
	h.primary.Store(true)
	if r := h.ttl(1); r.TTL != 11 { // promoted: 10 s + 1 s extend
		t.Fatalf("ttl once leading the term it campaigned in = %+v", r)
	}
	h.advance(12 * time.Second)
	if ids := h.revokes(); fmt.Sprint(ids) != "[1]" {
		t.Fatalf("revokes = %v", ids)
	}
	// Losing a term to another member still deposes it for that term.
	h.kit.Root().Send(h.lessor, &leaseactor.LeaderChanged{Lead: 9, Term: 3})
	h.term.Store(3) // a stale view: still says leading, in term 3
	if r := h.renew(1); !errors.Is(r.Err, rpctypes.ErrGRPCNotLeader) && !errors.Is(r.Err, leaseactor.ErrNotPrimary) {
		t.Fatalf("renew in a term another member leads: %+v", r)
	}
}

// Package leaseactor owns lease liveness: when each lease expires, keep-
// alives that push that back, and the decision to revoke. The leases
// themselves (grant, revoke, attached keys) are replicated state applied by
// the store through raft; the Lessor learns of them from the store
// (storeactor.LeasesApplied) and reloads them from pebble when it starts.
//
// As in etcd, only the leader's Lessor expires leases, and only once it is
// primary: leader, with every entry of earlier terms applied. On promotion
// every lease gets its full TTL again plus Extend (so a leader change never
// expires a lease early) — or, if the store holds a checkpoint of its
// remaining TTL, that remaining TTL plus Extend; on demotion expiries are
// forgotten, so a deposed leader revokes nothing. Expired leases are
// revoked through raft, at most RevokeRate a second, and retried after
// RetryInterval if the revoke has not been applied by then. With
// checkpoints on (CheckpointInterval, etcd's LeaseCheckpoint gate) the
// primary records each lease's remaining TTL through raft every interval
// (checkpoint.go), so that a new leader or a restarted cluster does not
// give it its whole TTL again.
//
// A keep-alive is acknowledged only once a raft quorum round begun after
// it arrived has confirmed this member still leads, in the same term
// (etcd's ensureLeadership; see confirm.go): a leader cut off from its
// peers acknowledges none, instead of going on until CheckQuorum deposes
// it. Raft reports a leader change at once (LeaderChanged), so demotion
// does not wait for the next check either.
package leaseactor

import (
	"container/heap"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// Config is what a Lessor needs.
type Config struct {
	Store *storeactor.Reader
	// ID is this member's id, to read LeaderChanged by.
	ID uint64
	// Primary reports whether this member may expire leases (it is the
	// raft leader and has applied every entry of earlier terms) and the
	// raft term it read that in, from one published view.
	Primary func() (term uint64, ok bool)
	// ReadIndex starts a raft quorum round (raftactor.ReadIndex) and must
	// not block: reply gets nil once a quorum has confirmed, after the
	// call, that this member leads, and the local store has applied what
	// was committed then; or an error.
	ReadIndex func(reply chan<- error)
	// Propose sends a request through raft and must not block; reply
	// (nil: nobody waits) gets the store's answer once it is applied, or
	// the error that kept it from being applied.
	Propose func(r *pb.InternalRaftRequest, reply chan<- actors.Result)
	Clock   actors.Clock
	Logger  *zap.Logger

	Extend        time.Duration // added to every TTL on promotion (etcd: the election timeout)
	RevokeRate    int           // expired leases revoked per second at most (etcd: 1000)
	CheckInterval time.Duration // how often expiry is checked (etcd: 500ms)
	RetryInterval time.Duration // when to revoke again if a revoke was not applied (etcd: 3s)

	// CheckpointInterval is how often the primary checkpoints each
	// lease's remaining TTL (--feature-gates=LeaseCheckpoint=true; etcd:
	// 5 minutes). 0: no checkpoints, as etcd without the gate.
	CheckpointInterval time.Duration
	CheckpointRate     int // LeaseCheckpoint entries proposed per second at most (etcd: 1000)
	CheckpointBatch    int // checkpoints in one entry at most (etcd: 1000)
}

// Renew is a keep-alive: the lease's expiry moves to now + its TTL.
type Renew struct {
	ID    int64
	Reply chan<- RenewResult
}

// RenewResult is the lease's TTL, or rpctypes.ErrGRPCLeaseNotFound for an
// unknown or expired lease, or rpctypes.ErrGRPCNotLeader when this member
// was not primary when the renewal arrived (the gateway forwards it to the
// leader), or ErrNotPrimary when it was but its leadership could not be
// confirmed for the renewal (the client is told, and moves on).
type RenewResult struct {
	TTL int64
	Err error
}

// TimeToLive asks for a lease's remaining and granted TTL.
type TimeToLive struct {
	ID    int64
	Reply chan<- TTLResult
}

// TTLResult answers TimeToLive; Found is false for an unknown lease.
type TTLResult struct {
	TTL, GrantedTTL int64
	Found           bool
	Err             error
}

// List asks for every lease id, soonest expiry first (etcd's order).
type List struct{ Reply chan<- []int64 }

// LeaderChanged is raft telling of a new leader (0: none) in term: sent
// from raftactor.Config.OnLeaderChange, before the raft view says so.
// Campaigning: none, because this member is a candidate in Term.
type LeaderChanged struct {
	Lead, Term  uint64
	Campaigning bool
}

type tick struct{}

// Lessor is the lease actor.
//
// Invariants: leases holds every lease the store has granted and not
// revoked (as far as LeasesApplied told, corrected from pebble on a miss);
// when primary, every lease is in expiries keyed by its next check time,
// which is its expiry until a revoke has been proposed for it, and a lease
// is in checkpoints when its next checkpoint is scheduled; when not
// primary both heaps are empty. The Lessor is primary only in one term
// (term), never in one at or below deposed: a view published before
// raft's LeaderChanged cannot promote it again; and only once loaded: it
// must know every lease to expire any.
type Lessor struct {
	cfg         Config
	leases      map[int64]*lease
	loaded      bool // leases were read from pebble since the actor started (load)
	loadLog     *actors.LogLimiter
	expiries    leaseHeap
	checkpoints leaseHeap
	primary     bool
	term        uint64 // the raft term it is primary in
	deposed     uint64 // the last term raft said another member, or none, leads
	stopTick    func()
	self        *actor.PID
	root        *actor.RootContext
	confirm     confirmations
}

type lease struct {
	id, ttl int64
	// remaining is the remaining TTL of the lease's last checkpoint, as
	// the store recorded it (0: none).
	remaining int64
	expiry    time.Time // zero when not primary: never expires
	exp       slot      // in expiries: the next check time
	cp        slot      // in checkpoints: when the next checkpoint is due
	expired   bool      // this member proposed its revoke because it expired
}

func newLease(r storeactor.LeaseRecord) *lease {
	return &lease{id: r.ID, ttl: r.TTL, remaining: r.Remaining, exp: slot{index: -1}, cp: slot{index: -1}}
}

// remainingOrTTL is what a promotion gives the lease (etcd's
// getRemainingTTL): its checkpointed remaining TTL, or its whole TTL.
func (ls *lease) remainingOrTTL() time.Duration {
	if ls.remaining > 0 {
		return time.Duration(ls.remaining) * time.Second
	}
	return time.Duration(ls.ttl) * time.Second
}

// New returns the Lessor's props.
// MinTTL is etcd's smallest lease TTL in seconds: 1.5 election timeouts,
// rounded up (a lease must outlive a leader change).
func MinTTL(electionTicks int, heartbeat time.Duration) int64 {
	d := time.Duration((3*electionTicks)/2) * heartbeat
	return int64(math.Ceil(d.Seconds()))
}

func New(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = actors.RealClock
	}
	if cfg.RevokeRate <= 0 {
		cfg.RevokeRate = 1000
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 500 * time.Millisecond
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 3 * time.Second
	}
	if cfg.CheckpointRate <= 0 {
		cfg.CheckpointRate = 1000
	}
	if cfg.CheckpointBatch <= 0 {
		cfg.CheckpointBatch = 1000
	}
	loadLog := actors.NewLogLimiter(cfg.Clock, loadLogInterval)
	return actor.PropsFromProducer(func() actor.Actor { return &Lessor{cfg: cfg, loadLog: loadLog} }, actors.KeepStopped())
}

func (l *Lessor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		l.start(ctx)
	case *actor.Stopping, *actor.Restarting:
		if l.stopTick != nil {
			l.stopTick()
		}
		l.refuseRenewals("lessor stopping")
	case *storeactor.LeasesApplied:
		l.applied(m)
	case *Renew:
		l.renew(m)
	case confirmed:
		l.confirmed(m)
	case cleared:
		l.cleared(m)
	case *LeaderChanged:
		l.leaderChanged(m)
	case *TimeToLive:
		actors.Reply(m.Reply, l.timeToLive(m.ID))
	case *List:
		actors.Reply(m.Reply, l.list())
	case tick:
		if !l.loaded {
			l.load()
		}
		l.checkPrimary()
		l.confirmDue()
	}
}

// start loads the leases from pebble: after a restart of the actor or the
// process, every lease is known again, and gets its full (or checkpointed
// remaining) TTL once primary.
func (l *Lessor) start(ctx actor.Context) {
	l.leases = map[int64]*lease{}
	l.expiries = leaseHeap{slot: expirySlot}
	l.checkpoints = leaseHeap{slot: checkpointSlot}
	l.primary, l.loaded = false, false
	l.self, l.root = ctx.Self(), ctx.ActorSystem().Root
	l.load()
	l.checkPrimary()
	self, root := l.self, l.root
	l.stopTick = l.cfg.Clock.Every(l.cfg.CheckInterval, func() { root.Send(self, tick{}) })
}

// loadLogInterval spaces the lines logged while the leases cannot be read.
const loadLogInterval = 10 * time.Second

// load reads every lease from pebble, in place of those known so far
// (pebble has applied at least what LeasesApplied told). A failed read is
// logged and counted, and tried again at the next tick; until one
// succeeds the Lessor is not primary and expires nothing.
func (l *Lessor) load() {
	rs, err := l.cfg.Store.Leases()
	if err != nil {
		leaseLoadFailures.Inc()
		if ok, held := l.loadLog.Allow(); ok {
			l.cfg.Logger.Error("failed to read the leases; expiring none until they are read, retrying every check",
				zap.Error(err), zap.Duration("check-interval", l.cfg.CheckInterval), zap.Int64("unlogged-since-last", held))
		}
		return
	}
	l.leases = make(map[int64]*lease, len(rs))
	for _, r := range rs {
		l.leases[r.ID] = newLease(r)
	}
	l.loaded = true
}

// checkPrimary follows the raft view: promoted once it leads with every
// earlier entry applied, demoted when it does not, or leads in a later
// term (leases start over, as on any promotion).
func (l *Lessor) checkPrimary() {
	term, ok := l.cfg.Primary()
	ok = ok && term > l.deposed && l.loaded
	switch {
	case l.primary && !ok:
		l.demote("no longer the leader")
	case l.primary && term != l.term:
		l.demote(fmt.Sprintf("leading in term %d now", term))
	}
	if ok && !l.primary {
		l.promote(term)
	}
}

// leaderChanged demotes at once on raft's word that this member no longer
// leads, without waiting for the view or the next tick.
func (l *Lessor) leaderChanged(m *LeaderChanged) {
	switch {
	case m.Lead == l.cfg.ID:
	case m.Campaigning:
		// A candidate may win its own term: only the terms before it are
		// lost (a leadership transfer's target campaigns at once, in a
		// new term, and leads in it).
		l.deposed = max(l.deposed, m.Term-1)
	default:
		l.deposed = max(l.deposed, m.Term)
	}
	if l.primary && (m.Lead != l.cfg.ID || m.Term != l.term) {
		l.demote(fmt.Sprintf("leader changed to %x at term %d", m.Lead, m.Term))
	}
}

// promote gives every lease its remaining TTL (the checkpointed one, or
// its whole TTL) plus Extend from now, and schedules its checkpoint.
func (l *Lessor) promote(term uint64) {
	l.primary, l.term = true, term
	now := l.cfg.Clock.Now()
	l.expiries.clear()
	l.checkpoints.clear()
	for _, ls := range l.leases {
		ls.expiry = now.Add(l.cfg.Extend + ls.remainingOrTTL())
		ls.exp = slot{at: ls.expiry, index: len(l.expiries.ls)}
		l.expiries.ls = append(l.expiries.ls, ls)
		l.scheduleCheckpoint(ls, now)
	}
	heap.Init(&l.expiries)
	l.cfg.Logger.Info("lessor promoted", zap.Int("leases", len(l.leases)), zap.Uint64("term", term))
}

// demote forgets expiries and refuses the renewals waiting for a
// confirmation of the leadership just lost.
func (l *Lessor) demote(why string) {
	l.primary = false
	l.expiries.clear()
	l.checkpoints.clear()
	for _, ls := range l.leases {
		ls.expiry = time.Time{}
	}
	l.cfg.Logger.Info("lessor demoted", zap.String("reason", why), zap.Uint64("term", l.term))
	l.refuseRenewals(why)
}

func (l *Lessor) applied(m *storeactor.LeasesApplied) {
	// A grant applied just after this member became primary must count
	// down from now, not from the next tick's promotion.
	l.checkPrimary()
	for _, g := range m.Granted {
		if !m.Reset {
			leaseGranted.Inc()
			leaseTTLs.Observe(float64(g.TTL))
		}
		if ls := l.leases[g.ID]; ls != nil {
			ls.ttl, ls.remaining = g.TTL, g.Remaining // a snapshot's record
		} else {
			l.add(g)
		}
	}
	for _, id := range m.Revoked {
		leaseRevoked.Inc()
		if ls := l.leases[id]; ls != nil && ls.expired {
			leaseExpired.Inc()
		}
		l.remove(id)
	}
	for _, c := range m.Checkpointed {
		l.checkpointed(c)
	}
	if m.Reset {
		keep := make(map[int64]bool, len(m.Granted))
		for _, g := range m.Granted {
			keep[g.ID] = true
		}
		for id := range l.leases {
			if !keep[id] {
				l.remove(id)
			}
		}
	}
}

func (l *Lessor) add(r storeactor.LeaseRecord) *lease {
	ls := newLease(r)
	l.leases[r.ID] = ls
	if l.primary {
		now := l.cfg.Clock.Now()
		ls.expiry = now.Add(ls.remainingOrTTL())
		l.expiries.schedule(ls, ls.expiry)
		l.scheduleCheckpoint(ls, now)
	}
	return ls
}

func (l *Lessor) remove(id int64) {
	ls := l.leases[id]
	if ls == nil {
		return
	}
	delete(l.leases, id)
	l.expiries.remove(ls)
	l.checkpoints.remove(ls)
}

// lookup finds a lease, asking pebble when this actor has not heard of it
// (a LeasesApplied lost to a store restart), or fails with pebble's error.
func (l *Lessor) lookup(id int64) (*lease, error) {
	if ls := l.leases[id]; ls != nil {
		return ls, nil
	}
	r, ok, err := l.cfg.Store.Lease(id)
	if !ok {
		return nil, err
	}
	return l.add(r), nil
}

// extend renews a lease once this member's leadership is confirmed: its
// expiry moves to now + TTL (with checkpoints on, its checkpoint was
// cleared first: clearFirst). etcd's Renew moves it to now + the
// checkpointed remaining TTL when that was not cleared — always, without
// the LeaseCheckpoint gate — which keep-alives every TTL/3 may not
// outrun; MetaStore renews for the TTL it tells the client.
func (l *Lessor) extend(id int64) RenewResult {
	ls, err := l.lookup(id)
	if err != nil {
		return RenewResult{Err: err}
	}
	now := l.cfg.Clock.Now()
	if ls == nil || !now.Before(ls.expiry) {
		// Expired: its revoke is on the way; etcd answers "not found" too.
		return RenewResult{Err: rpctypes.ErrGRPCLeaseNotFound}
	}
	ls.expiry = now.Add(time.Duration(ls.ttl) * time.Second)
	l.expiries.schedule(ls, ls.expiry)
	leaseRenewed.Inc()
	return RenewResult{TTL: ls.ttl}
}

func (l *Lessor) timeToLive(id int64) TTLResult {
	l.checkPrimary()
	if !l.primary {
		return TTLResult{Err: rpctypes.ErrGRPCNotLeader}
	}
	ls, err := l.lookup(id)
	if ls == nil {
		return TTLResult{Err: err}
	}
	remaining := ls.expiry.Sub(l.cfg.Clock.Now())
	return TTLResult{TTL: int64(remaining.Seconds()), GrantedTTL: ls.ttl, Found: true}
}

func (l *Lessor) list() []int64 {
	ls := make([]*lease, 0, len(l.leases))
	for _, x := range l.leases {
		ls = append(ls, x)
	}
	sort.Slice(ls, func(i, j int) bool {
		if !ls[i].expiry.Equal(ls[j].expiry) {
			return ls[i].expiry.Before(ls[j].expiry)
		}
		return ls[i].id < ls[j].id
	})
	ids := make([]int64, len(ls))
	for i, x := range ls {
		ids[i] = x.id
	}
	return ids
}

// confirmDue starts a quorum round when some lease is due for its revoke
// or its checkpoint: both wait for one that confirms this member still
// leads (see confirmations).
func (l *Lessor) confirmDue() {
	if !l.primary {
		return
	}
	now := l.cfg.Clock.Now()
	due := func(h *leaseHeap) bool { ls := h.peek(); return ls != nil && !now.Before(h.slot(ls).at) }
	l.confirm.wantRevoke = l.confirm.wantRevoke || due(&l.expiries)
	l.confirm.wantCheckpoint = l.confirm.wantCheckpoint || due(&l.checkpoints)
	l.startRound()
}

// perCheck is how many of a per-second budget one check may spend.
func (l *Lessor) perCheck(perSecond int) int {
	return max(1, int(int64(perSecond)*int64(l.cfg.CheckInterval)/int64(time.Second)))
}

// revokeConfirmed proposes the revokes of expired leases, soonest first,
// at most RevokeRate a second, so that a mass expiry is spread over time
// instead of flooding raft (etcd #9360, #12105); once a round has
// confirmed the leadership.
func (l *Lessor) revokeConfirmed() {
	now := l.cfg.Clock.Now()
	limit := l.perCheck(l.cfg.RevokeRate)
	for n := 0; n < limit; {
		ls := l.expiries.peek()
		if ls == nil || now.Before(ls.exp.at) {
			return
		}
		// A lease that cannot be read is revoked as if it were there: the
		// revoke of one already gone is refused harmlessly, and the next
		// retry looks again.
		if _, ok, err := l.cfg.Store.Lease(ls.id); err == nil && !ok {
			l.remove(ls.id) // revoked, and the news was lost
			continue
		}
		l.cfg.Propose(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: ls.id}}, nil)
		ls.expired = true
		l.expiries.schedule(ls, now.Add(l.cfg.RetryInterval))
		n++
	}
}

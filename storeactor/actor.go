package storeactor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
)

// Entry is one committed raft entry for the store. Data is the encoded
// InternalRaftRequest; Req, when set, is the same request as proposed on
// this node, which saves decoding it again. Entries with neither (raft's
// empty entries, conf changes) only advance the applied index.
type Entry struct {
	Index uint64
	Term  uint64
	Data  []byte
	Req   *pb.InternalRaftRequest
	// ConfChange is set for a conf change entry (Data and Req are then
	// empty): the store decides it (see members.go) and reports the verdict
	// in Applied.Conf. Its client, if any, gets a MemberListResponse with
	// the membership after it.
	ConfChange *raftpb.ConfChange
	Reply      chan<- actors.Result // nil when no client waits on this node
}

// Apply asks the store to apply committed entries, in log order. The
// sender (the raft actor) is told Applied after each batch, and is asked to
// Replay when the store finds a gap (after a restart dropped a batch).
type Apply struct{ Entries []Entry }

// Applied tells the raft actor how far the store has durably-with-the-log
// applied: entries up to Index can be dropped from the raft log once a
// synced write follows.
//
// Conf are the verdicts on the conf change entries of the batch, in index
// order, including those the store had applied before a restart and
// skipped: the raft actor applies them to raft.
//
// Restarted marks the report a restarted store sends first (Index is what
// it has applied): batches handed to the previous instance may have been
// lost, or applied without a report, so the raft actor sends again
// everything after the last report it had.
type Applied struct {
	Index     uint64
	Conf      []ConfApplied
	Restarted bool
}

// Replay asks the raft actor to send committed entries again from From on.
type Replay struct{ From uint64 }

// Committed tells the watch hub what an apply batch changed: the events of
// revisions From..Rev, in revision order (within a revision, in the order
// the txn made them). It is sent after the batch is committed and published
// and before any client of the batch is answered, so a client that saw its
// write acknowledged and then creates a watch finds the hub past it.
//
// Events are shared, read-only: receivers must not modify them.
type Committed struct {
	From, Rev int64
	Events    []*mvccpb.Event
}

// slowApply is how long an apply batch may take before it is logged.
const slowApply = 100 * time.Millisecond

// Config is what a Store needs. DB is shared with the raft actor, which
// owns the 'r' key space; the store owns 'k', 'h' and 'm'.
type Config struct {
	DB           *pebble.DB
	Logger       *zap.Logger
	CompactChunk int // history entries handled per physical compaction step
	// WarnApplyDuration is --warning-apply-duration at start: how long
	// one request's apply may take before etcd's "apply request took too
	// long" is logged and counted (etcd_server_slow_apply_total); 0:
	// etcd's default. SetWarnApplyDuration changes it.
	WarnApplyDuration time.Duration
	// QuotaBytes is --quota-backend-bytes at start (0: etcd's 2 GiB;
	// negative: no quota), which the Reader's QuotaAvailable decides by;
	// SetQuota changes it.
	QuotaBytes int64

	// Watch, when set, is sent a Committed after every batch that wrote.
	Watch *actor.PID
	// Leases, when set, is sent a LeasesApplied after every batch that
	// granted or revoked leases.
	Leases *actor.PID
	// MinLeaseTTL is the smallest TTL a grant gets, in seconds (etcd:
	// 1.5 election timeouts, rounded up).
	MinLeaseTTL int64
	// Tokens, when set, is the auth token actor (authactor.SimpleTokens):
	// it is sent the token changes of every batch that has any, and then
	// answers that batch's clients.
	Tokens *actor.PID
	// LatestHalf sizes the cache of recently written keys' newest
	// versions (MemorySizes.LatestHalf; 0: SizeMemory(0)'s).
	LatestHalf int
	// KeyFilter caps the filter of keys never written
	// (MemorySizes.KeyFilter; 0: SizeMemory(0)'s).
	KeyFilter int
	// CountMirror caps the mirror of the count index's level 1
	// (MemorySizes.CountMirror; 0: SizeMemory(0)'s).
	CountMirror int
	// MaxLearners is --max-learners: learners the membership may hold
	// (etcd's default 1).
	MaxLearners int
	// Raft, when set, is sent an Applied{Restarted: true} each time the
	// store starts: the raft actor then hands again what a previous
	// instance may have lost or applied without reporting.
	Raft interface{ Send(m any) }
}

// Store is the single writer of the MVCC key space.
//
// Invariants:
//   - view.Applied is the index of the last entry whose effects (and the
//     meta keys recording it) are committed to pebble in one batch; entries
//     are applied exactly once, in index order.
//   - view is published only after the batch it describes is committed, so
//     a reader never sees a revision whose data is not readable.
//   - physical compaction deletes only versions invisible at every
//     revision >= view.CompactRev, so it can run interleaved with applies.
//   - the Reader's read cache holds no version that a published view has
//     superseded: every key a batch wrote is invalidated between the
//     batch's commit and its publish, and start clears the cache before
//     publishing (see readcache.go).
type Store struct {
	cfg        Config
	view       *viewRef
	cur        View
	auth       *authactor.State // as of the batch being applied; published with the View
	members    *Members         // as of the batch being applied; published with the View
	membersRef *membersRef
	latest     *latestCache // see latestcache.go; rebuilt by every start
	counts     *countMirror // see countwrite.go; reloaded by every start
	reads      *readCache   // the Reader's (readcache.go); emptied by every start
	authRef    *atomic.Pointer[authactor.State]

	// The settings that can change while the member runs (settings.go),
	// in cells that outlive restarts of the actor: quota is the Reader's.
	quota *atomic.Int64
	warn  *atomic.Int64 // --warning-apply-duration, normalized

	replaying    bool      // a Replay is outstanding; entries past a gap are dropped
	compacting   bool      // a compactStep is queued
	compactStart time.Time // first step of the physical compaction under way
}

type compactStep struct{}

// NewReader loads the store's state from db and returns the Reader that
// serves reads from the View the Store publishes (see New).
func NewReader(db *pebble.DB) (*Reader, error) {
	v, err := loadView(db)
	if err != nil {
		return nil, err
	}
	r := &Reader{db: db, view: new(viewRef), auth: new(atomic.Pointer[authactor.State]), members: new(membersRef), reads: newReadCache(admitMask)}
	r.quota.Store(DefaultQuotaBytes)
	r.view.Store(&v)
	r.auth.Store(loadAuthState(db))
	r.members.Store(loadMembers(db))
	return r, nil
}

// New returns the props of the Store that publishes its View through r
// (made by NewReader on the same DB). The View cell outlives restarts of
// the actor: a restarted Store reloads its state from pebble and publishes
// it again.
func New(cfg Config, r *Reader) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.CompactChunk <= 0 {
		cfg.CompactChunk = 10000
	}
	if cfg.MaxLearners <= 0 {
		cfg.MaxLearners = 1
	}
	r.quota.Store(quotaBytes(cfg.QuotaBytes))
	warn := new(atomic.Int64)
	warn.Store(int64(warnApplyDuration(cfg.WarnApplyDuration)))
	// KeepStopped: an incarnation started after the actor stopped would
	// read the DB its owner is closing.
	return actor.PropsFromProducer(func() actor.Actor {
		return &Store{cfg: cfg, view: r.view, authRef: r.auth, membersRef: r.members, reads: r.reads, quota: &r.quota, warn: warn}
	}, actors.KeepStopped())
}

func (s *Store) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.start(ctx)
	case *Apply:
		s.apply(ctx, m)
	case compactStep:
		s.compactStep(ctx)
	case *InstallSnapshot:
		s.installSnapshot(ctx, m)
	case *SetQuota:
		actors.Reply(m.Reply, s.setQuota(m))
	case *SetWarnApplyDuration:
		actors.Reply(m.Reply, s.setWarnApplyDuration(m))
	}
}

func (s *Store) start(ctx actor.Context) {
	v, err := loadView(s.cfg.DB)
	if err != nil {
		panic(fmt.Errorf("storeactor: load state: %w", err))
	}
	mirrorMax := s.cfg.CountMirror
	if mirrorMax <= 0 {
		mirrorMax = SizeMemory(0).CountMirror
	}
	s.counts = s.loadCountIndex(mirrorMax)
	if s.counts.levels[1] == nil {
		s.cfg.Logger.Info("count index level 1 is read from pebble: its mirror would outgrow its memory",
			zap.Int("count-mirror-max-bytes", mirrorMax))
	}
	countMirrorBytes.Set(float64(s.counts.bytes()))
	half := s.cfg.LatestHalf
	if half <= 0 {
		half = SizeMemory(0).LatestHalf
	}
	s.latest = newLatestCache(half)
	filterMax := s.cfg.KeyFilter
	if filterMax <= 0 {
		filterMax = SizeMemory(0).KeyFilter
	}
	s.latest.filterFull = func(keys int) {
		s.cfg.Logger.Warn("dropped the filter of keys never written: the keyspace outgrew its memory; puts to new keys look them up in pebble",
			zap.Int("keys", keys), zap.Int("key-filter-max-bytes", filterMax))
	}
	var filter *keyFilter
	filter, v.Keys = loadKeyFilter(s.cfg.DB, filterMax)
	s.latest.useFilter(filter)
	s.cur = v
	s.reads.clear()
	s.view.Store(&v)
	s.auth = loadAuthState(s.cfg.DB)
	s.authRef.Store(s.auth)
	s.members = loadMembers(s.cfg.DB)
	s.membersRef.Store(s.members)
	if s.view.installing() {
		s.view.installEnd() // the installed snapshot's View is out
	}
	if s.cfg.Raft != nil {
		s.cfg.Raft.Send(&Applied{Index: s.cur.Applied, Restarted: true})
	}
	if s.cur.CompactDone < s.cur.CompactRev {
		// A compaction was scheduled but not finished before a crash or restart.
		s.compacting = true
		ctx.Send(ctx.Self(), compactStep{})
	}
}

type pendingReply struct {
	ch  chan<- actors.Result
	res actors.Result
}

func (s *Store) apply(ctx actor.Context, m *Apply) {
	if len(m.Entries) == 0 {
		return
	}
	if first := m.Entries[0].Index; first > s.cur.Applied+1 {
		// A gap: an Apply was lost (this actor restarted mid-batch). Drop
		// what follows it and ask for the gap again, once.
		if !s.replaying {
			s.replaying = true
			s.cfg.Logger.Warn("store missed entries; asking raft to replay",
				zap.Uint64("applied", s.cur.Applied), zap.Uint64("got", first))
			ctx.Respond(&Replay{From: s.cur.Applied + 1})
		}
		return
	}
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > slowApply {
			s.cfg.Logger.Warn("slow apply batch", zap.Duration("took", d), zap.Int("entries", len(m.Entries)))
		}
	}()
	b := s.cfg.DB.NewIndexedBatch()
	next := s.cur
	var replies []pendingReply
	var newCompaction bool
	out := &batchOut{counts: newCountWriter(b, s.counts)}
	defer out.counts.release() // also when an entry panics
	// Each request's apply time runs from the end of the one before (one
	// clock read per request): its decoding is included.
	reqStart := start
	if s.cfg.Watch != nil {
		out.events = new([]*mvccpb.Event)
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Index <= next.Applied {
			// Applied before a restart or replay; raft still needs the
			// verdict on a conf change. A client still waiting was not
			// answered by the instance that applied it (it stopped in
			// between) and its response is gone: the outcome, applied,
			// can only be reported as unknown.
			if e.Reply != nil {
				actors.Reply(e.Reply, actors.Result{Err: rpctypes.ErrGRPCTimeout})
			}
			if e.ConfChange != nil {
				cc := recordedVerdict(b, e.Index)
				if cc == nil {
					cc = e.ConfChange // applied before verdicts were recorded
				}
				out.conf = append(out.conf, ConfApplied{Index: e.Index, CC: cc})
			}
			continue
		}
		if e.ConfChange != nil {
			ms, verdict, err := applyConfChange(b, s.members, e.Index, e.Term, e.ConfChange, s.cfg.MaxLearners)
			if err == nil {
				logMemberChange(s.cfg.Logger, e.ConfChange, s.members, ms)
			}
			s.members = ms
			out.conf = append(out.conf, verdict)
			if e.Reply != nil {
				res := actors.Result{Err: err}
				if err == nil {
					res.Resp = &pb.MemberListResponse{Header: &pb.ResponseHeader{}, Members: ms.List}
				}
				replies = append(replies, pendingReply{e.Reply, res})
			}
		}
		if e.Req == nil && len(e.Data) > 0 {
			e.Req = new(pb.InternalRaftRequest)
			if err := proto.Unmarshal(e.Data, e.Req); err != nil {
				panic(fmt.Errorf("storeactor: entry %d: %w", e.Index, err))
			}
		}
		if e.Req != nil {
			res, compacted := s.applyRequest(b, &next, e, out)
			end := time.Now()
			s.observeApply(e.Req, res, end.Sub(reqStart))
			reqStart = end
			newCompaction = newCompaction || compacted
			if e.Reply != nil {
				replies = append(replies, pendingReply{e.Reply, res})
			}
		}
		next.Applied, next.AppliedTerm = e.Index, e.Term
	}
	if next.Applied == s.cur.Applied {
		// Everything was applied before (a replay): the raft actor still
		// needs to hear so, or it replays again and again.
		b.Close()
		if ctx.Sender() != nil {
			ctx.Respond(&Applied{Index: s.cur.Applied, Conf: out.conf})
		}
		return
	}
	var applied [16]byte
	binary.BigEndian.PutUint64(applied[:8], next.Applied)
	binary.BigEndian.PutUint64(applied[8:], next.AppliedTerm)
	must(b.Set(metaApplied, applied[:], nil))
	must(putU64(b, metaRev, uint64(next.Rev)))
	must(putU64(b, metaLive, uint64(next.LiveBytes)))
	out.counts.close()
	// NoSync: the raft log entries being applied are already synced, and
	// the raft actor's next synced write flushes this batch too. After a
	// crash, whatever is lost here is re-applied from the log.
	commitStart := time.Now()
	must(b.Commit(pebble.NoSync))
	commitSec.Observe(time.Since(commitStart).Seconds())
	applyBatchEntries.Observe(float64(len(m.Entries)))
	b.Close()
	s.capCountMirror()
	out.ops.report()
	s.reads.invalidate(out.written)
	from := s.cur.Rev + 1
	s.cur = next
	s.publish()
	if out.events != nil && next.Rev >= from {
		ctx.Send(s.cfg.Watch, &Committed{From: from, Rev: next.Rev, Events: *out.events})
	}
	if s.cfg.Leases != nil && (len(out.leases.Granted) > 0 || len(out.leases.Revoked) > 0 || len(out.leases.Checkpointed) > 0) {
		ctx.Send(s.cfg.Leases, &out.leases)
	}
	// Raft hears of the batch before its clients do: a client that, once
	// answered, proposes again (a second membership change right after a
	// first one) must find raft past the first, whose conf change raft
	// holds as pending until this report brings its verdict.
	s.replaying = false
	if ctx.Sender() != nil {
		ctx.Respond(&Applied{Index: next.Applied, Conf: out.conf})
	}
	answer := func() {
		for _, r := range replies {
			actors.Reply(r.ch, r.res)
		}
	}
	if len(out.tokenOps) > 0 && s.cfg.Tokens != nil {
		ctx.Send(s.cfg.Tokens, &authactor.Apply{Ops: out.tokenOps, Then: answer})
	} else {
		answer()
	}
	if newCompaction && !s.compacting {
		s.compacting = true
		ctx.Send(ctx.Self(), compactStep{})
	}
}

// batchOut is what an apply batch hands on once it is committed.
type batchOut struct {
	events   *[]*mvccpb.Event // watch events, when a hub listens
	leases   LeasesApplied
	tokenOps []authactor.TokenOp
	conf     []ConfApplied
	written  [][]byte // every key a version was written for, for the read cache
	counts   *countWriter
	tw       writeTxn // each request's write txn in turn: its scratch buffers are reused
	ops      mvccOps  // the batch's operations, for etcd's mvcc counters
}

// applyRequest applies one entry's request into the batch and advances
// next; what it means for watchers, the lessor and tokens goes to out.
// Refusals come in etcd's order: alarms, then auth, then the request's own
// checks.
func (s *Store) applyRequest(b *pebble.Batch, next *View, e *Entry, out *batchOut) (actors.Result, bool) {
	r := e.Req
	tw := &out.tw
	*tw = writeTxn{r: b, w: b, beginRev: next.Rev, events: out.events, cache: s.latest, written: &out.written, counts: out.counts, buf: tw.buf[:0], key: tw.key[:0]}
	var res actors.Result
	compacted := false
	if err := refusedByAlarm(next, r); err != nil {
		return actors.Result{Err: err}, false
	}
	if err := s.refusedByAuth(b, r); err != nil {
		return actors.Result{Err: err}, false
	}
	switch {
	case r.Alarm != nil:
		res.Resp = applyAlarm(b, r.Alarm, next)
	case r.Put != nil:
		if err := tw.checkPut(r.Put); err != nil {
			res.Err = err
			if !errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
				tw.ops.rng(1) // etcd looked for the previous version
			}
		} else {
			res.Resp = tw.applyPut(r.Put)
		}
		tw.ops.end()
	case r.DeleteRange != nil:
		res.Resp = tw.applyDeleteRange(r.DeleteRange)
		tw.ops.end()
	case r.Txn != nil:
		resp, err := tw.applyTxn(r.Txn, next.CompactRev)
		res = actors.Result{Resp: resp, Err: err}
	case r.LeaseGrant != nil:
		resp, granted, err := applyLeaseGrant(b, r.LeaseGrant, s.cfg.MinLeaseTTL, next.Rev)
		res = actors.Result{Resp: resp, Err: err}
		if granted != nil {
			out.leases.Granted = append(out.leases.Granted, *granted)
		}
	case r.LeaseCheckpoint != nil:
		resp, changed := applyLeaseCheckpoint(b, r.LeaseCheckpoint, next.Rev)
		res.Resp = resp
		out.leases.Checkpointed = append(out.leases.Checkpointed, changed...)
	case r.LeaseRevoke != nil:
		resp, err := tw.applyLeaseRevoke(r.LeaseRevoke)
		tw.ops.end()
		res = actors.Result{Resp: resp, Err: err}
		if err == nil {
			out.leases.Revoked = append(out.leases.Revoked, r.LeaseRevoke.ID)
		}
	case r.Range != nil:
		start := time.Now()
		out.counts.flush() // the range may count from the batch's index
		resp, err := executeRange(b, nil, r.Range, next.Rev, next.CompactRev, true, nil)
		observeRange(err == nil, start)
		tw.ops.rng(1)
		tw.ops.end()
		res = actors.Result{Resp: resp, Err: err}
	case r.ClusterMemberAttrSet != nil:
		s.members = applyMemberAttrSet(b, s.members, r.ClusterMemberAttrSet)
		res.Resp = &pb.MemberListResponse{Header: &pb.ResponseHeader{}, Members: s.members.List}
	case r.Compaction != nil:
		rev := r.Compaction.Revision
		switch {
		case rev <= next.CompactRev:
			res.Err = rpctypes.ErrGRPCCompacted
		case rev > next.Rev:
			res.Err = rpctypes.ErrGRPCFutureRev
		default:
			next.CompactRev = rev
			must(putU64(b, metaCompact, uint64(rev)))
			res.Resp = &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: next.Rev}}
			compacted = true
		}
	default:
		if resp, err, ok := s.applyAuth(b, e, out); ok {
			res = actors.Result{Resp: resp, Err: err}
			break
		}
		res.Err = status.Error(codes.Unimplemented, "metastore: request type not supported yet")
	}
	if tw.changes > 0 {
		next.Rev = tw.beginRev + 1
	}
	next.LiveBytes += tw.live
	next.Keys += tw.keys
	out.ops.add(&tw.ops)
	return res, compacted
}

// observeApply records a request's apply time, and warns of a slow one
// in etcd's words (etcd_server_slow_apply_total counts them).
func (s *Store) observeApply(r *pb.InternalRaftRequest, res actors.Result, d time.Duration) {
	success := res.Err == nil || errors.Is(res.Err, rpctypes.ErrGRPCCompacted)
	observeApply(RequestType(r), success, d)
	warn := time.Duration(s.warn.Load())
	if d <= warn {
		return
	}
	var resp string
	if res.Resp != nil {
		resp = fmt.Sprintf("size:%d", proto.Size(res.Resp))
	}
	s.cfg.Logger.Warn("apply request took too long",
		zap.Duration("took", d),
		zap.Duration("expected-duration", warn),
		zap.String("prefix", ""),
		zap.String("request", (&pb.InternalRaftStringer{Request: r}).String()),
		zap.String("response", resp),
		zap.Error(res.Err))
	slowApplies.Inc()
}

// publish makes the current state visible to readers.
func (s *Store) publish() {
	v := s.cur
	s.view.Store(&v)
	s.authRef.Store(s.auth)
	s.membersRef.Store(s.members)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

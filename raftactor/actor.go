package raftactor

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftwal"
	"github.com/metastore/metastore/storeactor"
)

// Config is what a raft actor needs.
type Config struct {
	DB        *pebble.DB
	WAL       *raftwal.WAL // the log's entries and hard states (see log.go)
	ID        uint64       // this member's id
	ClusterID uint64       // published in View for response headers
	// Peers are the initial voters, for bootstrapping a new cluster: each
	// Context is the member (storeactor.EncodeMemberContext), which the
	// store records when it applies the bootstrap entries.
	Peers         []raft.Peer
	Store         *actor.PID
	StoreView     func() *storeactor.View
	Transport     Transport
	Clock         actors.Clock
	Logger        *zap.Logger
	TickInterval  time.Duration // --heartbeat-interval
	ElectionTicks int           // --election-timeout / --heartbeat-interval
	// ActivePeers counts the other members this one has a live connection
	// to; with DisableTickAdvance (--initial-election-tick-advance=false)
	// unset, a starting member fast-forwards its election clock once more
	// than one is up (tickadvance.go). nil: no advance.
	ActivePeers        func() int
	DisableTickAdvance bool
	// DisablePreVote is --pre-vote=false: a member that was cut off
	// campaigns at once when it returns, raising the term and deposing a
	// healthy leader (pre-vote first asks whether it could win).
	DisablePreVote bool
	SnapshotCount  uint64 // applied entries between raft log truncations
	CatchUp        uint64 // entries kept behind a truncation for slow followers
	LogBytes       uint64 // bytes of entries the log holds in memory, about (0: storeactor.SizeMemory(0)'s)
	// SnapshotFS and SnapshotRoot are where the transport unpacks the
	// checkpoints that come with snapshots from the leader (see
	// ReceivedSnapshotDir). A snapshot without one there stops the member.
	SnapshotFS   vfs.FS
	SnapshotRoot string
	// OnConfChange is called (on the actor's goroutine) with every conf
	// change applied to raft, so the transport can follow the membership.
	OnConfChange func(cc *raftpb.ConfChange)
	// OnLeaderChange is called (on the actor's goroutine, before the new
	// View is published) whenever the leader this member knows changes:
	// a deposed leader's lessor must stop renewing at once. campaigning:
	// there is no leader because this member stands for election in term
	// (a leadership transfer's target skips the pre-vote, so its term
	// rises before it leads), so it may yet lead in term.
	OnLeaderChange func(lead, term uint64, campaigning bool)
	// OnFatal is called when the member cannot go on: a write of the raft
	// log failed, or the store failed to apply the same entry maxReplays
	// times in a row. The actor then refuses every request. Nil: only
	// logged.
	OnFatal func(error)
}

// maxReplays is how many times the same entry is resent to a store that
// keeps failing on it before the member gives up (a poison entry: every
// restart of the store fails on it again).
const maxReplays = 5

// slowPersist is how long a Ready's write may take before it is logged.
const slowPersist = 100 * time.Millisecond

// warnSyncDuration is how long a synced raft log write may take before
// etcd's "slow fdatasync" warning is logged (etcd's wal uses 1 s).
const warnSyncDuration = time.Second

// Node is the raft actor: the driver of a core. It carries out the core's
// effects — the raft log in pebble, messages to peers, Applies to the
// store, client answers — and feeds it messages and ticks.
//
// Invariants:
//   - every Ready's entries and hard state are in the WAL (synced when
//     MustSync) before its messages are sent (a leader's appends excepted,
//     see core.leading) or its committed entries are handed to the store;
//   - the raft log is truncated only up to an index the store has
//     applied, by a synced pebble batch that also makes those applies
//     durable, before the WAL lets go of the entries;
//   - after a failed write of the raft log nothing more is acknowledged:
//     the member stops (OnFatal), as etcd does, rather than go on from a
//     state the disk may not have.
type Node struct {
	cfg     Config
	view    *ViewRef
	clients *clients // outlive restarts of the actor, see clients

	core    *core
	stopTck func()
	// The initial election tick advance (tickadvance.go).
	stopTickAdvance   func()
	tickAdvanceChecks int
	failed            error // set once the member cannot go on; every request is refused

	readyQueued bool
	logFirst    uint64 // the first log index the WAL holds (entries below it are released)

	heartbeats map[uint64]time.Time // when this leader last sent each follower a heartbeat
	logReadLog *actors.LogLimiter   // spaces the warnings of failed reads of old log entries
}

// New returns the props of a raft actor and the cell it publishes its View through.
func New(cfg Config) (*actor.Props, *ViewRef) {
	if cfg.Transport == nil {
		cfg.Transport = NoPeers{}
	}
	if cfg.Clock == nil {
		cfg.Clock = actors.RealClock
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.SnapshotCount == 0 {
		cfg.SnapshotCount = 10000
	}
	if cfg.CatchUp == 0 {
		cfg.CatchUp = 5000
	}
	if cfg.LogBytes == 0 {
		cfg.LogBytes = storeactor.SizeMemory(0).RaftLog
	}
	ref := new(ViewRef)
	ref.Store(&View{ID: cfg.ID, ClusterID: cfg.ClusterID})
	cl := newClients()
	cl.readCell = &ref.reads
	logReadLog := actors.NewLogLimiter(cfg.Clock, 10*time.Second)
	// KeepStopped: an incarnation started after the actor stopped would
	// sync a closed WAL and report a fatal error on a clean shutdown.
	return actor.PropsFromProducer(func() actor.Actor {
		return &Node{cfg: cfg, view: ref, clients: cl, logReadLog: logReadLog}
	}, actors.KeepStopped()), ref
}

func (n *Node) Receive(ctx actor.Context) {
	if n.failed != nil {
		n.refuse(ctx.Message())
		return
	}
	c := n.core
	switch m := ctx.Message().(type) {
	case *actor.Started:
		n.start(ctx)
	case *actor.Stopping, *actor.Restarting:
		n.stopTimers()
	case *Propose:
		c.propose(m)
		n.queueReady(ctx)
	case *ProposeConfChange:
		c.proposeConfChange(m)
		n.queueReady(ctx)
	case *CancelProposal:
		c.cancel(m.ID)
	case *ReadIndex:
		c.reads = append(c.reads, readWaiter{ch: m.Reply})
		n.queueReady(ctx)
	case *ReadsWaiting:
		c.reads = append(c.reads, readWaiter{batch: m.Batch})
		n.queueReady(ctx)
	case tick:
		c.tick()
		n.queueReady(ctx)
	case tickAdvanceCheck:
		n.checkTickAdvance()
		n.queueReady(ctx)
	case *Step:
		if err := c.step(m.Msg); err != nil {
			n.cfg.Logger.Debug("raft step", zap.Error(err))
		}
		n.queueReady(ctx)
	case *TransferLeader:
		c.stepProposals()
		n.cfg.Logger.Info("leadership transfer starting", zap.String("transferee-member-id", fmt.Sprintf("%x", m.Target)))
		c.rn.TransferLeader(m.Target)
		n.queueReady(ctx)
	case *HandOffLeadership:
		h := c.handOffLeadership(m.Connected)
		if h.Target != 0 {
			n.cfg.Logger.Info("leadership transfer starting", zap.String("local-member-id", fmt.Sprintf("%x", n.cfg.ID)),
				zap.String("current-leader-member-id", fmt.Sprintf("%x", n.cfg.ID)),
				zap.String("transferee-member-id", fmt.Sprintf("%x", h.Target)))
		}
		actors.Reply(m.Reply, h)
	case *ReportUnreachable:
		c.rn.ReportUnreachable(m.ID)
	case *ReportSnapshot:
		st := raft.SnapshotFinish
		if m.Failure {
			st = raft.SnapshotFailure
		}
		c.rn.ReportSnapshot(m.ID, st)
		n.queueReady(ctx)
	case processReady:
		n.readyQueued = false
		n.handleReady(ctx)
	case *storeactor.Applied:
		c.applied(m, n.cfg.StoreView().Applied)
	case *storeactor.Replay:
		c.replay(m.From)
	case *Status:
		actors.Reply(m.Reply, c.status(n.cfg.StoreView().Applied))
	}
	if n.core != nil {
		n.execute(ctx)
	}
	n.reportPending(isStopping(ctx.Message()))
}

// execute carries out the core's effects.
func (n *Node) execute(ctx actor.Context) {
	fx := n.core.take()
	for _, a := range fx.applies {
		ctx.Request(n.cfg.Store, a)
	}
	if fx.leaderChange != nil && n.cfg.OnLeaderChange != nil {
		n.cfg.OnLeaderChange(fx.leaderChange.lead, fx.leaderChange.term, fx.leaderChange.campaigning)
	}
	if n.cfg.OnConfChange != nil {
		for _, cc := range fx.confChanges {
			n.cfg.OnConfChange(cc)
		}
	}
	if fx.truncate != nil {
		if err := n.writeTruncation(fx.truncate); err != nil {
			n.fail(fmt.Errorf("raftactor: write log truncation: %w", err))
		}
	}
	for _, r := range fx.replies {
		if r.result != nil {
			actors.Reply(r.result, r.res)
		} else {
			r.read.answer(r.err)
		}
	}
	if fx.fatal != nil {
		n.fail(fx.fatal)
	}
	if fx.again {
		n.queueReady(ctx)
	}
}

// stopTimers stops the actor's tickers.
func (n *Node) stopTimers() {
	for _, stop := range []*func(){&n.stopTck, &n.stopTickAdvance} {
		if *stop != nil {
			(*stop)()
			*stop = nil
		}
	}
}

// fail stops the member: nothing more is acknowledged, and OnFatal (the
// node shuts down) is told why.
func (n *Node) fail(err error) {
	if n.failed != nil {
		return
	}
	n.failed = err
	n.cfg.Logger.Error("raft cannot go on; stopping the member", zap.Error(err))
	n.stopTimers()
	// No read index will come: the reads waiting here fail now, as the
	// ones that arrive later do (refuse).
	for _, w := range n.clients.takeAllReads() {
		w.answer(rpctypes.ErrGRPCStopped)
	}
	if n.cfg.OnFatal != nil {
		n.cfg.OnFatal(err)
	}
}

// refuse answers what a failed member is asked.
func (n *Node) refuse(msg any) {
	switch m := msg.(type) {
	case *Propose:
		actors.Reply(m.Reply, actors.Result{Err: rpctypes.ErrGRPCStopped})
	case *ProposeConfChange:
		actors.Reply(m.Reply, actors.Result{Err: rpctypes.ErrGRPCStopped})
	case *ReadIndex:
		actors.Reply(m.Reply, rpctypes.ErrGRPCStopped)
	case *ReadsWaiting:
		// The batch stays published: every later read fails at once.
		m.Batch.Finish(rpctypes.ErrGRPCStopped)
	case *Status:
		actors.Reply(m.Reply, StatusInfo{ID: n.cfg.ID})
	case *HandOffLeadership:
		actors.Reply(m.Reply, HandOff{Err: n.failed})
	}
}

// reportPending brings this node's share of etcd_server_proposals_pending
// to the proposals it holds (none once it stops): one gauge update per
// message that changed the count, not one per proposal.
func (n *Node) reportPending(stopping bool) {
	cl := n.clients
	cur := 0
	if !stopping {
		cur = len(cl.waiters) + len(cl.proposals)
	}
	if d := cur - cl.pendingReported; d != 0 {
		proposalsPending.Add(float64(d))
		cl.pendingReported = cur
	}
}

// queueReady schedules one Ready pass behind whatever is already in the
// mailbox: every proposal queued now joins the same persisted batch.
func (n *Node) queueReady(ctx actor.Context) {
	if !n.readyQueued {
		n.readyQueued = true
		ctx.Send(ctx.Self(), processReady{})
	}
}

func (n *Node) start(ctx actor.Context) {
	// A restarted actor goes on from what the WAL has: not from records
	// its predecessor queued and did not commit, and not from records it
	// wrote and did not sync (a Ready cut short after a segment change)
	// unless they are synced first: raft takes what it loads as durable.
	n.cfg.WAL.Discard()
	if err := n.cfg.WAL.Commit(true); err != nil {
		n.fail(fmt.Errorf("raftactor: sync the raft log at start: %w", err))
		return
	}
	sv := n.cfg.StoreView()
	ms, savedFirst, exists, err := loadLog(n.cfg.DB, n.cfg.WAL, sv.Applied, sv.AppliedTerm, n.cfg.Logger)
	if err != nil {
		panic(err)
	}
	n.logFirst = savedFirst
	n.core, err = newCore(coreConfig{
		ID: n.cfg.ID, ElectionTicks: n.cfg.ElectionTicks, TickInterval: n.cfg.TickInterval,
		SnapshotCount: n.cfg.SnapshotCount, CatchUp: n.cfg.CatchUp, LogBytes: n.cfg.LogBytes,
		OlderEntries: n.readOlderEntries, DurableFirst: savedFirst, Logger: n.cfg.Logger, Peers: n.cfg.Peers,
		DisablePreVote: n.cfg.DisablePreVote,
	}, ms, exists, n.clients, n.cfg.StoreView().Applied)
	if err != nil {
		panic(err)
	}
	// A restarted instance knows no leader yet: the View must not go on
	// naming the old instance's (the lessor and compactor act on it).
	_, term, committed, learner := n.core.view()
	n.view.Store(&View{ID: n.cfg.ID, ClusterID: n.cfg.ClusterID, Term: term, Committed: committed, IsLearner: learner})
	self := ctx.Self()
	root := ctx.ActorSystem().Root
	n.stopTck = n.cfg.Clock.Every(n.cfg.TickInterval, func() { root.Send(self, tick{}) })
	n.startTickAdvance(ctx)
	n.queueReady(ctx)
}

// handleReady persists and sends every Ready raft has, handing what each
// commits to the store, until raft has none (or holds one for a conf
// change verdict).
func (n *Node) handleReady(ctx actor.Context) {
	c := n.core
	for n.failed == nil {
		rd, ok := c.ready()
		if !ok {
			break
		}
		leading := c.leading(rd)
		if leading {
			n.checkHeartbeats(rd.Messages)
			n.cfg.Transport.Send(rd.Messages)
		}
		if err := n.persist(ctx, rd); err != nil {
			n.fail(err)
			return
		}
		if !leading {
			n.cfg.Transport.Send(rd.Messages)
		}
		if rd.SoftState != nil && rd.SoftState.Lead != c.lead {
			clear(n.heartbeats)
		}
		if err := c.advance(rd); err != nil {
			n.fail(err)
			return
		}
		n.execute(ctx)
	}
	c.afterReady(n.cfg.StoreView().Applied)
	n.publish()
}

// checkHeartbeats does what etcd's leader does with the heartbeats it
// sends: one sent to a follower more than two heartbeat intervals after
// the previous one means this actor was late (raft sends one every tick),
// most likely held up by a slow synced write; it is logged and counted.
func (n *Node) checkHeartbeats(msgs []*raftpb.Message) {
	var now time.Time
	for _, m := range msgs {
		if m.GetType() != raftpb.MsgHeartbeat {
			continue
		}
		if now.IsZero() {
			now = n.cfg.Clock.Now()
			if n.heartbeats == nil {
				n.heartbeats = map[uint64]time.Time{}
			}
		}
		to := m.GetTo()
		if last, ok := n.heartbeats[to]; ok {
			if expected := 2 * n.cfg.TickInterval; now.Sub(last) > expected {
				n.cfg.Logger.Warn("leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk",
					zap.String("to", fmt.Sprintf("%x", to)),
					zap.Duration("heartbeat-interval", n.cfg.TickInterval),
					zap.Duration("expected-duration", expected),
					zap.Duration("exceeded-duration", now.Sub(last)-expected))
				heartbeatSendFailures.Inc()
			}
		}
		n.heartbeats[to] = now
	}
}

func (n *Node) publish() {
	lead, term, committed, learner := n.core.view()
	v := n.view.Load()
	if v.Lead == lead && v.Term == term && v.Committed == committed && v.IsLearner == learner {
		return
	}
	n.view.Store(&View{ID: n.cfg.ID, ClusterID: n.cfg.ClusterID, Lead: lead, Term: term, Committed: committed, IsLearner: learner})
}

// persist makes a Ready durable, after the store has installed its
// snapshot: the snapshot's point in pebble (synced) first, then in the
// WAL the truncation of every entry after it (the log starts anew there),
// the entries and the hard state, in one write, synced when raft says so.
// The hard state a snapshot brings is in the WAL only: loadLog raises a
// hard state left behind a snapshot point to it.
func (n *Node) persist(ctx actor.Context, rd raft.Ready) error {
	snap := !raft.IsEmptySnap(rd.Snapshot)
	if snap {
		if err := n.installInStore(ctx, rd.Snapshot); err != nil {
			return err
		}
	}
	if !snap && len(rd.Entries) == 0 && raft.IsEmptyHardState(rd.HardState) {
		return nil
	}
	w := n.cfg.WAL
	start := n.cfg.Clock.Now()
	logFirst := n.logFirst
	if snap {
		meta := rd.Snapshot.GetMetadata()
		if err := n.writeSnapshotPoint(meta); err != nil {
			return fmt.Errorf("raftactor: failed to save the snapshot point: %w", err)
		}
		if err := w.AppendTruncate(meta.GetIndex()); err != nil {
			return err
		}
		logFirst = max(logFirst, meta.GetIndex()+1)
	}
	if err := w.AppendEntries(rd.Entries); err != nil {
		return err
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := w.AppendHardState(rd.HardState); err != nil {
			return err
		}
	}
	sync := rd.MustSync || snap
	before := w.Written()
	if err := w.Commit(sync); err != nil {
		return fmt.Errorf("raftactor: failed to save raft hard state and entries: %w", err)
	}
	n.logFirst = logFirst
	n.core.durableFrom(logFirst)
	d := n.cfg.Clock.Now().Sub(start)
	walWriteBytes.Add(float64(w.Written() - before))
	switch {
	case sync:
		walFsyncSec.Observe(d.Seconds())
		groupCommitEntries.Observe(float64(len(rd.Entries)))
		if d > warnSyncDuration {
			n.cfg.Logger.Warn("slow fdatasync", zap.Duration("took", d), zap.Duration("expected-duration", warnSyncDuration))
		}
	default:
		walWriteSec.Observe(d.Seconds())
	}
	if d > slowPersist {
		n.cfg.Logger.Warn("slow raft log write", zap.Duration("took", d), zap.Int("entries", len(rd.Entries)), zap.Bool("sync", sync))
	}
	if snap {
		return n.core.snapshotInstalled(rd.Snapshot, n.cfg.StoreView().Applied)
	}
	return nil
}

// writeSnapshotPoint records in pebble, synced, the log's new starting
// point: a truncation's, or a snapshot's from the leader.
func (n *Node) writeSnapshotPoint(meta *raftpb.SnapshotMetadata) error {
	start := n.cfg.Clock.Now()
	data, err := proto.Marshal(meta)
	if err != nil {
		return err
	}
	synced := n.cfg.Clock.Now()
	snapMarshallingSec.Observe(synced.Sub(start).Seconds())
	b := n.cfg.DB.NewBatch()
	defer b.Close()
	if err := b.Set(keySnapshot, data, nil); err != nil {
		return err
	}
	if err := storeactor.Commit(b, pebble.Sync); err != nil {
		return err
	}
	snapFsyncSec.Observe(n.cfg.Clock.Now().Sub(synced).Seconds())
	return nil
}

// installInStore has the store install the checkpoint that came with a
// snapshot from the leader, and waits for it: nothing after the snapshot
// may be handed to the store first. A crash before persist records the
// snapshot leaves a store ahead of its log, which the store's skipping of
// applied entries tolerates (and the leader sends the snapshot again).
func (n *Node) installInStore(ctx actor.Context, snap *raftpb.Snapshot) error {
	meta := snap.GetMetadata()
	index, term := meta.GetIndex(), meta.GetTerm()
	dir := ReceivedSnapshotDir(n.cfg.SnapshotFS, n.cfg.SnapshotRoot, index, term)
	n.cfg.Logger.Info("applying snapshot from leader", zap.Uint64("index", index), zap.Uint64("term", term))
	applySnapshotInProgress.Inc()
	defer applySnapshotInProgress.Dec()
	reply := make(chan error, 1)
	ctx.Send(n.cfg.Store, &storeactor.InstallSnapshot{FS: n.cfg.SnapshotFS, Dir: dir, Reply: reply})
	select {
	case err := <-reply:
		if err != nil {
			return fmt.Errorf("raftactor: install snapshot %d: %w", index, err)
		}
	case <-time.After(installTimeout):
		return fmt.Errorf("raftactor: the store did not install snapshot %d within %v", index, installTimeout)
	}
	return nil
}

// installTimeout bounds the wait for the store to install a snapshot.
const installTimeout = 10 * time.Minute

// ReceivedSnapshotDir is where the checkpoint for the snapshot at index,
// term is unpacked when it arrives.
func ReceivedSnapshotDir(fs vfs.FS, root string, index, term uint64) string {
	return fs.PathJoin(root, fmt.Sprintf("recv-%016x-%016x", term, index))
}

// writeTruncation makes a log truncation the core decided durable: the
// new snapshot point in a synced pebble batch (which makes the store's
// applies up to it durable too), then the WAL lets go of the segments
// holding only entries up to compactTo.
func (n *Node) writeTruncation(t *truncation) error {
	start := n.cfg.Clock.Now()
	if err := n.writeSnapshotPoint(t.meta); err != nil {
		return err
	}
	end := n.cfg.Clock.Now()
	snapSaveSec.Observe(end.Sub(start).Seconds())
	if err := n.cfg.WAL.Release(t.compactTo); err != nil {
		return err
	}
	n.logFirst = max(n.logFirst, t.compactTo+1)
	n.core.durableFrom(n.logFirst)
	return nil
}

// readOlderEntries reads log entries older than the core's memory tier
// from the WAL, for raft (logStorage). A failure is counted and logged
// (at most every 10 s): raft then sends the follower a snapshot.
func (n *Node) readOlderEntries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	logReads.Inc()
	ents, err := n.cfg.WAL.ReadEntries(lo, hi, maxSize)
	if err != nil {
		logReadFailures.Inc()
		if ok, held := n.logReadLog.Allow(); ok {
			n.cfg.Logger.Warn("failed to read old raft log entries; a follower that needs them gets a snapshot",
				zap.Uint64("from", lo), zap.Error(err), zap.Int64("unlogged-since-last", held))
		}
	}
	return ents, err
}

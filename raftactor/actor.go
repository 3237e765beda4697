package raftactor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
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
	"github.com/metastore/metastore/storeactor"
)

// Config is what a raft actor needs.
type Config struct {
	DB        *pebble.DB
	ID        uint64 // this member's id
	ClusterID uint64 // published in View for response headers
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
	SnapshotCount uint64        // applied entries between raft log truncations
	CatchUp       uint64        // entries kept behind a truncation for slow followers
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
	// a deposed leader's lessor must stop renewing at once.
	OnLeaderChange func(lead, term uint64)
	// OnFatal is called when the member cannot go on: the store failed to
	// apply the same entry maxReplays times in a row. Nil: only logged.
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

// Node is the raft actor.
//
// Invariants:
//   - every Ready's entries and hard state are in pebble (synced when
//     MustSync) before its messages are sent or its committed entries are
//     handed to the store;
//   - waiters are kept until the store reports the entry applied, so a
//     replay after a store restart still answers the clients;
//   - the raft log in pebble is truncated only up to an index the store
//     has applied, by a synced batch that also makes those applies durable.
type Node struct {
	cfg  Config
	view *ViewRef

	rn      *raft.RawNode
	ms      *raft.MemoryStorage
	lead    uint64
	stopTck func()

	readyQueued bool
	lastSaved   uint64 // last log index written to pebble

	*clients
	pending       []pendingEntry // entries handed to the store with a waiter, in index order
	readBatch     uint64
	readWaitTicks int // ticks the read index in flight has been waited for

	handedOff    uint64 // last index handed to the store
	stalledTicks int    // ticks since the store last made progress while behind
	replayFrom   uint64 // index the last replay started at
	replays      int    // replays in a row from replayFrom

	storeApplied uint64 // last Applied the store reported
	snapIndex    uint64 // last truncation point
	logFirst     uint64 // no entry below this index is in pebble (see deleteEntries)
	confState    *raftpb.ConfState
	confApplied  uint64 // index of the last conf change applied to raft

	heartbeats map[uint64]time.Time // when this leader last sent each follower a heartbeat

	entryBuf, keyBuf []byte // persist's scratch: pebble copies what is Set
}

// clients are the requests waiting on this node. They outlive restarts of
// the actor (created once, with the props): after a panic the new instance
// answers them instead of leaving them to time out. Proposals still in the
// log are answered when the store applies them; proposals the old instance
// had not saved are gone, and get "leader changed" (retryable); waiting
// reads are asked again of the new raft node.
type clients struct {
	proposals  []*Propose        // received, not yet stepped into raft (see propose)
	waiters    map[uint64]waiter // proposal id -> client
	reads      []chan<- error
	readsByCtx map[uint64][]chan<- error // waiting for raft to confirm a read index
	readWaits  []readWait                // confirmed, waiting for the store to apply

	pendingReported int // this node's share of the proposals_pending gauge
}

type waiter struct {
	req   *Propose
	index uint64 // 0 until committed
}

type pendingEntry struct{ index, id uint64 }

type readWait struct {
	index   uint64
	waiters []chan<- error
}

// resendTicks is how many ticks the store may go without reporting
// progress while entries handed to it are unapplied before they are sent
// again. It covers an Apply lost with a restarting store actor when no
// later Apply arrives to reveal the gap; the store skips what it already has.
const resendTicks = 10

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
	ref := new(ViewRef)
	ref.Store(&View{ID: cfg.ID, ClusterID: cfg.ClusterID})
	cl := &clients{waiters: map[uint64]waiter{}, readsByCtx: map[uint64][]chan<- error{}}
	return actor.PropsFromProducer(func() actor.Actor { return &Node{cfg: cfg, view: ref, clients: cl} }), ref
}

func (n *Node) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		n.start(ctx)
	case *actor.Stopping, *actor.Restarting:
		if n.stopTck != nil {
			n.stopTck()
			n.stopTck = nil
		}
	case *Propose:
		n.propose(m)
		n.queueReady(ctx)
	case *ProposeConfChange:
		n.stepProposals()
		n.proposeConfChange(m)
		n.queueReady(ctx)
	case *ReadIndex:
		n.reads = append(n.reads, m.Reply)
		n.queueReady(ctx)
	case tick:
		if len(n.readsByCtx) > 0 {
			n.readWaitTicks++
		}
		n.rn.Tick()
		n.checkStoreProgress(ctx)
		n.queueReady(ctx)
	case *Step:
		if err := n.rn.Step(m.Msg); err != nil {
			n.cfg.Logger.Debug("raft step", zap.Error(err))
		}
		n.queueReady(ctx)
	case *TransferLeader:
		n.stepProposals()
		n.cfg.Logger.Info("leadership transfer starting", zap.String("transferee-member-id", fmt.Sprintf("%x", m.Target)))
		n.rn.TransferLeader(m.Target)
		n.queueReady(ctx)
	case *ReportUnreachable:
		n.rn.ReportUnreachable(m.ID)
	case *ReportSnapshot:
		st := raft.SnapshotFinish
		if m.Failure {
			st = raft.SnapshotFailure
		}
		n.rn.ReportSnapshot(m.ID, st)
		n.queueReady(ctx)
	case processReady:
		n.readyQueued = false
		n.stepProposals()
		n.handleReady(ctx)
	case *storeactor.Applied:
		if len(m.Conf) > 0 {
			n.applyConf(m.Conf)
			n.queueReady(ctx) // a lone voter may campaign now
		}
		n.applied(m.Index)
	case *storeactor.Replay:
		n.replay(ctx, m.From)
	case *Status:
		st := n.rn.Status()
		info := StatusInfo{
			ID: n.cfg.ID, Lead: st.Lead, Term: st.GetTerm(), Committed: st.GetCommit(),
			Applied: n.cfg.StoreView().Applied, IsLearner: st.RaftState == raft.StateFollower && n.isLearner(),
		}
		if len(st.Progress) > 0 {
			info.Match = make(map[uint64]uint64, len(st.Progress))
			for id, pr := range st.Progress {
				info.Match[id] = pr.Match
			}
		}
		actors.Reply(m.Reply, info)
	}
	n.reportPending(isStopping(ctx.Message()))
}

// reportPending brings this node's share of etcd_server_proposals_pending
// to the proposals it holds (none once it stops): one gauge update per
// message that changed the count, not one per proposal.
func (n *Node) reportPending(stopping bool) {
	cur := 0
	if !stopping {
		cur = len(n.waiters) + len(n.proposals)
	}
	if d := cur - n.pendingReported; d != 0 {
		proposalsPending.Add(float64(d))
		n.pendingReported = cur
	}
}

func (n *Node) isLearner() bool {
	for _, id := range n.confState.Learners {
		if id == n.cfg.ID {
			return true
		}
	}
	return false
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
	ms, savedFirst, exists, err := loadLog(n.cfg.DB)
	if err != nil {
		panic(err)
	}
	n.ms = ms
	n.recoverClients()
	n.lastSaved, _ = ms.LastIndex()
	n.logFirst = savedFirst
	snap, _ := ms.Snapshot()
	n.snapIndex = snap.GetMetadata().GetIndex()
	n.confState = snap.GetMetadata().GetConfState()
	if n.confState == nil {
		n.confState = &raftpb.ConfState{}
	}
	n.storeApplied = n.cfg.StoreView().Applied
	rc := &raft.Config{
		ID:            n.cfg.ID,
		ElectionTick:  n.cfg.ElectionTicks,
		HeartbeatTick: 1,
		Storage:       ms,
		// Raft hands back every committed entry after the last truncation:
		// conf changes among them rebuild the membership, and the store
		// skips what it has already applied.
		Applied:                   n.snapIndex,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  64 << 20,
		MaxUncommittedEntriesSize: 1 << 30,
		MaxInflightMsgs:           512,
		CheckQuorum:               true,
		PreVote:                   true,
		Logger:                    raftLogger{n.cfg.Logger.Sugar()},
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		panic(fmt.Errorf("raftactor: %w", err))
	}
	n.rn = rn
	// A restarted instance knows no leader yet: the View must not go on
	// naming the old instance's (the lessor and compactor act on it).
	st := rn.BasicStatus()
	n.view.Store(&View{ID: n.cfg.ID, ClusterID: n.cfg.ClusterID, Term: st.GetTerm(), Committed: st.GetCommit(), IsLearner: n.isLearner()})
	if !exists && len(n.cfg.Peers) > 0 {
		// A member joining an existing cluster (no Peers) starts empty:
		// the leader sends it the log, or a snapshot, from the start.
		if err := rn.Bootstrap(n.cfg.Peers); err != nil {
			panic(fmt.Errorf("raftactor: bootstrap: %w", err))
		}
	}
	self := ctx.Self()
	root := ctx.ActorSystem().Root
	n.stopTck = n.cfg.Clock.Every(n.cfg.TickInterval, func() { root.Send(self, tick{}) })
	n.queueReady(ctx)
}

// recoverClients takes over the clients of a previous instance (none on the
// first start); see clients.
func (n *Node) recoverClients() {
	for _, ws := range n.readsByCtx {
		n.reads = append(n.reads, ws...)
	}
	for _, rw := range n.readWaits {
		n.reads = append(n.reads, rw.waiters...)
	}
	n.readsByCtx, n.readWaits = map[uint64][]chan<- error{}, nil
	for _, m := range n.proposals {
		actors.Reply(m.Reply, actors.Result{Err: rpctypes.ErrGRPCLeaderChanged})
	}
	n.proposals = nil
	if len(n.waiters) == 0 {
		return
	}
	inLog := map[uint64]bool{}
	first, _ := n.ms.FirstIndex()
	last, _ := n.ms.LastIndex()
	if last >= first {
		ents, err := n.ms.Entries(first, last+1, math.MaxUint64)
		if err != nil {
			panic(fmt.Errorf("raftactor: read log: %w", err))
		}
		for _, e := range ents {
			if e.GetType() == raftpb.EntryNormal {
				if id, err := proposalID(e.GetData()); err == nil {
					inLog[id] = true
				}
			}
		}
	}
	for id, w := range n.waiters {
		if !inLog[id] {
			actors.Reply(w.req.Reply, actors.Result{Err: rpctypes.ErrGRPCLeaderChanged})
			delete(n.waiters, id)
			continue
		}
		w.index = 0 // pending again once handed to the store
		n.waiters[id] = w
	}
}

// propose queues a proposal for the next Ready pass: stepProposals hands
// everything that arrived meanwhile to raft as one MsgProp. One step per
// batch instead of one per request saves raft's per-message work (a
// message, a self-acknowledgement, its bookkeeping) on the put path.
func (n *Node) propose(m *Propose) {
	if n.lead == 0 {
		actors.Reply(m.Reply, actors.Result{Err: rpctypes.ErrGRPCNoLeader})
		return
	}
	n.proposals = append(n.proposals, m)
}

// stepProposals steps the queued proposals into raft, in arrival order.
func (n *Node) stepProposals() {
	if len(n.proposals) == 0 {
		return
	}
	ents := make([]raftpb.Entry, len(n.proposals))
	refs := make([]*raftpb.Entry, len(n.proposals))
	for i, m := range n.proposals {
		ents[i].Data = m.Data
		refs[i] = &ents[i]
	}
	err := n.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(n.cfg.ID), Entries: refs})
	if errors.Is(err, raft.ErrProposalDropped) {
		err = rpctypes.ErrGRPCNoLeader
	}
	for i, m := range n.proposals {
		if err != nil {
			actors.Reply(m.Reply, actors.Result{Err: err})
		} else {
			n.waiters[m.ID] = waiter{req: m}
		}
		n.proposals[i] = nil
	}
	n.proposals = n.proposals[:0]
}

// proposeConfChange proposes a membership change; the store answers its
// client once it is applied. Raft accepts one pending change at a time:
// a second one is dropped (as etcd, the client's wait then times out).
func (n *Node) proposeConfChange(m *ProposeConfChange) {
	if n.lead == 0 {
		actors.Reply(m.Reply, actors.Result{Err: rpctypes.ErrGRPCNoLeader})
		return
	}
	if err := n.rn.ProposeConfChange(m.CC); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			err = rpctypes.ErrGRPCNoLeader
		}
		actors.Reply(m.Reply, actors.Result{Err: err})
		return
	}
	n.waiters[m.CC.GetId()] = waiter{req: &Propose{ID: m.CC.GetId(), Reply: m.Reply}}
}

// issueReadIndex asks raft for one read index for every read waiting. As
// etcd's read loop, one request is in flight at a time: reads that come
// meanwhile wait for the next, so a burst costs one quorum round (one
// heartbeat round, or one forward to the leader and back), not one per
// Ready. A request unanswered for an election timeout (dropped with a
// lost message) no longer holds the next one back.
func (n *Node) issueReadIndex() {
	switch {
	case len(n.reads) == 0:
	case n.lead == 0:
		for _, r := range n.reads {
			actors.Reply(r, rpctypes.ErrGRPCNoLeader)
		}
		n.reads = nil
		readIndexesFailed.Inc()
	case len(n.readsByCtx) == 0 || n.readWaitTicks >= n.cfg.ElectionTicks:
		if len(n.readsByCtx) > 0 {
			n.cfg.Logger.Warn("waiting for ReadIndex response took too long, retrying",
				zap.Uint64("sent-request-id", n.readBatch),
				zap.Duration("retry-timeout", time.Duration(n.cfg.ElectionTicks)*n.cfg.TickInterval))
			slowReadIndexes.Inc()
		}
		n.readBatch++
		n.readsByCtx[n.readBatch] = n.reads
		n.reads = nil
		n.readWaitTicks = 0
		n.rn.ReadIndex(be64(n.readBatch))
	}
}

func (n *Node) handleReady(ctx actor.Context) {
	n.issueReadIndex()
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		// A leader sends its appends before its own write (raft thesis
		// 10.2.1; etcd does the same): the followers' fsyncs overlap its
		// own, and an entry counts as committed only once a quorum —
		// this member included, after persist — has it durably. Its hard
		// state carries no vote to protect (that was persisted when it
		// campaigned). Everyone else sends only after persisting.
		leading := n.lead == n.cfg.ID && (rd.SoftState == nil || rd.SoftState.RaftState == raft.StateLeader)
		if leading {
			n.checkHeartbeats(rd.Messages)
			n.cfg.Transport.Send(rd.Messages)
		}
		n.persist(ctx, rd)
		if !leading {
			n.cfg.Transport.Send(rd.Messages)
		}
		if len(rd.CommittedEntries) > 0 {
			n.handOff(ctx, rd.CommittedEntries)
		}
		for _, rs := range rd.ReadStates {
			id := binary.BigEndian.Uint64(rs.RequestCtx)
			if w, ok := n.readsByCtx[id]; ok {
				delete(n.readsByCtx, id)
				n.readWaits = append(n.readWaits, readWait{index: rs.Index, waiters: w})
			}
		}
		if len(rd.ReadStates) > 0 {
			n.readWaitTicks = 0
			n.issueReadIndex() // the reads that queued behind it
		}
		if rd.SoftState != nil {
			n.setLead(rd.SoftState.Lead)
		}
		n.rn.Advance(rd)
	}
	n.releaseReads()
	n.campaignIfAlone(ctx)
	n.publish()
}

// campaignIfAlone starts an election at once when this member is the only
// voter: there is nobody to wait for, so a single-member cluster serves
// right after start instead of after a randomized election timeout.
func (n *Node) campaignIfAlone(ctx actor.Context) {
	v := n.confState.GetVoters()
	if n.lead != 0 || len(v) != 1 || v[0] != n.cfg.ID || n.rn.BasicStatus().RaftState != raft.StateFollower {
		return
	}
	if err := n.rn.Campaign(); err != nil {
		n.cfg.Logger.Warn("campaign", zap.Error(err))
		return
	}
	n.queueReady(ctx)
}

func (n *Node) setLead(lead uint64) {
	if lead == n.lead {
		return
	}
	// raft's own Node logs these lines (operators grep for them); a
	// RawNode does not, so the actor does, in the same words.
	term := n.rn.BasicStatus().GetTerm()
	switch {
	case n.lead == 0:
		n.cfg.Logger.Info(fmt.Sprintf("raft.node: %x elected leader %x at term %d", n.cfg.ID, lead, term))
	case lead == 0:
		n.cfg.Logger.Info(fmt.Sprintf("raft.node: %x lost leader %x at term %d", n.cfg.ID, n.lead, term))
	default:
		n.cfg.Logger.Info(fmt.Sprintf("raft.node: %x changed leader from %x to %x at term %d", n.cfg.ID, n.lead, lead, term))
	}
	if lead != 0 {
		leaderChanges.Inc()
	}
	n.lead = lead
	if n.cfg.OnLeaderChange != nil {
		n.cfg.OnLeaderChange(lead, term)
	}
	clear(n.heartbeats)
	if lead == 0 {
		// Reads waiting for a read index will not get one from this term.
		if len(n.readsByCtx) > 0 {
			readIndexesFailed.Inc()
		}
		for id, ws := range n.readsByCtx {
			for _, w := range ws {
				actors.Reply(w, rpctypes.ErrGRPCLeaderChanged)
			}
			delete(n.readsByCtx, id)
		}
	}
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
	st := n.rn.BasicStatus()
	v := n.view.Load()
	learner := n.isLearner()
	if v.Lead == st.Lead && v.Term == st.GetTerm() && v.Committed == st.GetCommit() && v.IsLearner == learner {
		return
	}
	n.view.Store(&View{ID: n.cfg.ID, ClusterID: n.cfg.ClusterID, Lead: st.Lead, Term: st.GetTerm(), Committed: st.GetCommit(), IsLearner: learner})
}

// persist writes a Ready's entries and hard state in one pebble batch.
func (n *Node) persist(ctx actor.Context, rd raft.Ready) {
	if !raft.IsEmptySnap(rd.Snapshot) {
		n.installSnapshot(ctx, rd.Snapshot)
	}
	if len(rd.Entries) == 0 && raft.IsEmptyHardState(rd.HardState) {
		return
	}
	b := n.cfg.DB.NewBatch()
	defer b.Close()
	for _, e := range rd.Entries {
		var err error
		n.entryBuf, err = proto.MarshalOptions{}.MarshalAppend(n.entryBuf[:0], e)
		must(err)
		n.keyBuf = appendEntryKey(n.keyBuf[:0], e.GetIndex())
		must(b.Set(n.keyBuf, n.entryBuf, nil))
	}
	if k := len(rd.Entries); k > 0 {
		last := rd.Entries[k-1].GetIndex()
		if n.lastSaved > last {
			// A new leader overwrote our uncommitted tail.
			n.deleteEntries(b, last+1, n.lastSaved)
		}
		n.lastSaved = last
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		data, err := proto.Marshal(rd.HardState)
		must(err)
		must(b.Set(keyHardState, data, nil))
	}
	opts := pebble.NoSync
	if rd.MustSync {
		opts = pebble.Sync
	}
	start := n.cfg.Clock.Now()
	must(b.Commit(opts))
	d := n.cfg.Clock.Now().Sub(start)
	walWriteBytes.Add(float64(b.Len()))
	if rd.MustSync {
		walFsyncSec.Observe(d.Seconds())
		groupCommitEntries.Observe(float64(len(rd.Entries)))
		if d > warnSyncDuration {
			n.cfg.Logger.Warn("slow fdatasync", zap.Duration("took", d), zap.Duration("expected-duration", warnSyncDuration))
		}
	} else {
		walWriteSec.Observe(d.Seconds())
	}
	if d > slowPersist {
		n.cfg.Logger.Warn("slow raft log write", zap.Duration("took", d), zap.Int("entries", len(rd.Entries)), zap.Bool("sync", rd.MustSync))
	}
	must(n.ms.Append(rd.Entries))
	if !raft.IsEmptyHardState(rd.HardState) {
		must(n.ms.SetHardState(rd.HardState))
	}
}

// installSnapshot makes this member's state the leader's snapshot: the
// store installs the checkpoint that came with it (and is waited for:
// nothing after the snapshot may be handed to it first), then the raft log
// is replaced by the snapshot's point in one synced batch. A crash between
// the two leaves a store ahead of its log, which the store's skipping of
// applied entries tolerates.
func (n *Node) installSnapshot(ctx actor.Context, snap *raftpb.Snapshot) {
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
			panic(fmt.Errorf("raftactor: install snapshot %d: %w", index, err))
		}
	case <-time.After(installTimeout):
		panic(fmt.Errorf("raftactor: the store did not install snapshot %d within %v", index, installTimeout))
	}
	data, err := proto.Marshal(meta)
	must(err)
	b := n.cfg.DB.NewBatch()
	defer b.Close()
	must(b.Set(keySnapshot, data, nil))
	to := max(n.lastSaved, index)
	n.deleteEntries(b, n.logFirst, to)
	start := n.cfg.Clock.Now()
	must(b.Commit(pebble.Sync))
	snapFsyncSec.Observe(n.cfg.Clock.Now().Sub(start).Seconds())
	n.logFirst = to + 1
	if err := n.ms.ApplySnapshot(snap); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		panic(err)
	}
	_ = n.cfg.SnapshotFS.RemoveAll(dir)
	n.lastSaved, n.snapIndex, n.confApplied = index, index, index
	n.confState = meta.GetConfState()
	n.handedOff = max(n.handedOff, index)
	n.storeApplied = max(n.storeApplied, n.cfg.StoreView().Applied)
}

// installTimeout bounds the wait for the store to install a snapshot.
const installTimeout = 10 * time.Minute

// ReceivedSnapshotDir is where the checkpoint for the snapshot at index,
// term is unpacked when it arrives.
func ReceivedSnapshotDir(fs vfs.FS, root string, index, term uint64) string {
	return fs.PathJoin(root, fmt.Sprintf("recv-%016x-%016x", term, index))
}

// handOff turns committed entries into one Apply for the store. Conf
// changes go to the store too, which decides them; raft applies them when
// the store reports its verdict (applied).
func (n *Node) handOff(ctx actor.Context, ents []*raftpb.Entry) {
	out := make([]storeactor.Entry, 0, len(ents))
	for _, e := range ents {
		out = append(out, n.storeEntry(e))
	}
	n.handedOff = max(n.handedOff, out[len(out)-1].Index)
	ctx.Request(n.cfg.Store, &storeactor.Apply{Entries: out})
}

// storeEntry is the store's view of a committed entry, with the local
// client's waiter if this node proposed it.
func (n *Node) storeEntry(e *raftpb.Entry) storeactor.Entry {
	se := storeactor.Entry{Index: e.GetIndex(), Term: e.GetTerm()}
	switch e.GetType() {
	case raftpb.EntryType_EntryNormal:
		if len(e.Data) == 0 {
			break
		}
		id, err := proposalID(e.Data)
		if err != nil {
			panic(fmt.Errorf("raftactor: entry %d: %w", e.GetIndex(), err))
		}
		se.Data = e.Data[8:]
		if w, ok := n.waiting(id, e.GetIndex()); ok {
			se.Req, se.Reply = w.req.Req, w.req.Reply
		}
	case raftpb.EntryType_EntryConfChange:
		cc := new(raftpb.ConfChange)
		must(proto.Unmarshal(e.Data, cc))
		se.ConfChange = cc
		if w, ok := n.waiting(cc.GetId(), e.GetIndex()); ok && cc.GetId() != 0 {
			se.Reply = w.req.Reply
		}
	case raftpb.EntryType_EntryConfChangeV2:
		// MetaStore proposes only single-step changes (ConfChange, as
		// etcd); a joint change would need the store to decide it.
		panic(fmt.Errorf("raftactor: entry %d: ConfChangeV2 is not supported", e.GetIndex()))
	}
	return se
}

// waiting returns the local client waiting on proposal id, now known to be
// at index.
func (n *Node) waiting(id, index uint64) (waiter, bool) {
	w, ok := n.waiters[id]
	if ok && w.index == 0 {
		w.index = index
		n.waiters[id] = w
		n.pending = append(n.pending, pendingEntry{index: index, id: id})
	}
	return w, ok
}

// releaseReads answers the linearizable reads whose read index the store
// has applied (it publishes its View before it reports Applied).
func (n *Node) releaseReads() {
	if len(n.readWaits) == 0 {
		return
	}
	applied := n.cfg.StoreView().Applied
	kept := n.readWaits[:0]
	for _, r := range n.readWaits {
		if r.index <= applied {
			for _, w := range r.waiters {
				actors.Reply(w, nil)
			}
		} else {
			kept = append(kept, r)
		}
	}
	n.readWaits = kept
}

// checkStoreProgress resends entries the store has not applied for
// resendTicks ticks.
func (n *Node) checkStoreProgress(ctx actor.Context) {
	if n.handedOff <= n.storeApplied {
		n.stalledTicks = 0
		return
	}
	if n.stalledTicks++; n.stalledTicks >= resendTicks {
		n.stalledTicks = 0
		n.replay(ctx, n.storeApplied+1)
	}
}

// applyConf applies to raft the conf changes the store decided.
func (n *Node) applyConf(verdicts []storeactor.ConfApplied) {
	for _, v := range verdicts {
		if v.Index <= n.confApplied {
			continue // reported again after a replay
		}
		n.confApplied = v.Index
		if n.promotes(v.CC) {
			learnerPromoteSucceed.Inc()
		}
		n.confState = n.rn.ApplyConfChange(v.CC)
		if n.cfg.OnConfChange != nil && v.CC.GetNodeId() != 0 {
			n.cfg.OnConfChange(v.CC)
		}
	}
}

// promotes reports whether cc, applied on this leader, promotes a learner.
func (n *Node) promotes(cc *raftpb.ConfChange) bool {
	if n.lead != n.cfg.ID || cc.GetType() != raftpb.ConfChangeAddNode {
		return false
	}
	for _, id := range n.confState.GetLearners() {
		if id == cc.GetNodeId() {
			return true
		}
	}
	return false
}

// applied records the store's progress: waiters up to index are answered,
// and the raft log may be truncated.
func (n *Node) applied(index uint64) {
	if index <= n.storeApplied {
		return
	}
	n.storeApplied = index
	n.stalledTicks = 0
	n.releaseReads()
	k := 0
	for ; k < len(n.pending) && n.pending[k].index <= index; k++ {
		delete(n.waiters, n.pending[k].id)
	}
	n.pending = n.pending[k:]
	if index-n.snapIndex >= n.cfg.SnapshotCount {
		n.truncate(index)
	}
}

// truncate drops log entries the store no longer needs, keeping CatchUp
// entries for followers. The batch is synced: that also makes every store
// apply batch before it durable, which is what allows forgetting the log.
func (n *Node) truncate(applied uint64) {
	start := n.cfg.Clock.Now()
	snap, err := n.ms.CreateSnapshot(applied, n.confState, nil)
	if err != nil {
		if errors.Is(err, raft.ErrSnapOutOfDate) {
			return
		}
		panic(err)
	}
	marshal := n.cfg.Clock.Now()
	meta, err := proto.Marshal(snap.GetMetadata())
	must(err)
	snapMarshallingSec.Observe(n.cfg.Clock.Now().Sub(marshal).Seconds())
	compactTo := uint64(0)
	if applied > n.cfg.CatchUp {
		compactTo = applied - n.cfg.CatchUp
	}
	b := n.cfg.DB.NewBatch()
	defer b.Close()
	must(b.Set(keySnapshot, meta, nil))
	n.deleteEntries(b, n.logFirst, compactTo)
	sync := n.cfg.Clock.Now()
	must(b.Commit(pebble.Sync))
	end := n.cfg.Clock.Now()
	snapFsyncSec.Observe(end.Sub(sync).Seconds())
	snapSaveSec.Observe(end.Sub(start).Seconds())
	n.logFirst = max(n.logFirst, compactTo+1)
	if compactTo > 0 {
		if err := n.ms.Compact(compactTo); err != nil && !errors.Is(err, raft.ErrCompacted) {
			panic(err)
		}
	}
	n.snapIndex = applied
}

// deleteEntries deletes the log entries from..to (none when to < from)
// in b, one point deletion each.
//
// Not one range deletion: pebble checks every read against the range
// deletions of each level it passes, and a truncation's span ('r' sorts
// after every store key space) was the next range deletion after every
// key a store scan visited. Until compactions dropped them, the stacked
// truncation tombstones took ~30 % of the CPU of a range over 60k keys.
// Point deletions cost reads nothing outside the 'r' space. Hence also
// logFirst: deleting only what can exist keeps a truncation at the
// entries it drops, not every index since the log began.
func (n *Node) deleteEntries(b *pebble.Batch, from, to uint64) {
	for i := from; i <= to; i++ {
		n.keyBuf = appendEntryKey(n.keyBuf[:0], i)
		must(b.Delete(n.keyBuf, nil))
	}
}

// replay sends committed entries from `from` again, after the store lost a
// batch to a restart.
func (n *Node) replay(ctx actor.Context, from uint64) {
	committed := n.rn.BasicStatus().GetCommit()
	if from > committed {
		return
	}
	if from == n.replayFrom {
		n.replays++
	} else {
		n.replayFrom, n.replays = from, 1
	}
	if n.replays > maxReplays {
		err := fmt.Errorf("raftactor: the store failed %d times to apply entry %d; stopping", maxReplays, from)
		n.cfg.Logger.Error("poison entry", zap.Error(err))
		if n.cfg.OnFatal != nil {
			n.cfg.OnFatal(err)
		}
		return
	}
	ents, err := n.ms.Entries(from, committed+1, 1<<62)
	if err != nil {
		panic(fmt.Errorf("raftactor: replay from %d: %w", from, err))
	}
	out := make([]storeactor.Entry, 0, len(ents))
	for _, e := range ents {
		out = append(out, n.storeEntry(e))
	}
	n.cfg.Logger.Warn("replaying committed entries to the store", zap.Uint64("from", from), zap.Uint64("to", committed))
	ctx.Request(n.cfg.Store, &storeactor.Apply{Entries: out})
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

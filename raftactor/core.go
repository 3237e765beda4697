package raftactor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// core is the raft actor's decision-making, without I/O: a RawNode over
// an in-memory raft.MemoryStorage, the clients waiting on it, and the
// bookkeeping between raft and the store. Inputs are method calls; what
// must happen outside (answer a client, hand entries to the store, write
// a log truncation, stop the member) accumulates in fx for the driver
// (Node) to carry out. Raft's Ready is the exception: the driver takes it
// with ready, persists it and sends its messages, then calls advance.
// Time comes in as ticks. The scenario tests (testdata/*.txt) drive a core
// directly.
//
// Invariants:
//   - the driver has persisted a Ready (and installed its snapshot) before
//     advance puts its entries in ms and hands its committed entries on;
//   - raft is advanced past a committed conf change only once the store's
//     verdict on it is applied to raft (ApplyConfChange): until then the
//     Ready that carried it is held, so raft's one-change-at-a-time guard
//     sees it pending, as etcd holds its Ready loop;
//   - a waiter stays until the store reports its entry applied (a replay
//     after a store restart still answers the client), the caller gives up
//     (cancel), or its proposal can no longer be known to commit (it left
//     the log, or was not in it when the leader changed): the client is
//     then told the outcome is unknown;
//   - the log is truncated only up to what the store has applied, and
//     never while a conf change is held (the truncation records the
//     ConfState, which must include it).
type core struct {
	id            uint64
	electionTicks int
	tickInterval  time.Duration // for log lines only
	snapshotCount uint64
	catchUp       uint64
	logBytes      uint64 // bound on the bytes of entries held in memory (0: none)
	logger        *zap.Logger

	rn   *raft.RawNode
	ms   *raft.MemoryStorage // the log's memory tier
	log  *logStorage         // what raft reads: ms, and the older entries in pebble
	lead uint64

	*clients
	pending       []pendingEntry // entries handed to the store with a waiter, in index order
	readBatch     uint64
	readWaitTicks int // ticks the read index in flight has been waited for

	handedOff    uint64 // last index handed to the store
	stalledTicks int    // ticks since the store last made progress while behind
	replayFrom   uint64 // index the last replay started at
	replays      int    // replays in a row from replayFrom

	storeApplied  uint64 // last Applied the store reported
	snapIndex     uint64 // last truncation point
	appendedBytes uint64 // bytes of entries appended since the last truncation
	confState     *raftpb.ConfState
	confApplied   uint64 // index of the last conf change applied to raft

	held     *raft.Ready // a Ready with a conf change, not advanced until its verdict
	heldFrom uint64      // index of the first conf change in held
	heldConf uint64      // index of the last conf change in held
	// heldLast is the index of held's last committed entry: a report of
	// the store's applied index below it may answer an Apply sent before
	// held's (by an instance of this actor before a restart) and need not
	// carry held's verdicts.
	heldLast uint64

	// Conf changes this leader waits to hand raft (see confqueue.go).
	confQueue   []confProposal
	pendingConf uint64 // raft's pendingConfIndex, or above it
	confStepped bool   // a conf change is stepped but not yet appended

	fx effects
}

// effects is what the driver must do after a core call, in this order:
// hand Applies to the store, report the leader change and conf changes,
// write the truncation,
// answer clients, stop the member on fatal; again asks for one more Ready
// pass.
type effects struct {
	applies     []*storeactor.Apply
	confChanges []*raftpb.ConfChange // applied to raft, for the transport to follow
	// leaderChange is the last change of leader this member saw (the
	// lessor acts on it before the View shows it).
	leaderChange *leaderChange
	truncate     *truncation
	replies      []reply
	fatal        error
	again        bool
}

type leaderChange struct {
	lead, term  uint64
	campaigning bool // this member is a candidate in term: it may yet lead there
}

// reply is one client answer: to a proposal (result set) or to reads.
type reply struct {
	result chan<- actors.Result
	read   readWaiter
	res    actors.Result
	err    error
}

// truncation is a log truncation for the driver to make durable: the new
// raft snapshot point, and the entries up to compactTo to delete.
type truncation struct {
	meta      *raftpb.SnapshotMetadata
	compactTo uint64
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
	reads      []readWaiter
	readsByCtx map[uint64][]readWaiter // waiting for raft to confirm a read index
	readWaits  []readWait              // confirmed, waiting for the store to apply
	// readCell is where clients' reads find the batch to join (the
	// View's); renewed whenever reads leave reads (takeReads). nil in
	// tests that build a core alone.
	readCell *readCell

	// tickAdvanceStarted: the initial election tick advance was started
	// by an earlier instance of the actor (it happens once per process).
	tickAdvanceStarted bool

	pendingReported int // this node's share of the proposals_pending gauge
}

func newClients() *clients {
	return &clients{waiters: map[uint64]waiter{}, readsByCtx: map[uint64][]readWaiter{}}
}

// takeAllReads removes every read waiting on this member, at any stage:
// not yet asked, waiting for raft's read index, or for the store.
func (cl *clients) takeAllReads() []readWaiter {
	rs := cl.reads
	for _, ws := range cl.readsByCtx {
		rs = append(rs, ws...)
	}
	for _, rw := range cl.readWaits {
		rs = append(rs, rw.waiters...)
	}
	cl.reads, cl.readsByCtx, cl.readWaits = nil, map[uint64][]readWaiter{}, nil
	return rs
}

type waiter struct {
	req   *Propose
	index uint64 // 0 until committed
}

type pendingEntry struct{ index, id uint64 }

type readWait struct {
	index   uint64
	waiters []readWaiter
}

// coreConfig is what a core needs besides its storage.
type coreConfig struct {
	ID            uint64
	ElectionTicks int
	TickInterval  time.Duration
	SnapshotCount uint64
	CatchUp       uint64
	LogBytes      uint64
	// OlderEntries reads entries [lo, hi) from the durable log, as many
	// as fit in maxSize but at least one, or fails (logStorage.older);
	// nil: raft reads only ms.
	OlderEntries func(lo, hi, maxSize uint64) ([]*raftpb.Entry, error)
	// DurableFirst is the first index the durable log holds.
	DurableFirst   uint64
	Logger         *zap.Logger
	Peers          []raft.Peer // bootstrap a new cluster with these voters (when the log is empty)
	DisablePreVote bool
}

// newCore starts raft on ms (loaded from the durable log: exists says
// whether there was any raft state), taking over cl, and storeApplied,
// the store's applied index.
func newCore(cfg coreConfig, ms *raft.MemoryStorage, exists bool, cl *clients, storeApplied uint64) (*core, error) {
	c := &core{
		id: cfg.ID, electionTicks: cfg.ElectionTicks, tickInterval: cfg.TickInterval,
		snapshotCount: cfg.SnapshotCount, catchUp: cfg.CatchUp, logBytes: cfg.LogBytes, logger: cfg.Logger,
		ms: ms, clients: cl, storeApplied: storeApplied,
	}
	c.log = &logStorage{MemoryStorage: ms, older: cfg.OlderEntries, first: cfg.DurableFirst}
	if err := c.recoverClients(); err != nil {
		return nil, err
	}
	snap, _ := ms.Snapshot()
	c.snapIndex = snap.GetMetadata().GetIndex()
	c.confState = snap.GetMetadata().GetConfState()
	if c.confState == nil {
		c.confState = &raftpb.ConfState{}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:            cfg.ID,
		ElectionTick:  cfg.ElectionTicks,
		HeartbeatTick: 1,
		Storage:       c.log,
		// Raft hands back every committed entry after the last truncation:
		// conf changes among them rebuild the membership, and the store
		// skips what it has already applied.
		Applied:                   c.snapIndex,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  64 << 20,
		MaxUncommittedEntriesSize: 1 << 30,
		MaxInflightMsgs:           512,
		CheckQuorum:               true,
		PreVote:                   !cfg.DisablePreVote,
		Logger:                    raftLogger{cfg.Logger.Sugar()},
	})
	if err != nil {
		return nil, fmt.Errorf("raftactor: %w", err)
	}
	c.rn = rn
	if !exists && len(cfg.Peers) > 0 {
		// A member joining an existing cluster (no Peers) starts empty:
		// the leader sends it the log, or a snapshot, from the start.
		if err := rn.Bootstrap(cfg.Peers); err != nil {
			return nil, fmt.Errorf("raftactor: bootstrap: %w", err)
		}
	}
	return c, nil
}

// take returns the effects accumulated so far and clears them.
func (c *core) take() effects {
	fx := c.fx
	c.fx = effects{}
	return fx
}

func (c *core) answer(ch chan<- actors.Result, res actors.Result) {
	if ch != nil {
		c.fx.replies = append(c.fx.replies, reply{result: ch, res: res})
	}
}

func (c *core) answerRead(w readWaiter, err error) {
	c.fx.replies = append(c.fx.replies, reply{read: w, err: err})
}

// takeReads removes the reads waiting for a read index round, to ask raft
// for one or to fail them. It publishes a fresh batch first: a read that
// starts from now on must not join a batch whose read index is already
// being taken (readbatch.go).
func (c *core) takeReads() []readWaiter {
	c.readCell.renew()
	rs := c.reads
	c.reads = nil
	return rs
}

// recoverClients takes over the clients of a previous instance (none on the
// first start); see clients.
func (c *core) recoverClients() error {
	c.reads = c.takeAllReads() // asked again of the new raft node
	for _, m := range c.proposals {
		c.answer(m.Reply, actors.Result{Err: rpctypes.ErrGRPCLeaderChanged})
	}
	c.proposals = nil
	if len(c.waiters) == 0 {
		return nil
	}
	first, _ := c.ms.FirstIndex()
	inLog, err := c.idsInLog(first)
	if err != nil {
		return err
	}
	for id, w := range c.waiters {
		if !inLog[id] {
			c.answer(w.req.Reply, actors.Result{Err: rpctypes.ErrGRPCLeaderChanged})
			delete(c.waiters, id)
			continue
		}
		w.index = 0 // pending again once handed to the store
		c.waiters[id] = w
	}
	return nil
}

// idsInLog returns the proposal ids of the entries in ms from index from on.
func (c *core) idsInLog(from uint64) (map[uint64]bool, error) {
	first, _ := c.ms.FirstIndex()
	last, _ := c.ms.LastIndex()
	from = max(from, first)
	ids := map[uint64]bool{}
	if from > last {
		return ids, nil
	}
	ents, err := c.ms.Entries(from, last+1, math.MaxUint64)
	if err != nil {
		return nil, fmt.Errorf("raftactor: read log: %w", err)
	}
	for _, e := range ents {
		if id, ok := entryID(e); ok {
			ids[id] = true
		}
	}
	return ids, nil
}

// entryID is the proposal id of a log entry: the request id of a normal
// entry, the change id of a conf change.
func entryID(e *raftpb.Entry) (uint64, bool) {
	switch e.GetType() {
	case raftpb.EntryNormal:
		id, err := proposalID(e.GetData())
		return id, err == nil
	case raftpb.EntryConfChange:
		cc := new(raftpb.ConfChange)
		if proto.Unmarshal(e.GetData(), cc) != nil || cc.GetId() == 0 {
			return 0, false
		}
		return cc.GetId(), true
	}
	return 0, false
}

func (c *core) isLearner() bool {
	for _, id := range c.confState.Learners {
		if id == c.id {
			return true
		}
	}
	return false
}

// propose queues a proposal for the next Ready pass: stepProposals hands
// everything that arrived meanwhile to raft as one MsgProp. One step per
// batch instead of one per request saves raft's per-message work (a
// message, a self-acknowledgement, its bookkeeping) on the put path.
func (c *core) propose(m *Propose) {
	if c.lead == 0 {
		c.answer(m.Reply, actors.Result{Err: rpctypes.ErrGRPCNoLeader})
		return
	}
	c.proposals = append(c.proposals, m)
}

// stepProposals steps the queued proposals into raft, in arrival order.
func (c *core) stepProposals() {
	if len(c.proposals) == 0 {
		return
	}
	ents := make([]raftpb.Entry, len(c.proposals))
	refs := make([]*raftpb.Entry, len(c.proposals))
	for i, m := range c.proposals {
		ents[i].Data = m.Data
		refs[i] = &ents[i]
	}
	err := c.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(c.id), Entries: refs})
	if errors.Is(err, raft.ErrProposalDropped) {
		err = rpctypes.ErrGRPCNoLeader
	}
	for i, m := range c.proposals {
		if err != nil {
			c.answer(m.Reply, actors.Result{Err: err})
		} else {
			c.waiters[m.ID] = waiter{req: m}
		}
		c.proposals[i] = nil
	}
	c.proposals = c.proposals[:0]
}

// proposeConfChange proposes a membership change; the store answers its
// client once it is applied. Raft accepts one pending change at a time:
// a second one is dropped (as etcd, the client's wait then times out).
func (c *core) proposeConfChange(m *ProposeConfChange) {
	c.stepProposals()
	if c.lead == 0 {
		c.answer(m.Reply, actors.Result{Err: rpctypes.ErrGRPCNoLeader})
		return
	}
	if c.confBusy() {
		c.confQueue = append(c.confQueue, confProposal{local: m})
		return
	}
	if err := c.rn.ProposeConfChange(m.CC); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			err = rpctypes.ErrGRPCNoLeader
		}
		c.answer(m.Reply, actors.Result{Err: err})
		return
	}
	c.confStepped = c.lead == c.id
	c.waiters[m.CC.GetId()] = waiter{req: &Propose{ID: m.CC.GetId(), Reply: m.Reply}}
}

// cancel forgets the client of proposal id, which gave up waiting (as
// etcd's wait registry is freed when a request times out): the waiter and
// its request are freed. The proposal may still commit and be applied.
func (c *core) cancel(id uint64) {
	if c.cancelConf(id) {
		return
	}
	for i, m := range c.proposals {
		if m.ID == id {
			c.proposals = append(c.proposals[:i], c.proposals[i+1:]...)
			return
		}
	}
	delete(c.waiters, id) // a pending entry without a waiter is skipped by applied
}

// forgetLost answers the waiters whose proposal can no longer be known to
// commit: not handed to the store (index 0) and not in the log after what
// was handed off.
// A dropped forward or an overwritten tail would otherwise hold its
// waiter, and the request, forever. The outcome is unknown — another
// member may still hold the entry and commit it — so the client gets
// etcd's timeout-by-leader-failure error, which says so, not "failed".
func (c *core) forgetLost() {
	if len(c.waiters) == 0 {
		return
	}
	inLog, err := c.idsInLog(c.handedOff + 1)
	if err != nil {
		c.logger.Warn("cannot check waiting proposals against the log", zap.Error(err))
		return
	}
	for id, w := range c.waiters {
		if w.index == 0 && !inLog[id] {
			c.answer(w.req.Reply, actors.Result{Err: rpctypes.ErrGRPCTimeoutDueToLeaderFail})
			delete(c.waiters, id)
			proposalsLost.Inc()
		}
	}
}

// issueReadIndex asks raft for one read index for every read waiting. As
// etcd's read loop, one request is in flight at a time: reads that come
// meanwhile wait for the next, so a burst costs one quorum round (one
// heartbeat round, or one forward to the leader and back), not one per
// Ready. A request unanswered for an election timeout (dropped with a
// lost message) no longer holds the next one back.
func (c *core) issueReadIndex() {
	switch {
	case len(c.reads) == 0:
	case c.lead == 0:
		for _, r := range c.takeReads() {
			c.answerRead(r, rpctypes.ErrGRPCNoLeader)
		}
		readIndexesFailed.Inc()
	case len(c.readsByCtx) == 0 || c.readWaitTicks >= c.electionTicks:
		if len(c.readsByCtx) > 0 {
			c.logger.Warn("waiting for ReadIndex response took too long, retrying",
				zap.Uint64("sent-request-id", c.readBatch),
				zap.Duration("retry-timeout", time.Duration(c.electionTicks)*c.tickInterval))
			slowReadIndexes.Inc()
		}
		c.readBatch++
		c.readsByCtx[c.readBatch] = c.takeReads()
		c.readWaitTicks = 0
		c.rn.ReadIndex(be64(c.readBatch))
	}
}

// tick advances raft's clock by one heartbeat interval.
func (c *core) tick() {
	if len(c.readsByCtx) > 0 {
		c.readWaitTicks++
	}
	c.rn.Tick()
	c.checkStoreProgress()
}

// ready returns the next Ready to persist, send and then advance; none
// while a Ready is held for a conf change verdict.
func (c *core) ready() (raft.Ready, bool) {
	c.stepProposals()
	c.issueReadIndex()
	if c.held != nil || !c.rn.HasReady() {
		return raft.Ready{}, false
	}
	return c.rn.Ready(), true
}

// leading reports whether rd is to be sent before it is persisted: a
// leader sends its appends before its own write (raft thesis 10.2.1; etcd
// does the same), so the followers' fsyncs overlap its own. Its own
// vote counts only once its write is done (raft's self-acknowledgement
// comes after Advance). Everyone else sends only after persisting.
func (c *core) leading(rd raft.Ready) bool {
	return c.lead == c.id && (rd.SoftState == nil || rd.SoftState.RaftState == raft.StateLeader)
}

// advance takes in a Ready the driver has persisted (and whose snapshot
// it installed): its entries join ms, its committed entries go to the
// store, its read states are matched to reads, and raft moves on — unless
// it carried a conf change, which holds it until the store's verdict.
func (c *core) advance(rd raft.Ready) error {
	overwrote := false
	if len(rd.Entries) > 0 {
		last, _ := c.ms.LastIndex()
		overwrote = rd.Entries[0].GetIndex() <= last
		if err := c.ms.Append(rd.Entries); err != nil {
			return err
		}
		for _, e := range rd.Entries {
			c.appendedBytes += uint64(len(e.GetData()))
		}
		c.confAppended(rd.Entries)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := c.ms.SetHardState(rd.HardState); err != nil {
			return err
		}
	}
	if len(rd.CommittedEntries) > 0 {
		if err := c.handOff(rd.CommittedEntries); err != nil {
			return err
		}
	}
	if overwrote {
		// A new leader replaced our uncommitted tail: proposals that
		// were only there are lost.
		c.forgetLost()
	}
	for _, rs := range rd.ReadStates {
		id := binary.BigEndian.Uint64(rs.RequestCtx)
		if w, ok := c.readsByCtx[id]; ok {
			delete(c.readsByCtx, id)
			c.readWaits = append(c.readWaits, readWait{index: rs.Index, waiters: w})
		}
	}
	if len(rd.ReadStates) > 0 {
		c.readWaitTicks = 0
		c.issueReadIndex() // the reads that queued behind it
	}
	if rd.SoftState != nil {
		c.setLead(rd.SoftState.Lead)
	}
	for _, e := range rd.CommittedEntries {
		if e.GetType() != raftpb.EntryNormal && e.GetIndex() > c.confApplied {
			if c.heldConf <= c.confApplied {
				c.heldFrom = e.GetIndex()
			}
			c.heldConf = e.GetIndex()
		}
	}
	if c.heldConf > c.confApplied {
		c.held = &rd
		if n := len(rd.CommittedEntries); n > 0 {
			c.heldLast = rd.CommittedEntries[n-1].GetIndex()
		}
		return nil
	}
	c.rn.Advance(rd)
	return nil
}

// afterReady runs once the driver has no Ready left to take: confirmed
// reads the store has applied are answered, and a lone voter campaigns.
func (c *core) afterReady(storeApplied uint64) {
	c.releaseReads(storeApplied)
	c.campaignIfAlone()
	c.flushConfQueue()
}

// campaignIfAlone starts an election at once when this member is the only
// voter: there is nobody to wait for, so a single-member cluster serves
// right after start instead of after a randomized election timeout.
func (c *core) campaignIfAlone() {
	v := c.confState.GetVoters()
	if c.lead != 0 || len(v) != 1 || v[0] != c.id || c.rn.BasicStatus().RaftState != raft.StateFollower {
		return
	}
	if err := c.rn.Campaign(); err != nil {
		c.logger.Warn("campaign", zap.Error(err))
		return
	}
	c.fx.again = true
}

func (c *core) setLead(lead uint64) {
	if lead == c.lead {
		return
	}
	// raft's own Node logs these lines (operators grep for them); a
	// RawNode does not, so the actor does, in the same words.
	st := c.rn.BasicStatus()
	term := st.GetTerm()
	c.fx.leaderChange = &leaderChange{lead: lead, term: term, campaigning: lead == 0 && st.RaftState == raft.StateCandidate}
	switch {
	case c.lead == 0:
		c.logger.Info(fmt.Sprintf("raft.node: %x elected leader %x at term %d", c.id, lead, term))
	case lead == 0:
		c.logger.Info(fmt.Sprintf("raft.node: %x lost leader %x at term %d", c.id, c.lead, term))
	default:
		c.logger.Info(fmt.Sprintf("raft.node: %x changed leader from %x to %x at term %d", c.id, c.lead, lead, term))
	}
	if lead != 0 {
		leaderChanges.Inc()
	}
	c.lead = lead
	if lead == c.id {
		c.becameLeader()
	}
	// Reads waiting for a read index will not get one from the old
	// leader's term: with a new leader they are asked again at once (as
	// one new batch); with none they fail, as etcd's read loop does.
	if len(c.readsByCtx) > 0 {
		for id, ws := range c.readsByCtx {
			c.reads = append(c.reads, ws...)
			delete(c.readsByCtx, id)
		}
		c.readWaitTicks = 0
		if lead == 0 {
			readIndexesFailed.Inc()
			for _, r := range c.takeReads() {
				c.answerRead(r, rpctypes.ErrGRPCLeaderChanged)
			}
		}
	}
	// Proposals that are not in this member's log by now were forwarded
	// to a leader that is gone: nothing will tell if they commit.
	c.forgetLost()
}

// handOff turns committed entries into one Apply for the store. Conf
// changes go to the store too, which decides them; raft applies them when
// the store reports its verdict (storeApplied).
func (c *core) handOff(ents []*raftpb.Entry) error {
	out := make([]storeactor.Entry, 0, len(ents))
	for _, e := range ents {
		se, err := c.storeEntry(e)
		if err != nil {
			return err
		}
		out = append(out, se)
	}
	c.handedOff = max(c.handedOff, out[len(out)-1].Index)
	c.fx.applies = append(c.fx.applies, &storeactor.Apply{Entries: out})
	return nil
}

// storeEntry is the store's view of a committed entry, with the local
// client's waiter if this node proposed it.
func (c *core) storeEntry(e *raftpb.Entry) (storeactor.Entry, error) {
	se := storeactor.Entry{Index: e.GetIndex(), Term: e.GetTerm()}
	switch e.GetType() {
	case raftpb.EntryType_EntryNormal:
		if len(e.Data) == 0 {
			break
		}
		id, err := proposalID(e.Data)
		if err != nil {
			return se, fmt.Errorf("raftactor: entry %d: %w", e.GetIndex(), err)
		}
		se.Data = e.Data[8:]
		if w, ok := c.waiting(id, e.GetIndex()); ok {
			se.Req, se.Reply = w.req.Req, w.req.Reply
		}
	case raftpb.EntryType_EntryConfChange:
		cc := new(raftpb.ConfChange)
		if err := proto.Unmarshal(e.Data, cc); err != nil {
			return se, fmt.Errorf("raftactor: entry %d: %w", e.GetIndex(), err)
		}
		se.ConfChange = cc
		if w, ok := c.waiting(cc.GetId(), e.GetIndex()); ok && cc.GetId() != 0 {
			se.Reply = w.req.Reply
		}
	case raftpb.EntryType_EntryConfChangeV2:
		// MetaStore proposes only single-step changes (ConfChange, as
		// etcd); a joint change would need the store to decide it.
		return se, fmt.Errorf("raftactor: entry %d: ConfChangeV2 is not supported", e.GetIndex())
	}
	return se, nil
}

// waiting returns the local client waiting on proposal id, now known to be
// at index.
func (c *core) waiting(id, index uint64) (waiter, bool) {
	w, ok := c.waiters[id]
	if ok && w.index == 0 {
		w.index = index
		c.waiters[id] = w
		c.pending = append(c.pending, pendingEntry{index: index, id: id})
	}
	return w, ok
}

// releaseReads answers the linearizable reads whose read index the store
// has applied (it publishes its View before it reports Applied).
func (c *core) releaseReads(applied uint64) {
	if len(c.readWaits) == 0 {
		return
	}
	kept := c.readWaits[:0]
	for _, r := range c.readWaits {
		if r.index <= applied {
			for _, w := range r.waiters {
				c.answerRead(w, nil)
			}
		} else {
			kept = append(kept, r)
		}
	}
	c.readWaits = kept
}

// checkStoreProgress resends entries the store has not applied for
// resendTicks ticks.
func (c *core) checkStoreProgress() {
	if c.handedOff <= c.storeApplied {
		c.stalledTicks = 0
		return
	}
	if c.stalledTicks++; c.stalledTicks >= resendTicks {
		c.stalledTicks = 0
		c.replay(c.storeApplied + 1)
	}
}

// resendTicks is how many ticks the store may go without reporting
// progress while entries handed to it are unapplied before they are sent
// again. It covers an Apply lost with a restarting store actor when no
// later Apply arrives to reveal the gap; the store skips what it already has.
const resendTicks = 10

// applied takes in the store's report: the verdicts on conf changes are
// applied to raft (which releases a held Ready), waiters up to the index
// are done, and the log may be truncated. A store that restarted may have
// lost batches or applied ones it never reported: everything raft handed
// off since the store's last report is sent again at once (the store
// skips what it has, answering those clients and repeating its verdicts).
func (c *core) applied(m *storeactor.Applied, storeApplied uint64) {
	for _, v := range m.Conf {
		c.applyConf(v)
	}
	if c.held != nil && c.confApplied >= c.heldConf {
		c.rn.Advance(*c.held)
		c.held = nil
		c.fx.again = true
	}
	if m.Restarted {
		if c.handedOff > c.storeApplied {
			c.replay(c.storeApplied + 1)
		}
		return
	}
	index := m.Index
	if index <= c.storeApplied {
		return
	}
	c.storeApplied = index
	c.stalledTicks = 0
	c.releaseReads(storeApplied)
	k := 0
	for ; k < len(c.pending) && c.pending[k].index <= index; k++ {
		delete(c.waiters, c.pending[k].id)
	}
	c.pending = c.pending[k:]
	if c.held != nil && c.heldLast <= index && c.confApplied < c.heldConf {
		// The store applied the conf change before a restart and reported
		// no verdict for it: ask for it again. Not on a report below
		// heldLast: the store may still be answering Applies a previous
		// instance of this actor sent before held's, and replays asked
		// for each of those counted toward a poison entry (a member
		// stopped by a restart of its raft actor alone).
		c.replay(max(c.heldFrom, c.confApplied+1))
	}
	if c.held == nil && (index-c.snapIndex >= c.snapshotCount || c.logBytes > 0 && index > c.snapIndex && c.appendedBytes >= c.logBytes/2) {
		c.truncate(index)
	}
}

// applyConf applies to raft a conf change the store decided.
func (c *core) applyConf(v storeactor.ConfApplied) {
	if v.Index <= c.confApplied {
		return // reported again after a replay
	}
	c.confApplied = v.Index
	if c.promotes(v.CC) {
		learnerPromoteSucceed.Inc()
	}
	c.confState = c.rn.ApplyConfChange(v.CC)
	if v.CC.GetNodeId() != 0 {
		c.fx.confChanges = append(c.fx.confChanges, v.CC)
	}
	c.fx.again = true // a lone voter may campaign now
}

// promotes reports whether cc, applied on this leader, promotes a learner.
func (c *core) promotes(cc *raftpb.ConfChange) bool {
	if c.lead != c.id || cc.GetType() != raftpb.ConfChangeAddNode {
		return false
	}
	for _, id := range c.confState.GetLearners() {
		if id == cc.GetNodeId() {
			return true
		}
	}
	return false
}

// truncate drops log entries the store no longer needs, keeping catchUp
// entries for followers; the driver makes it durable with a synced batch,
// which also makes every store apply batch before it durable: that is
// what allows forgetting the log.
//
// Raft reads the newest entries from memory (c.ms), so with large
// entries a count alone does not bound memory: 15000 entries of 64 KiB
// puts are a GiB. With logBytes set, the log is also truncated once half
// of it has been appended since the last truncation, and memory keeps of
// the catchUp entries only those within the other half: what must hold
// is that the entries in memory stay within about logBytes plus those
// not applied yet. The durable log keeps all catchUp entries, which raft
// reads from pebble (logStorage) for a follower that needs them.
func (c *core) truncate(applied uint64) {
	snap, err := c.ms.CreateSnapshot(applied, c.confState, nil)
	if err != nil {
		if !errors.Is(err, raft.ErrSnapOutOfDate) {
			c.logger.Warn("raft log truncation", zap.Error(err))
		}
		return
	}
	c.appendedBytes = 0
	compactTo := applied - min(applied, c.catchUp)
	if memTo := c.inMemoryFrom(applied, compactTo); memTo > 0 {
		if err := c.ms.Compact(memTo); err != nil && !errors.Is(err, raft.ErrCompacted) {
			c.logger.Warn("raft log truncation", zap.Error(err))
			return
		}
	}
	c.snapIndex = applied
	c.fx.truncate = &truncation{meta: snap.GetMetadata(), compactTo: compactTo}
}

// inMemoryFrom is the index up to which a truncation at applied that
// keeps the entries after compactTo compacts the memory tier: as far,
// or further while the entries kept hold more than half of logBytes.
func (c *core) inMemoryFrom(applied, compactTo uint64) uint64 {
	if c.logBytes == 0 {
		return compactTo
	}
	first, _ := c.ms.FirstIndex()
	lo := max(compactTo+1, first)
	if lo > applied {
		return compactTo
	}
	ents, err := c.ms.Entries(lo, applied+1, math.MaxUint64)
	if err != nil {
		return compactTo
	}
	kept := uint64(0)
	for i := len(ents) - 1; i >= 0; i-- {
		if kept += uint64(len(ents[i].GetData())); kept > c.logBytes/2 {
			return ents[i].GetIndex()
		}
	}
	return compactTo
}

// durableFrom tells the core the first index the durable log holds now.
func (c *core) durableFrom(first uint64) { c.log.first = max(c.log.first, first) }

// snapshotInstalled takes in a snapshot from the leader that the driver
// has made the store's state and the durable log's starting point.
func (c *core) snapshotInstalled(snap *raftpb.Snapshot, storeApplied uint64) error {
	if err := c.ms.ApplySnapshot(snap); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		return err
	}
	index := snap.GetMetadata().GetIndex()
	c.snapIndex, c.confApplied = index, index
	c.confState = snap.GetMetadata().GetConfState()
	c.handedOff = max(c.handedOff, index)
	c.storeApplied = max(c.storeApplied, storeApplied)
	return nil
}

// replay sends committed entries from `from` again, after the store lost a
// batch to a restart.
func (c *core) replay(from uint64) {
	committed := c.rn.BasicStatus().GetCommit()
	if from > committed {
		return
	}
	if from == c.replayFrom {
		c.replays++
	} else {
		c.replayFrom, c.replays = from, 1
	}
	if c.replays > maxReplays {
		err := fmt.Errorf("raftactor: the store failed %d times to apply entry %d; stopping", maxReplays, from)
		c.logger.Error("poison entry", zap.Error(err))
		c.fx.fatal = err
		return
	}
	ents, err := c.ms.Entries(from, committed+1, 1<<62)
	if err != nil {
		c.fx.fatal = fmt.Errorf("raftactor: replay from %d: %w", from, err)
		return
	}
	out := make([]storeactor.Entry, 0, len(ents))
	for _, e := range ents {
		se, err := c.storeEntry(e)
		if err != nil {
			c.fx.fatal = err
			return
		}
		out = append(out, se)
	}
	c.logger.Warn("replaying committed entries to the store", zap.Uint64("from", from), zap.Uint64("to", committed))
	c.fx.applies = append(c.fx.applies, &storeactor.Apply{Entries: out})
}

// handOffLeadership starts a transfer of this leader's leadership to the
// voter with the longest log among those it has heard from within an
// election timeout and is connected to (raft catches the transferee up if needed, then tells
// it to campaign at once).
func (c *core) handOffLeadership(connected func(uint64) bool) HandOff {
	c.stepProposals()
	st := c.rn.Status()
	if st.RaftState != raft.StateLeader {
		return HandOff{Skipped: "skipped leadership transfer; local server is not leader"}
	}
	var target, match uint64
	voters := 0
	for _, id := range c.confState.GetVoters() {
		if id == c.id {
			continue
		}
		voters++
		pr, ok := st.Progress[id]
		if !ok || !pr.RecentActive || (connected != nil && !connected(id)) {
			continue
		}
		if target == 0 || pr.Match > match {
			target, match = id, pr.Match
		}
	}
	switch {
	case voters == 0:
		return HandOff{Skipped: "skipped leadership transfer for single voting member cluster"}
	case target == 0:
		return HandOff{Err: errNoTransferee}
	}
	c.rn.TransferLeader(target)
	c.fx.again = true
	return HandOff{Target: target}
}

// errNoTransferee is etcd's ErrUnhealthy: no voter to hand leadership to.
var errNoTransferee = errors.New("etcdserver: unhealthy cluster")

// status is raft's view of this member; applied is the store's.
func (c *core) status(applied uint64) StatusInfo {
	st := c.rn.Status()
	info := StatusInfo{
		ID: c.id, Lead: st.Lead, Term: st.GetTerm(), Committed: st.GetCommit(),
		Applied: applied, Reported: c.storeApplied, IsLearner: st.RaftState == raft.StateFollower && c.isLearner(),
	}
	if len(st.Progress) > 0 {
		info.Match = make(map[uint64]uint64, len(st.Progress))
		for id, pr := range st.Progress {
			info.Match[id] = pr.Match
		}
	}
	return info
}

// view is what the driver publishes.
func (c *core) view() (lead, term, committed uint64, learner bool) {
	st := c.rn.BasicStatus()
	return st.Lead, st.GetTerm(), st.GetCommit(), c.isLearner()
}

package raftactor

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// TestCoreScenarios runs the scripts in testdata/: members made of a core
// and a scripted store, on a network the script partitions, with time as
// explicit ticks. Commands:
//
//	add-nodes n=3 [snapshot-count=N catch-up=M log-bytes=B]  bootstrap members 1..n as voters
//	join <id>                        a member with an empty log, for a conf change to add
//	campaign <id>                    the member starts an election
//	force-campaign <id>              the member campaigns as a leadership transferee
//	propose <id> <name> [value-bytes=N]  a client proposes a put on the member
//	propose-conf <id> <name> add-learner=<n> | remove=<n>
//	read <id> <name>                 a client asks for a linearizable read
//	cancel <id> <name>               the client of a proposal gives up
//	tick <id...> [n=1]               heartbeat intervals pass on the members (their stores run)
//	stabilize                        deliver messages, run Readies and stores until quiet
//	isolate <id> / heal              drop every message to and from the member / none
//	store <id> pause|resume|restart|crash-after-commit|lose-report
//	restart <id> [force-new-cluster|raft-only]  the member stops and starts again from its durable log
//	                                 (raft-only: its raft actor alone; the store goes on with what it was handed)
//	status                           each member's raft and waiting state
//	log                              each member's in-memory log (its indexes, the bytes of their data) and its durable log's first index
//
// Every command prints what clients were answered and what the members
// reported (leader changes, conf changes applied, fatal errors).
func TestCoreScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if filepath.Ext(path) != ".txt" {
			return
		}
		e := &coreEnv{t: t, nodes: map[uint64]*tnode{}, isolated: map[uint64]bool{}}
		datadriven.RunTest(t, path, e.handle)
	})
}

type coreEnv struct {
	t        *testing.T
	nodes    map[uint64]*tnode
	ids      []uint64
	isolated map[uint64]bool
	nextID   uint64
	out      strings.Builder
}

// tnode is one member: a core, its store (scripted: it applies every
// entry, accepts every conf change) and its clients.
type tnode struct {
	id   uint64
	c    *core
	lead uint64

	store struct {
		applied               uint64
		paused                bool
		queue                 []*storeactor.Apply // handed to the store, not yet applied
		crashNext, loseReport bool
	}
	clients map[string]any    // name -> reply channel or read batch
	names   map[uint64]string // proposal id -> client name
	reads   readCell          // the batch clients' reads join (read-batch)
	inbox   []*raftpb.Message
	// durable is the log as the driver keeps it in pebble: every entry
	// of a Ready, less what truncations and snapshots delete; raft reads
	// the entries older than the core's memory tier from it.
	durable      map[uint64]*raftpb.Entry
	durableFirst uint64
}

// olderEntries reads the durable log as Node.readOlderEntries reads pebble.
func (n *tnode) olderEntries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	var ents []*raftpb.Entry
	size := uint64(0)
	for i := lo; i < hi; i++ {
		e := n.durable[i]
		if e == nil {
			break
		}
		if sz := uint64(proto.Size(e)); len(ents) > 0 && size+sz > maxSize {
			break
		} else {
			size += sz
		}
		ents = append(ents, e)
	}
	if len(ents) == 0 {
		return nil, fmt.Errorf("no durable entry %d", lo)
	}
	return ents, nil
}

// persist keeps a Ready's entries in the durable log, deleting the tail
// a new leader overwrote, as Node.persist does.
func (n *tnode) persist(ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	for _, e := range ents {
		n.durable[e.GetIndex()] = e
	}
	for i := ents[len(ents)-1].GetIndex() + 1; n.durable[i] != nil; i++ {
		delete(n.durable, i)
	}
}

// dropDurable deletes the durable entries up to index, as a truncation
// or an installed snapshot does.
func (n *tnode) dropDurable(index uint64) {
	for i := n.durableFirst; i <= index; i++ {
		delete(n.durable, i)
	}
	n.durableFirst = max(n.durableFirst, index+1)
	n.c.durableFrom(n.durableFirst)
}

// newNode makes member id's core on ms, with its durable log.
func newNode(t *testing.T, cfg coreConfig, ms *raft.MemoryStorage, exists bool, storeApplied uint64, n *tnode) *tnode {
	if n == nil {
		n = &tnode{id: cfg.ID, durable: map[uint64]*raftpb.Entry{}, durableFirst: 1}
	}
	cfg.OlderEntries, cfg.DurableFirst = n.olderEntries, n.durableFirst
	cl := newClients()
	cl.readCell = &n.reads
	c, err := newCore(cfg, ms, exists, cl, storeApplied)
	if err != nil {
		t.Fatal(err)
	}
	n.c = c
	n.clients, n.names = map[string]any{}, map[uint64]string{}
	return n
}

func (e *coreEnv) handle(t *testing.T, d *datadriven.TestData) string {
	e.out.Reset()
	switch d.Cmd {
	case "add-nodes":
		var n int
		d.ScanArgs(t, "n", &n)
		snapshotCount, catchUp, logBytes := uint64(10000), uint64(5000), uint64(0)
		d.MaybeScanArgs(t, "snapshot-count", &snapshotCount)
		d.MaybeScanArgs(t, "catch-up", &catchUp)
		d.MaybeScanArgs(t, "log-bytes", &logBytes)
		peers := make([]raft.Peer, n)
		for i := range peers {
			peers[i] = raft.Peer{ID: uint64(i + 1)}
		}
		for i := 1; i <= n; i++ {
			id := uint64(i)
			e.nodes[id] = newNode(t, coreConfig{
				ID: id, ElectionTicks: 10, TickInterval: 100 * time.Millisecond,
				SnapshotCount: snapshotCount, CatchUp: catchUp, LogBytes: logBytes, Logger: zap.NewNop(), Peers: peers,
			}, raft.NewMemoryStorage(), false, 0, nil)
			e.ids = append(e.ids, id)
		}
		e.stabilize()
	case "join":
		var id uint64
		if _, err := fmt.Sscan(d.CmdArgs[0].Key, &id); err != nil || e.nodes[id] != nil {
			t.Fatalf("join %s?", d.CmdArgs[0].Key)
		}
		e.nodes[id] = newNode(t, coreConfig{
			ID: id, ElectionTicks: 10, TickInterval: 100 * time.Millisecond,
			SnapshotCount: 10000, CatchUp: 5000, Logger: zap.NewNop(),
		}, raft.NewMemoryStorage(), false, 0, nil)
		e.ids = append(e.ids, id)
	case "campaign":
		n := e.node(d, 0)
		if err := n.c.rn.Campaign(); err != nil {
			t.Fatal(err)
		}
		e.collect(n)
	case "force-campaign":
		// As if the leader had transferred leadership: the member
		// campaigns at once and the others vote without waiting out their
		// leader's lease (deterministic, unlike ticking to a randomized
		// election timeout).
		n := e.node(d, 0)
		st := n.c.rn.BasicStatus()
		if err := n.c.rn.Step(&raftpb.Message{Type: raftpb.MsgTimeoutNow.Enum(), From: proto.Uint64(st.Lead),
			To: proto.Uint64(n.id), Term: proto.Uint64(st.GetTerm())}); err != nil {
			t.Fatal(err)
		}
		e.collect(n)
	case "propose":
		n := e.node(d, 0)
		name := d.CmdArgs[1].Key
		e.nextID++
		value := 1
		d.MaybeScanArgs(t, "value-bytes", &value)
		req := &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(name), Value: make([]byte, value)}}
		data, err := EncodeProposal(e.nextID, req)
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan actors.Result, 1)
		n.clients[name], n.names[e.nextID] = (chan<- actors.Result)(ch), name
		n.c.propose(&Propose{ID: e.nextID, Data: data, Req: req, Reply: ch})
		e.collect(n)
	case "propose-conf":
		n := e.node(d, 0)
		name := d.CmdArgs[1].Key
		e.nextID++
		cc := &raftpb.ConfChange{Id: proto.Uint64(e.nextID)}
		var target uint64
		if d.MaybeScanArgs(t, "add-learner", &target) {
			cc.Type = raftpb.ConfChangeAddLearnerNode.Enum()
		} else {
			d.ScanArgs(t, "remove", &target)
			cc.Type = raftpb.ConfChangeRemoveNode.Enum()
		}
		cc.NodeId = proto.Uint64(target)
		ch := make(chan actors.Result, 1)
		n.clients[name], n.names[e.nextID] = (chan<- actors.Result)(ch), name
		n.c.proposeConfChange(&ProposeConfChange{CC: cc, Reply: ch})
		e.collect(n)
	case "read":
		n := e.node(d, 0)
		name := d.CmdArgs[1].Key
		ch := make(chan error, 1)
		n.clients[name] = (chan<- error)(ch)
		n.c.reads = append(n.c.reads, readWaiter{ch: ch})
		e.collect(n)
	case "read-batch":
		// A client's linearizable read joins the published batch; the
		// first read of a batch tells the actor (ReadsWaiting), whose next
		// Ready pass asks raft for a read index unless one is in flight.
		n := e.node(d, 0)
		b, first := n.reads.join()
		n.clients[d.CmdArgs[1].Key] = b
		if !first {
			return "joined"
		}
		e.out.WriteString("first\n")
		n.c.reads = append(n.c.reads, readWaiter{batch: b})
		n.c.issueReadIndex()
		e.collect(n)
	case "cancel":
		n := e.node(d, 0)
		name := d.CmdArgs[1].Key
		for id, nm := range n.names {
			if nm == name {
				n.c.cancel(id)
			}
		}
		e.collect(n)
	case "tick":
		times := 1
		d.MaybeScanArgs(t, "n", &times)
		for _, a := range d.CmdArgs {
			if a.Key == "n" {
				continue
			}
			n := e.nodeByName(a.Key)
			for range times {
				n.c.tick()
				e.collect(n)
				e.runStore(n) // the store works on while time passes
			}
		}
	case "stabilize":
		e.stabilize()
	case "isolate":
		e.isolated[e.node(d, 0).id] = true
	case "heal":
		clear(e.isolated)
	case "store":
		n := e.node(d, 0)
		switch what := d.CmdArgs[1].Key; what {
		case "pause":
			n.store.paused = true
		case "resume":
			n.store.paused = false
		case "crash-after-commit":
			n.store.crashNext = true
		case "lose-report":
			n.store.loseReport = true
		case "restart":
			// The queued Applies are lost with the instance; the new one
			// reports what it has applied.
			n.store.queue, n.store.paused = nil, false
			n.c.applied(&storeactor.Applied{Index: n.store.applied, Restarted: true}, n.store.applied)
			e.collect(n)
		default:
			t.Fatalf("store %s?", what)
		}
	case "restart":
		e.restart(e.node(d, 0), d.HasArg("force-new-cluster"), d.HasArg("raft-only"))
	case "status":
		for _, id := range e.ids {
			n := e.nodes[id]
			st := n.c.rn.BasicStatus()
			fmt.Fprintf(&e.out, "%d: lead=%d term=%d commit=%d store-applied=%d waiters=%d reads=%d",
				id, st.Lead, st.GetTerm(), st.GetCommit(), n.store.applied, len(n.c.waiters),
				len(n.c.reads)+len(n.c.readsByCtx)+len(n.c.readWaits))
			if n.c.held != nil {
				fmt.Fprintf(&e.out, " held-for-conf=%d", n.c.heldConf)
			}
			if len(n.c.confQueue) > 0 {
				fmt.Fprintf(&e.out, " conf-waiting=%d", len(n.c.confQueue))
			}
			fmt.Fprintf(&e.out, " voters=%v learners=%v\n", n.c.confState.GetVoters(), n.c.confState.GetLearners())
		}
	case "log":
		for _, id := range e.ids {
			ms := e.nodes[id].c.ms
			first, _ := ms.FirstIndex()
			last, _ := ms.LastIndex()
			var ents []*raftpb.Entry
			if first <= last {
				var err error
				if ents, err = ms.Entries(first, last+1, math.MaxUint64); err != nil {
					t.Fatal(err)
				}
			}
			bytes := 0
			for _, e := range ents {
				bytes += len(e.GetData())
			}
			fmt.Fprintf(&e.out, "%d: entries %d-%d, %d bytes in memory; durable from %d\n", id, first, last, bytes, e.nodes[id].durableFirst)
		}
	default:
		t.Fatalf("unknown command %s", d.Cmd)
	}
	if e.out.Len() == 0 {
		return "ok\n"
	}
	return e.out.String()
}

// restart stops n — its clients, messages in flight and Applies queued
// for its store are lost with the process — and starts a new core on its
// durable state: the log (the old core's MemoryStorage, as the driver
// loads pebble's copy) and what its store has applied. With force, the
// log is first rewritten as ForceNewCluster rewrites pebble's. With
// raftOnly, only the raft actor restarts (a panic its guardian contains):
// the store goes on applying the Applies queued for it, and reports them
// to the new core, whose clients (recovered from the log) they are.
func (e *coreEnv) restart(n *tnode, force, raftOnly bool) {
	old := n.c.ms
	snap, _ := old.Snapshot()
	hs, _, _ := old.InitialState()
	first, _ := old.FirstIndex()
	upTo, _ := old.LastIndex()
	var extra []*raftpb.Entry
	if force {
		f, err := forceNewLog(old, n.id, n.store.applied)
		if err != nil {
			fmt.Fprintf(&e.out, "%d: force-new-cluster refused: %v\n", n.id, err)
			return
		}
		fmt.Fprintf(&e.out, "%d: forced: commit %d -> %d, discarded %d entries, removes %v, term %d\n",
			n.id, f.walCommit, f.hs.GetCommit(), f.last-f.commit, f.removed, f.hs.GetTerm())
		hs, upTo, extra = f.hs, f.commit, f.ents
	}
	ms := raft.NewMemoryStorage()
	if err := ms.ApplySnapshot(snap); err != nil {
		e.t.Fatal(err)
	}
	if err := ms.SetHardState(hs); err != nil {
		e.t.Fatal(err)
	}
	var ents []*raftpb.Entry
	if upTo >= first {
		var err error
		if ents, err = old.Entries(first, upTo+1, math.MaxUint64); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := ms.Append(append(ents, extra...)); err != nil {
		e.t.Fatal(err)
	}
	newNode(e.t, coreConfig{
		ID: n.id, ElectionTicks: 10, TickInterval: 100 * time.Millisecond,
		SnapshotCount: n.c.snapshotCount, CatchUp: n.c.catchUp, LogBytes: n.c.logBytes, Logger: zap.NewNop(),
	}, ms, true, n.store.applied, n)
	n.lead, n.inbox = 0, nil
	if !raftOnly {
		n.store.queue, n.store.paused = nil, false
	}
	e.collect(n)
}

func (e *coreEnv) node(d *datadriven.TestData, i int) *tnode {
	return e.nodeByName(d.CmdArgs[i].Key)
}

func (e *coreEnv) nodeByName(s string) *tnode {
	var id uint64
	if _, err := fmt.Sscan(s, &id); err != nil || e.nodes[id] == nil {
		e.t.Fatalf("no member %q", s)
	}
	return e.nodes[id]
}

// stabilize runs every member until nothing moves: Readies are taken and
// advanced (the durable log is the core's own MemoryStorage), messages
// delivered unless a side is isolated, stores run unless paused.
func (e *coreEnv) stabilize() {
	for round := 0; ; round++ {
		if round > 1000 {
			e.t.Fatal("no quiescence after 1000 rounds")
		}
		moved := false
		for _, id := range e.ids {
			n := e.nodes[id]
			for _, m := range n.inbox {
				if err := n.c.step(m); err != nil && err != raft.ErrStepPeerNotFound {
					fmt.Fprintf(&e.out, "%d: step %v: %v\n", id, m.GetType(), err)
				}
			}
			if len(n.inbox) > 0 {
				moved = true
			}
			n.inbox = nil
			for {
				rd, ok := n.c.ready()
				if !ok {
					break
				}
				moved = true
				if !raft.IsEmptySnap(rd.Snapshot) {
					// The driver has the store install the leader's
					// checkpoint, then takes the snapshot's point as its log's.
					index := rd.Snapshot.GetMetadata().GetIndex()
					n.store.applied, n.store.queue = index, nil
					fmt.Fprintf(&e.out, "%d: installed snapshot at %d\n", id, index)
					n.dropDurable(index)
					if err := n.c.snapshotInstalled(rd.Snapshot, index); err != nil {
						e.t.Fatal(err)
					}
				}
				n.persist(rd.Entries)
				e.send(id, rd.Messages)
				if err := n.c.advance(rd); err != nil {
					e.t.Fatal(err)
				}
				e.collect(n)
			}
			n.c.afterReady(n.store.applied)
			if e.collect(n) {
				moved = true
			}
			if e.runStore(n) {
				moved = true
			}
		}
		if !moved {
			return
		}
	}
}

func (e *coreEnv) send(from uint64, msgs []*raftpb.Message) {
	for _, m := range msgs {
		to := m.GetTo()
		if e.isolated[from] || e.isolated[to] || e.nodes[to] == nil {
			continue
		}
		e.nodes[to].inbox = append(e.nodes[to].inbox, m)
	}
}

// collect takes a core's effects: Applies queue for its store, the rest
// is printed. It reports whether there were any.
func (e *coreEnv) collect(n *tnode) bool {
	fx := n.c.take()
	if lead := n.c.lead; lead != n.lead {
		fmt.Fprintf(&e.out, "%d: leader %d -> %d\n", n.id, n.lead, lead)
		n.lead = lead
	}
	n.store.queue = append(n.store.queue, fx.applies...)
	for _, cc := range fx.confChanges {
		fmt.Fprintf(&e.out, "%d: raft applied conf change %v %d\n", n.id, cc.GetType(), cc.GetNodeId())
	}
	if fx.truncate != nil {
		fmt.Fprintf(&e.out, "%d: truncate at %d\n", n.id, fx.truncate.meta.GetIndex())
		n.dropDurable(fx.truncate.compactTo)
	}
	var lines []string
	for _, r := range fx.replies {
		lines = append(lines, e.describe(n, r))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintf(&e.out, "%d: %s\n", n.id, l)
	}
	if fx.fatal != nil {
		fmt.Fprintf(&e.out, "%d: FATAL %v\n", n.id, fx.fatal)
	}
	return len(fx.applies) > 0 || len(fx.replies) > 0 || fx.again || fx.fatal != nil
}

func (e *coreEnv) describe(n *tnode, r reply) string {
	var names []string
	for nm, ch := range n.clients {
		if (r.result != nil && ch == any(r.result)) || (r.read.ch != nil && ch == any(r.read.ch)) ||
			(r.read.batch != nil && ch == any(r.read.batch)) {
			names = append(names, nm)
		}
	}
	sort.Strings(names)
	name := strings.Join(names, ",")
	if name == "" {
		name = "?"
	}
	err := r.err
	if r.result != nil {
		err = r.res.Err
	}
	if err != nil {
		return fmt.Sprintf("client %s: %v", name, rpctypes.ErrorDesc(err))
	}
	if p, ok := r.res.Resp.(*pb.PutResponse); ok {
		return fmt.Sprintf("client %s: ok, applied at index %d", name, p.GetHeader().GetRevision())
	}
	return fmt.Sprintf("client %s: ok", name)
}

// runStore applies what was handed to n's store, as storeactor does:
// entries in index order, each once; what was applied before is skipped
// (its client told the outcome is unknown) but its conf verdict repeated;
// a gap asks for a replay.
func (e *coreEnv) runStore(n *tnode) bool {
	s := &n.store
	if s.paused || len(s.queue) == 0 {
		return false
	}
	for len(s.queue) > 0 && !s.paused {
		a := s.queue[0]
		s.queue = s.queue[1:]
		if first := a.Entries[0].Index; first > s.applied+1 {
			fmt.Fprintf(&e.out, "%d: store missed entries; asks replay from %d\n", n.id, s.applied+1)
			n.c.replay(s.applied + 1)
			e.collect(n)
			continue
		}
		var conf []storeactor.ConfApplied
		var replies []reply
		for _, en := range a.Entries {
			if en.ConfChange != nil {
				conf = append(conf, storeactor.ConfApplied{Index: en.Index, CC: en.ConfChange})
			}
			if en.Index <= s.applied {
				if en.Reply != nil {
					replies = append(replies, reply{result: en.Reply, res: actors.Result{Err: rpctypes.ErrGRPCTimeout}})
				}
				continue
			}
			s.applied = en.Index
			if en.Reply != nil {
				replies = append(replies, reply{result: en.Reply, res: actors.Result{Resp: &pb.PutResponse{Header: &pb.ResponseHeader{Revision: int64(en.Index)}}}})
			}
		}
		if s.crashNext {
			// Committed, then the store stopped: no answers, no report,
			// and what was queued behind is lost with it.
			s.crashNext, s.paused, s.queue = false, true, nil
			fmt.Fprintf(&e.out, "%d: store applied to %d and stopped before answering\n", n.id, s.applied)
			return true
		}
		var lines []string
		for _, r := range replies {
			lines = append(lines, e.describe(n, r))
		}
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprintf(&e.out, "%d: %s\n", n.id, l)
		}
		if s.loseReport {
			s.loseReport = false
			fmt.Fprintf(&e.out, "%d: store applied to %d; its report is lost\n", n.id, s.applied)
			continue
		}
		n.c.applied(&storeactor.Applied{Index: s.applied, Conf: conf}, s.applied)
		e.collect(n)
	}
	return true
}

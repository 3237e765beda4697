package raftactor_test

import (
	"context"
	"fmt"
	"github.com/metastore/metastore/raftwal"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// Three raft actors, each with its own pebble DB and store actor under its
// own Guardian (as node/node.go wires a member), connected by memNet and
// ticked by one fake clock.

const (
	tickEvery = 100 * time.Millisecond
	elecTicks = 10
)

type cnode struct {
	id       uint64
	db       *pebble.DB
	wal      *raftwal.WAL
	fs       vfs.FS
	guardian *actor.PID
	storePID *actor.PID
	reader   *storeactor.Reader
	raftPID  *actor.PID
	view     *raftactor.ViewRef
	ids      *raftactor.IDGen
	// panicOnStatus arms a one-shot panic of the raft actor on its next Status.
	panicOnStatus atomic.Bool
	fatal         chan error
}

type rcluster struct {
	t     *testing.T
	kit   *testkit.Kit
	clock *testkit.FakeClock
	net   *memNet
	nodes []*cnode
	ev    *testkit.Events
}

var clusterIDs = []uint64{0x1111, 0x2222, 0x3333}

func startCluster(t *testing.T) *rcluster {
	t.Helper()
	return startClusterURLs(t, func(i int) string { return fmt.Sprintf("http://n%d", i+1) })
}

// startClusterURLs starts the three nodes with member i's peer URL url(i)
// in its bootstrap context.
func startClusterURLs(t *testing.T, url func(i int) string) *rcluster {
	t.Helper()
	return startClusterWith(t, url, nil)
}

// startClusterWith starts the cluster with each raft actor's Config
// adjusted by adjust (when set).
func startClusterWith(t *testing.T, url func(i int) string, adjust func(*raftactor.Config)) *rcluster {
	t.Helper()
	c := &rcluster{t: t, clock: testkit.NewFakeClock(epoch)}
	// DBs first: their cleanups run after the actors have stopped.
	for _, id := range clusterIDs {
		fs := vfs.NewMem()
		db, err := storeactor.OpenPebbleFS(fs, "/db")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c.nodes = append(c.nodes, &cnode{id: id, db: db, wal: openWAL(t, fs), fs: fs, fatal: make(chan error, 4)})
	}
	c.kit = testkit.New(t)
	c.ev = c.kit.CaptureEvents()
	c.net = newMemNet(c.kit.Root())
	peers := make([]raft.Peer, len(clusterIDs))
	for i, id := range clusterIDs {
		peers[i] = raft.Peer{ID: id, Context: storeactor.EncodeMemberContext(&pb.Member{
			ID: id, Name: fmt.Sprintf("n%d", i+1), PeerURLs: []string{url(i)},
		})}
	}
	for _, n := range c.nodes {
		n := n
		g := &actors.Guardian{Logger: zap.NewNop(), OnFatal: func(err error) {
			select {
			case n.fatal <- err:
			default:
			}
		}}
		n.guardian = c.kit.Spawn(actors.GuardianProps(g))
		t.Cleanup(func() {
			_, _ = actors.Ask(context.Background(), c.kit.Root(), n.guardian, func(r chan<- struct{}) any {
				return &actors.StopChildren{Reply: r}
			})
		})
		reader, err := storeactor.NewReader(n.db)
		if err != nil {
			t.Fatal(err)
		}
		n.reader = reader
		n.storePID = c.spawn(n, "store", storeactor.New(storeactor.Config{DB: n.db}, reader))
		n.ids = raftactor.NewIDGen(n.id, c.clock.Now())
		cfg := raftactor.Config{
			DB: n.db, WAL: n.wal, ID: n.id, ClusterID: 0x1234, Peers: peers,
			Store: n.storePID, StoreView: reader.View, Transport: c.net.transport(n.id),
			Clock: c.clock, TickInterval: tickEvery, ElectionTicks: elecTicks, Logger: c.logger(n.id),
			SnapshotFS: n.fs, SnapshotRoot: snapRoot,
			OnFatal: func(err error) {
				select {
				case n.fatal <- err:
				default:
				}
			},
		}
		if adjust != nil {
			adjust(&cfg)
		}
		props, view := raftactor.New(cfg)
		props = testkit.PanicOn(props, func(m any) bool {
			_, ok := m.(*raftactor.Status)
			return ok && n.panicOnStatus.CompareAndSwap(true, false)
		})
		n.view = view
		n.raftPID = c.spawn(n, "raft", props)
		c.net.register(n.id, n.raftPID)
		c.net.registerDB(n.id, n.db, n.fs)
	}
	return c
}

// logger logs node id's raft actor to the test log when RAFT_LOG is set.
func (c *rcluster) logger(id uint64) *zap.Logger {
	if os.Getenv("RAFT_LOG") == "" {
		return zap.NewNop()
	}
	return zaptest.NewLogger(c.t).With(zap.String("node", fmt.Sprintf("%x", id)))
}

func (c *rcluster) spawn(n *cnode, name string, props *actor.Props) *actor.PID {
	c.t.Helper()
	res, err := actors.Ask(context.Background(), c.kit.Root(), n.guardian, func(r chan<- actors.SpawnResult) any {
		return &actors.SpawnChild{Name: name, Props: props, Reply: r}
	})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		c.t.Fatalf("spawn %s of %x: %v", name, n.id, err)
	}
	return res.PID
}

// tickUntil advances the clock one tick at a time until cond holds,
// giving the actors a moment after each tick; it returns the ticks taken.
func (c *rcluster) tickUntil(what string, maxTicks int, cond func() bool) int {
	c.t.Helper()
	for i := 0; ; i++ {
		deadline := time.Now().Add(30 * time.Millisecond)
		for {
			if cond() {
				return i
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if i >= maxTicks {
			c.t.Fatalf("%s: not after %d ticks; %s", what, maxTicks, c.describe())
		}
		c.tick()
	}
}

// tick advances the clock one tick and gives the actors a moment to
// exchange what it set off (heartbeats and their answers), as real time
// would: ticks fired back to back would starve check-quorum.
func (c *rcluster) tick() {
	c.clock.Advance(tickEvery)
	time.Sleep(3 * time.Millisecond)
}

func (c *rcluster) describe() string {
	s := ""
	for _, n := range c.nodes {
		v := n.view.Load()
		sv := n.reader.View()
		s += fmt.Sprintf("[%x lead=%x term=%d commit=%d applied=%d rev=%d] ", n.id, v.Lead, v.Term, v.Committed, sv.Applied, sv.Rev)
	}
	return s
}

func (c *rcluster) node(id uint64) *cnode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// agreedLeader is the leader every node of ns names, 0 when they disagree
// or none leads, or the node named does not think it leads.
func agreedLeader(ns []*cnode) uint64 {
	var lead uint64
	for _, n := range ns {
		v := n.view.Load()
		if v.Lead == 0 || (lead != 0 && v.Lead != lead) {
			return 0
		}
		lead = v.Lead
	}
	for _, n := range ns {
		if n.id == lead {
			return lead
		}
	}
	return 0
}

func (c *rcluster) waitLeader(ns []*cnode) *cnode {
	c.t.Helper()
	c.tickUntil("a leader all agree on", 20*elecTicks, func() bool { return agreedLeader(ns) != 0 })
	return c.node(agreedLeader(ns))
}

func (c *rcluster) followers(lead *cnode) []*cnode {
	var out []*cnode
	for _, n := range c.nodes {
		if n != lead {
			out = append(out, n)
		}
	}
	return out
}

// propose sends a put to n's raft actor.
func (c *rcluster) propose(n *cnode, key, value string) <-chan actors.Result {
	id := n.ids.Next()
	req := putReq(key, value)
	data, err := raftactor.EncodeProposal(id, req)
	if err != nil {
		c.t.Fatal(err)
	}
	ch := make(chan actors.Result, 1)
	c.kit.Root().Send(n.raftPID, &raftactor.Propose{ID: id, Data: data, Req: req, Reply: ch})
	return ch
}

// result waits (ticking) for a proposal's answer.
func (c *rcluster) result(what string, ch <-chan actors.Result) actors.Result {
	c.t.Helper()
	var res actors.Result
	c.tickUntil(what+" answered", 5*elecTicks, func() bool {
		select {
		case res = <-ch:
			return true
		default:
			return false
		}
	})
	return res
}

// put proposes through n and returns the revision it was written at.
func (c *rcluster) put(n *cnode, key, value string) int64 {
	c.t.Helper()
	res := c.result("put "+key, c.propose(n, key, value))
	if res.Err != nil {
		c.t.Fatalf("put %s through %x: %v", key, n.id, res.Err)
	}
	return res.Resp.(*pb.PutResponse).Header.Revision
}

func read(n *cnode, key string) (string, int64, bool) {
	r, err := n.reader.Range(&pb.RangeRequest{Key: []byte(key)})
	if err != nil || len(r.Kvs) == 0 {
		return "", 0, false
	}
	return string(r.Kvs[0].Value), r.Kvs[0].ModRevision, true
}

// waitApplied ticks until every node of ns reads key=value at rev.
func (c *rcluster) waitApplied(ns []*cnode, key, value string, rev int64) {
	c.t.Helper()
	c.tickUntil(fmt.Sprintf("%s=%s@%d applied everywhere", key, value, rev), 5*elecTicks, func() bool {
		for _, n := range ns {
			if v, r, ok := read(n, key); !ok || v != value || r != rev {
				return false
			}
		}
		return true
	})
}

// hardState reads the hard state n's WAL holds, from its files (the raft
// actor may be writing them).
func hardState(t *testing.T, n *cnode) *raftpb.HardState {
	t.Helper()
	w, err := raftwal.OpenForReading(raftwal.Options{FS: n.fs, Dir: "/wal"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	hs, err := w.HardState()
	if err != nil || hs == nil {
		t.Fatalf("hard state: %v %v", hs, err)
	}
	return hs
}

func (c *rcluster) noFatal() {
	c.t.Helper()
	for _, n := range c.nodes {
		select {
		case err := <-n.fatal:
			c.t.Errorf("node %x: fatal: %v", n.id, err)
		default:
		}
	}
}

// Exactly one leader is elected, every node agrees on it and on the term,
// and each store learned the three members from the bootstrap entries.
func TestClusterElection(t *testing.T) {
	c := startCluster(t)
	ticks := c.tickUntil("a leader all agree on", 20*elecTicks, func() bool { return agreedLeader(c.nodes) != 0 })
	leaders := 0
	term := c.nodes[0].view.Load().Term
	for _, n := range c.nodes {
		v := n.view.Load()
		if v.Lead == n.id {
			leaders++
		}
		if v.Term != term {
			t.Errorf("node %x at term %d, node %x at %d", n.id, v.Term, c.nodes[0].id, term)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders: %s", leaders, c.describe())
	}
	t.Logf("leader %x elected after %d ticks at term %d", agreedLeader(c.nodes), ticks, term)
	// Stay stable: no new election while the leader heartbeats.
	for i := 0; i < 3*elecTicks; i++ {
		c.tick()
	}
	time.Sleep(20 * time.Millisecond)
	if l := agreedLeader(c.nodes); l == 0 || c.nodes[0].view.Load().Term != term {
		t.Errorf("leadership moved without a failure: %s", c.describe())
	}
	c.tickUntil("bootstrap members applied", 5*elecTicks, func() bool {
		for _, n := range c.nodes {
			if len(n.reader.Members().List) != 3 {
				return false
			}
		}
		return true
	})
	c.noFatal()
}

// A put proposed to the leader is applied by every store at the same
// revision; one proposed to a follower is forwarded to the leader and
// answered by the follower's store.
func TestClusterReplication(t *testing.T) {
	c := startCluster(t)
	lead := c.waitLeader(c.nodes)
	rev := c.put(lead, "a", "1")
	c.waitApplied(c.nodes, "a", "1", rev)

	for i, f := range c.followers(lead) {
		k := fmt.Sprintf("via-follower-%d", i)
		res := c.result("put through follower", c.propose(f, k, "v"))
		if res.Err != nil {
			t.Fatalf("put through follower %x: %v", f.id, res.Err)
		}
		r := res.Resp.(*pb.PutResponse).Header.Revision
		c.waitApplied(c.nodes, k, "v", r)
		t.Logf("put through follower %x at revision %d", f.id, r)
	}
	// Many at once, through all three: every one answered once, at a
	// distinct revision, and the stores agree.
	chans := map[string]<-chan actors.Result{}
	for i := 0; i < 60; i++ {
		n := c.nodes[i%3]
		k := fmt.Sprintf("k%02d", i)
		chans[k] = c.propose(n, k, k)
	}
	revs := map[int64]string{}
	for k, ch := range chans {
		res := c.result("put "+k, ch)
		if res.Err != nil {
			t.Fatalf("put %s: %v", k, res.Err)
		}
		r := res.Resp.(*pb.PutResponse).Header.Revision
		if o, dup := revs[r]; dup {
			t.Fatalf("revision %d for %s and %s", r, o, k)
		}
		revs[r] = k
	}
	var want int64
	for r := range revs {
		want = max(want, r)
	}
	c.tickUntil("stores at the same revision", 5*elecTicks, func() bool {
		for _, n := range c.nodes {
			if n.reader.View().Rev != want {
				return false
			}
		}
		return true
	})
	for r, k := range revs {
		for _, n := range c.nodes {
			if v, got, ok := read(n, k); !ok || v != k || got != r {
				t.Errorf("node %x reads %s as %q@%d (%v), want @%d", n.id, k, v, got, ok, r)
			}
		}
	}
	c.noFatal()
}

// A follower cut off from the others cannot commit: its proposal is not
// answered while cut off (or is refused for lack of a leader); the other
// two go on committing. Healed, it catches up.
func TestClusterPartitionedFollower(t *testing.T) {
	c := startCluster(t)
	lead := c.waitLeader(c.nodes)
	f := c.followers(lead)[0]
	c.net.isolate(f.id, clusterIDs...)
	stuck := c.propose(f, "from-isolated", "x")
	majority := []*cnode{lead, c.followers(lead)[1]}
	rev := c.put(lead, "during", "1")
	c.waitApplied(majority, "during", "1", rev)
	// Past the election timeout the isolated follower drops its leader
	// (pre-vote: its term does not grow) and refuses proposals at once.
	term := lead.view.Load().Term
	c.tickUntil("isolated follower without a leader", 5*elecTicks, func() bool { return f.view.Load().Lead == 0 })
	res := c.result("proposal on the leaderless follower", c.propose(f, "refused", "x"))
	if res.Err == nil {
		t.Fatalf("proposal on an isolated follower succeeded")
	}
	t.Logf("isolated follower refuses with %v", res.Err)
	select {
	case r := <-stuck:
		t.Logf("proposal forwarded before the follower noticed: %+v", r)
	default:
	}
	c.net.heal()
	c.waitApplied(c.nodes, "during", "1", rev)
	if l := agreedLeader(c.nodes); l != lead.id || lead.view.Load().Term != term {
		t.Errorf("healing the follower disrupted the leader: %s (was %x at term %d)", c.describe(), lead.id, term)
	}
	if _, _, ok := read(lead, "refused"); ok {
		t.Error("the refused proposal was applied")
	}
	c.noFatal()
}

// A conf change removing a follower, proposed through the leader with a
// fresh CC.Id and no Context: its client is answered with the new
// membership, the remaining stores record the removal, and the two left
// go on committing.
func TestClusterRemoveMember(t *testing.T) {
	c := startCluster(t)
	lead := c.waitLeader(c.nodes)
	gone := c.followers(lead)[0]
	rest := []*cnode{lead, c.followers(lead)[1]}
	c.put(lead, "before", "1")

	typ := raftpb.ConfChangeRemoveNode
	cc := &raftpb.ConfChange{Type: &typ, NodeId: proto.Uint64(gone.id), Id: proto.Uint64(lead.ids.Next())}
	ch := make(chan actors.Result, 1)
	c.kit.Root().Send(lead.raftPID, &raftactor.ProposeConfChange{CC: cc, Reply: ch})
	res := c.result("remove member", ch)
	if res.Err != nil {
		t.Fatalf("remove %x: %v", gone.id, res.Err)
	}
	if ml, ok := res.Resp.(*pb.MemberListResponse); ok {
		for _, m := range ml.Members {
			if m.ID == gone.id {
				t.Errorf("the answer's member list still has %x", gone.id)
			}
		}
		if len(ml.Members) != 2 {
			t.Errorf("the answer lists %d members, want 2", len(ml.Members))
		}
	} else {
		t.Errorf("remove answered with %T, want *MemberListResponse", res.Resp)
	}
	c.tickUntil("removal applied on the remaining members", 5*elecTicks, func() bool {
		for _, n := range rest {
			ms := n.reader.Members()
			if len(ms.List) != 2 || ms.Get(gone.id) != nil || !ms.Removed[gone.id] {
				return false
			}
		}
		return true
	})
	// The two left commit on their own: cut the removed one off for good.
	c.net.isolate(gone.id, clusterIDs...)
	rev := c.put(lead, "after", "1")
	c.waitApplied(rest, "after", "1", rev)
	st := statusOf(t, c, lead)
	if _, ok := st.Match[gone.id]; ok {
		t.Errorf("the leader still tracks %x: %v", gone.id, st.Match)
	}
	// A quorum of the two: the leader keeps leading past election timeouts.
	term := lead.view.Load().Term
	for i := 0; i < 3*elecTicks; i++ {
		c.tick()
	}
	time.Sleep(20 * time.Millisecond)
	if agreedLeader(rest) != lead.id || lead.view.Load().Term != term {
		t.Errorf("leadership moved after the removal: %s", c.describe())
	}
	c.noFatal()
}

func statusOf(t *testing.T, c *rcluster, n *cnode) raftactor.StatusInfo {
	t.Helper()
	st, err := actors.Ask(ctxTimeout(t), c.kit.Root(), n.raftPID, func(r chan<- raftactor.StatusInfo) any {
		return &raftactor.Status{Reply: r}
	})
	if err != nil {
		t.Fatalf("status of %x: %v", n.id, err)
	}
	return st
}

// A follower's raft actor panics: its Guardian restarts it from pebble with
// its hard state (term, vote, commit), the leader keeps leading at the
// same term, and the restarted follower goes on replicating and
// forwarding proposals.
func TestClusterFollowerRaftRestart(t *testing.T) {
	c := startCluster(t)
	lead := c.waitLeader(c.nodes)
	f := c.followers(lead)[0]
	for i := 0; i < 5; i++ {
		rev := c.put(lead, fmt.Sprintf("pre%d", i), "v")
		c.waitApplied(c.nodes, fmt.Sprintf("pre%d", i), "v", rev)
	}
	term := lead.view.Load().Term
	before := hardState(t, f)
	t.Logf("follower %x hard state before the panic: term %d vote %x commit %d", f.id, before.GetTerm(), before.GetVote(), before.GetCommit())

	f.panicOnStatus.Store(true)
	c.kit.Root().Send(f.raftPID, &raftactor.Status{Reply: make(chan raftactor.StatusInfo, 1)})
	se := c.ev.ExpectSupervisorEvent(wait)
	if _, ok := se.Reason.(testkit.InjectedPanic); !ok || !se.Child.Equal(f.raftPID) || se.Directive != actor.RestartDirective {
		t.Fatalf("supervisor event %+v", se)
	}
	// Restarted from pebble: same term, same vote, nothing committed lost.
	// Status is answered by the new instance (the panicking message was
	// dropped; Started comes first in the restarted mailbox).
	var st raftactor.StatusInfo
	c.tickUntil("restarted follower follows the leader", 5*elecTicks, func() bool {
		st = statusOf(t, c, f)
		return st.Lead == lead.id
	})
	after := hardState(t, f)
	if st.Term != term || after.GetTerm() != before.GetTerm() || after.GetVote() != before.GetVote() || after.GetCommit() < before.GetCommit() {
		t.Errorf("restarted follower: term %d (leader's %d), hard state %v, was %v", st.Term, term, after, before)
	}
	if agreedLeader(c.nodes) != lead.id || lead.view.Load().Term != term {
		t.Errorf("the leader changed across the follower's restart: %s", c.describe())
	}
	// It rejoins: replicates the leader's writes and forwards its own.
	rev := c.put(lead, "after-restart", "1")
	c.waitApplied(c.nodes, "after-restart", "1", rev)
	res := c.result("put through the restarted follower", c.propose(f, "via-restarted", "1"))
	if res.Err != nil {
		t.Fatalf("put through the restarted follower: %v", res.Err)
	}
	c.waitApplied(c.nodes, "via-restarted", "1", res.Resp.(*pb.PutResponse).Header.Revision)
	if got := c.ev.SupervisorEvents(); got != 1 {
		t.Errorf("%d supervisor events, want 1", got)
	}
	c.noFatal()
}

// The leader's raft actor panics: it comes back from pebble as a follower
// of the same term having voted for itself, so it cannot vote for anyone
// else in that term; the cluster elects a leader at a later term (maybe
// it again) and no acknowledged write is lost.
func TestClusterLeaderRaftRestart(t *testing.T) {
	c := startCluster(t)
	lead := c.waitLeader(c.nodes)
	revs := map[string]int64{}
	for i := 0; i < 5; i++ {
		k := fmt.Sprintf("pre%d", i)
		revs[k] = c.put(lead, k, "v")
	}
	before := hardState(t, lead)
	lead.panicOnStatus.Store(true)
	c.kit.Root().Send(lead.raftPID, &raftactor.Status{Reply: make(chan raftactor.StatusInfo, 1)})
	se := c.ev.ExpectSupervisorEvent(wait)
	if !se.Child.Equal(lead.raftPID) || se.Directive != actor.RestartDirective {
		t.Fatalf("supervisor event %+v", se)
	}
	after := hardState(t, lead)
	if after.GetTerm() != before.GetTerm() || after.GetVote() != before.GetVote() || after.GetVote() != lead.id {
		t.Errorf("restarted leader's hard state %v, was %v", after, before)
	}
	// A leader of a later term: nobody leads the old one any more (the
	// restarted node is a follower of it, voted for itself).
	c.tickUntil("a leader at a later term", 20*elecTicks, func() bool {
		l := agreedLeader(c.nodes)
		return l != 0 && c.node(l).view.Load().Term > before.GetTerm()
	})
	nl := c.node(agreedLeader(c.nodes))
	t.Logf("after the leader %x restarted: leader %x at term %d (was %d)", lead.id, nl.id, nl.view.Load().Term, before.GetTerm())
	rev := c.put(nl, "after", "1")
	c.waitApplied(c.nodes, "after", "1", rev)
	for k, r := range revs {
		for _, n := range c.nodes {
			if v, got, ok := read(n, k); !ok || v != "v" || got != r {
				t.Errorf("node %x lost acknowledged %s@%d (%q@%d %v)", n.id, k, r, v, got, ok)
			}
		}
	}
	c.noFatal()
}

// Raft's Bootstrap puts the bootstrap members in its live configuration
// unconditionally, so the store must record them all, even ones its rules
// would refuse (here every member has the same peer URL). Otherwise the
// stores record one member while raft runs with three, and a raft actor
// restarted from pebble rebuilds its configuration from the store's
// verdicts, finds itself the lone voter and commits alone: split brain.
// (node.Start refuses duplicate peer URLs; this guards the layers below.)
func TestClusterBootstrapNeverRefused(t *testing.T) {
	c := startClusterURLs(t, func(int) string { return "http://x" })
	lead := c.waitLeader(c.nodes)
	c.put(lead, "a", "1")
	for _, n := range c.nodes {
		if got := len(n.reader.Members().List); got != 3 {
			t.Errorf("node %x: store records %d members, raft runs with 3 voters", n.id, got)
		}
	}
	// Restart the raft actor of the first bootstrap member (lowest id).
	first := c.nodes[0]
	if first == lead {
		// Move leadership off it first, so the restart does not itself
		// cause an election.
		c.kit.Root().Send(lead.raftPID, &raftactor.TransferLeader{Target: c.nodes[1].id})
		lead = c.waitLeaderNot(first.id)
	}
	first.panicOnStatus.Store(true)
	c.kit.Root().Send(first.raftPID, &raftactor.Status{Reply: make(chan raftactor.StatusInfo, 1)})
	c.ev.ExpectSupervisorEvent(wait)
	for i := 0; i < 3*elecTicks; i++ {
		c.tick()
	}
	res := c.result("put through the restarted node", c.propose(first, "split", "1"))
	t.Logf("after the restart of %x: put through it: %v; %s", first.id, res.Err, c.describe())
	fv := first.view.Load()
	for _, o := range c.nodes[1:] {
		if ov := o.view.Load(); fv.Lead == first.id && ov.Lead == o.id && ov.Term == fv.Term {
			t.Errorf("split brain: %x and %x both lead at term %d; the put through %x answered %v; %s",
				first.id, o.id, fv.Term, first.id, res.Err, c.describe())
		}
	}
}

// waitLeaderNot waits for a leader every node agrees on, other than not.
func (c *rcluster) waitLeaderNot(not uint64) *cnode {
	c.t.Helper()
	c.tickUntil("a new leader", 20*elecTicks, func() bool {
		l := agreedLeader(c.nodes)
		return l != 0 && l != not
	})
	return c.node(agreedLeader(c.nodes))
}

// A follower cut off while the leader truncates its log past what the
// follower has gets a snapshot when the link heals: the leader's
// checkpoint is installed by its store, raft records the snapshot, and it
// goes on from there with the same data as the others.
func TestClusterSnapshotInstall(t *testing.T) {
	c := startClusterWith(t, func(i int) string { return fmt.Sprintf("http://n%d", i) }, func(cfg *raftactor.Config) {
		cfg.SnapshotCount, cfg.CatchUp = 20, 5
	})
	lead := c.waitLeader(c.nodes)
	f := c.followers(lead)[0]
	c.put(lead, "before", "0")
	c.net.isolate(f.id, clusterIDs...)
	var rev int64
	for i := 0; i < 80; i++ {
		rev = c.put(lead, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	if first, _, ok := read(f, "k79"); ok {
		t.Fatalf("the isolated follower has k79=%s", first)
	}
	c.net.heal()
	c.waitApplied(c.nodes, "k79", "79", rev)
	for _, n := range c.nodes {
		for _, k := range []string{"before", "k00", "k40"} {
			if _, _, ok := read(n, k); !ok {
				t.Fatalf("node %x lacks %s after the snapshot", n.id, k)
			}
		}
	}
	sameHash(t, lead, f)
	// It takes writes after the snapshot like the others.
	rev = c.put(lead, "after", "1")
	c.waitApplied(c.nodes, "after", "1", rev)
	if snaps := c.net.snapshots.Load(); snaps == 0 {
		t.Fatal("no snapshot was sent: the follower caught up from the log")
	}
	// The log after the snapshot is the entries since.
	if first, last, n := raftLogBounds(f.wal); n == 0 || first <= 80 {
		t.Fatalf("follower's log after a snapshot past its 80 missed puts: entries %d..%d (%d)", first, last, n)
	}
	c.noFatal()
}

// A follower cut off while the leader's memory keeps only a few entries
// (a tiny LogBytes) but its durable log keeps CatchUp entries is sent
// the entries it missed, read from pebble, not a snapshot.
func TestClusterCatchUpFromDurableLog(t *testing.T) {
	c := startClusterWith(t, func(i int) string { return fmt.Sprintf("http://n%d", i) }, func(cfg *raftactor.Config) {
		cfg.SnapshotCount, cfg.CatchUp, cfg.LogBytes = 20, 100, 2000
	})
	lead := c.waitLeader(c.nodes)
	f := c.followers(lead)[0]
	c.put(lead, "before", "0")
	c.net.isolate(f.id, clusterIDs...)
	var rev int64
	value := strings.Repeat("v", 200)
	for i := 0; i < 40; i++ {
		rev = c.put(lead, fmt.Sprintf("k%02d", i), value)
	}
	c.net.heal()
	c.waitApplied(c.nodes, "k39", value, rev)
	if snaps := c.net.snapshots.Load(); snaps != 0 {
		t.Fatalf("%d snapshots sent: the follower was not caught up from the durable log", snaps)
	}
	sameHash(t, lead, f)
	c.noFatal()
}

// sameHash fails the test unless f's store hashes as lead's.
func sameHash(t *testing.T, lead, f *cnode) {
	t.Helper()
	lh, _, err := lead.reader.Hash()
	if err != nil {
		t.Fatal(err)
	}
	fh, _, err := f.reader.Hash()
	if err != nil || fh != lh {
		t.Fatalf("follower hash %x (%v), leader %x", fh, err, lh)
	}
}

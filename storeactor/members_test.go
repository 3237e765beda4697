package storeactor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// confChange applies one conf change entry and returns the store's answer
// to its client and the verdict it reports to raft.
func (h *harness) confChange(cc *raftpb.ConfChange) (actors.Result, storeactor.ConfApplied) {
	h.t.Helper()
	return h.confChangeAt(2, cc)
}

// confChangeAt applies cc in an entry of term (1: a bootstrap entry).
func (h *harness) confChangeAt(term uint64, cc *raftpb.ConfChange) (actors.Result, storeactor.ConfApplied) {
	h.t.Helper()
	h.index++
	reply := make(chan actors.Result, 1)
	h.applyRaw(storeactor.Entry{Index: h.index, Term: term, ConfChange: cc, Reply: reply})
	res := <-reply
	applied := testkit.Expect[*storeactor.Applied](h.raft, wait)
	if len(applied.Conf) != 1 || applied.Conf[0].Index != h.index {
		h.t.Fatalf("Applied %+v: want one verdict for %d", applied, h.index)
	}
	return res, applied.Conf[0]
}

func addNode(id uint64, learner bool, urls ...string) *raftpb.ConfChange {
	t := raftpb.ConfChangeAddNode
	if learner {
		t = raftpb.ConfChangeAddLearnerNode
	}
	return &raftpb.ConfChange{Type: t.Enum(), NodeId: proto.Uint64(id),
		Context: storeactor.EncodeMemberContext(&pb.Member{ID: id, Name: "", PeerURLs: urls})}
}

// Conf changes are decided with etcd's rules; a refused one reaches raft
// as a no-op (node id 0) and changes nothing; verdicts survive restarts.
func TestConfChangeRules(t *testing.T) {
	h := newHarness(t)
	check := func(cc *raftpb.ConfChange, wantErr error) storeactor.ConfApplied {
		t.Helper()
		res, v := h.confChange(cc)
		if wantErr == nil && res.Err != nil || wantErr != nil && res.Err != wantErr {
			t.Fatalf("%v: error %v, want %v", cc, res.Err, wantErr)
		}
		if (wantErr != nil) != (v.CC.GetNodeId() == 0) {
			t.Fatalf("%v: verdict %v", cc, v.CC)
		}
		return v
	}
	// Bootstrap entries (term 1) are never refused: raft already runs with
	// their members.
	for _, cc := range []*raftpb.ConfChange{addNode(1, false, "http://a:1"), addNode(2, false, "http://a:1")} {
		if res, v := h.confChangeAt(1, cc); res.Err != nil || v.CC.GetNodeId() != cc.GetNodeId() {
			t.Fatalf("bootstrap %v: %v, verdict %v", cc, res.Err, v.CC)
		}
	}
	check(&raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(2),
		Context: storeactor.EncodeMemberContext(&pb.Member{ID: 2, PeerURLs: []string{"http://b:1"}})}, nil)
	check(addNode(2, false, "http://c:1"), rpctypes.ErrGRPCMemberExist)
	check(addNode(3, false, "http://b:1"), rpctypes.ErrGRPCPeerURLExist)
	check(addNode(3, true, "http://c:1"), nil)
	check(addNode(4, true, "http://d:1"), rpctypes.ErrGRPCTooManyLearners)
	promote := func(id uint64) *raftpb.ConfChange {
		return &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id), Context: storeactor.PromoteContext}
	}
	check(promote(2), rpctypes.ErrGRPCMemberNotLearner)
	check(promote(9), rpctypes.ErrGRPCMemberNotFound)
	check(promote(3), nil)
	remove := &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(2)}
	v := check(remove, nil)
	check(remove, rpctypes.ErrGRPCMemberNotFound)
	check(addNode(2, false, "http://b:1"), rpctypes.ErrGRPCMemberNotFound) // a removed id never comes back

	ms := h.reader.Members()
	if len(ms.List) != 2 || ms.List[0].ID != 1 || ms.List[1].ID != 3 || ms.List[1].IsLearner || !ms.Removed[2] {
		t.Fatalf("members %v removed %v", ms.List, ms.Removed)
	}
	// After a restart the store reports the recorded verdict of an entry
	// it skips, so raft rebuilds the same configuration.
	h.restart()
	h.applyRaw(storeactor.Entry{Index: v.Index, Term: 2, ConfChange: remove})
	again := testkit.Expect[*storeactor.Applied](h.raft, wait)
	if len(again.Conf) != 1 || again.Conf[0].CC.GetNodeId() != 2 || again.Conf[0].CC.GetType() != raftpb.ConfChangeRemoveNode {
		t.Fatalf("replayed verdict %+v", again.Conf)
	}
}

// A leader's checkpoint installed on another store replaces its whole key
// space: keys, leases, members; the other store's own keys are gone.
func TestInstallSnapshot(t *testing.T) {
	fs := vfs.NewMem()
	open := func(dir string) func(*storeactor.Config) { return onMemFS(t, fs, dir) }
	leader := newHarness(t, open("/leader"))
	leader.confChange(addNode(1, false, "http://a:1"))
	leader.put("a", "1")
	leader.put("b", "2")
	leader.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 60}})
	leader.put("a", "3")
	follower := newHarness(t, open("/follower"))
	follower.put("stale", "x")

	shipCheckpoint(t, leader.cfg.DB, fs, "/recv/1")
	reply := make(chan error, 1)
	follower.kit.Root().Send(follower.pid, &storeactor.InstallSnapshot{FS: fs, Dir: "/recv/1", Reply: reply})
	if err := <-reply; err != nil {
		t.Fatal(err)
	}
	lv, fv := leader.reader.View(), follower.reader.View()
	if fv.Rev != lv.Rev || fv.Applied != lv.Applied {
		t.Fatalf("follower at rev %d index %d, leader %d %d", fv.Rev, fv.Applied, lv.Rev, lv.Applied)
	}
	lh, _, _ := leader.reader.Hash()
	fh, _, _ := follower.reader.Hash()
	if lh != fh {
		t.Fatalf("hash %x, leader %x", fh, lh)
	}
	if got := follower.get("a", 0); len(got) != 1 || !strings.HasPrefix(got[0], `"a"="3"`) {
		t.Fatalf("a: %v", got)
	}
	if got := follower.get("stale", 0); len(got) != 0 {
		t.Fatalf("stale key survived: %v", got)
	}
	if _, ok, err := follower.reader.Lease(7); !ok || err != nil {
		t.Fatalf("lease 7 missing: %v", err)
	}
	if ms := follower.reader.Members(); len(ms.List) != 1 || ms.List[0].ID != 1 {
		t.Fatalf("members %v", ms.List)
	}
	// It goes on applying after the snapshot's index.
	follower.index = fv.Applied
	follower.put("c", "4")
	if got := follower.get("c", 0); len(got) != 1 {
		t.Fatalf("c: %v", got)
	}
}

// A store that panics while installing a snapshot (here: the checkpoint's
// revision record cannot be decoded) answers the waiting raft actor with an
// error at once, instead of leaving it blocked until its install timeout.
func TestInstallSnapshotPanicAnswersTheWaiter(t *testing.T) {
	fs := vfs.NewMem()
	leader := newHarness(t, onMemFS(t, fs, "/leader"))
	leader.put("a", "1")
	leader.stop()
	storeactor.BreakRevision(leader.cfg.DB)
	shipCheckpoint(t, leader.cfg.DB, fs, "/recv/1")
	follower := newHarness(t, onMemFS(t, fs, "/follower"))
	reply := make(chan error, 1)
	follower.kit.Root().Send(follower.pid, &storeactor.InstallSnapshot{FS: fs, Dir: "/recv/1", Reply: reply})
	select {
	case err := <-reply:
		if err == nil || !strings.Contains(err.Error(), "panic") {
			t.Fatalf("install answered %v, want the panic as an error", err)
		}
	case <-time.After(wait):
		t.Fatal("no answer from a store that panicked during the install")
	}
}

// A read that overlaps a snapshot install answers from the state before it
// or from the state after it. The installed data, read under the View
// still published, is neither: the follower's revision there needs a
// version the leader's compaction removed.
func TestReadDuringSnapshotInstallSeesOneState(t *testing.T) {
	fs := vfs.NewMem()
	leader := newHarness(t, onMemFS(t, fs, "/leader"))
	for i := 1; i <= 6; i++ {
		leader.put("a", fmt.Sprint(i)) // revisions 2..7
	}
	leader.must(compactReq(6, true))
	eventually(t, "physical compaction", func() bool { return leader.reader.View().CompactDone == 6 })
	shipCheckpoint(t, leader.cfg.DB, fs, "/recv/1")
	follower := newHarness(t, onMemFS(t, fs, "/follower"))
	follower.put("a", "1") // revision 2, as on the leader

	type answer struct {
		resp *pb.RangeResponse
		err  error
	}
	answered := make(chan answer, 1)
	storeactor.SetAfterIngest(func() {
		go func() {
			resp, err := follower.reader.Range(&pb.RangeRequest{Key: []byte("a")})
			answered <- answer{resp, err}
		}()
		// Give the read time to run inside the window (it waits there).
		time.Sleep(100 * time.Millisecond)
	})
	t.Cleanup(func() { storeactor.SetAfterIngest(nil) })
	reply := make(chan error, 1)
	follower.kit.Root().Send(follower.pid, &storeactor.InstallSnapshot{FS: fs, Dir: "/recv/1", Reply: reply})
	if err := <-reply; err != nil {
		t.Fatal(err)
	}
	var a answer
	select {
	case a = <-answered:
	case <-time.After(wait):
		t.Fatal("the read never finished")
	}
	if a.err != nil {
		t.Fatalf("read during the install: %v", a.err)
	}
	got := fmt.Sprint(a.resp.Header.Revision, kvs(a.resp.Kvs))
	before, after := fmt.Sprint(2, []string{kvAt("a", "1", 2, 2, 1)}), fmt.Sprint(7, []string{kvAt("a", "6", 2, 7, 6)})
	if got != before && got != after {
		t.Fatalf("read during the install got %s, want %s or %s", got, before, after)
	}
}

// onMemFS opens the store's DB at dir on fs (closed at the test's end).
func onMemFS(t *testing.T, fs vfs.FS, dir string) func(*storeactor.Config) {
	return func(c *storeactor.Config) {
		db, err := storeactor.OpenPebbleFS(fs, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c.DB = db
	}
}

// shipCheckpoint takes a checkpoint of db and receives it at dir, as a
// follower receives the leader's.
func shipCheckpoint(t *testing.T, db *pebble.DB, fs vfs.FS, dir string) {
	t.Helper()
	data, err := storeactor.NewSnapshotter(db, fs, "/snap").Open()
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	if err := storeactor.ReceiveCheckpoint(fs, dir, data); err != nil {
		t.Fatal(err)
	}
}

// The removals --force-new-cluster commits (raftactor.ForceNewCluster:
// RemoveNode entries without request id or context) remove each member
// the log counts, learners included, and are logged with etcd's lines,
// so the operator sees who left; one for an id the store never accepted
// (the log counts refused changes too) is refused as a no-op, unlogged.
// The survivor is promoted first when it was a learner.
func TestForcedRemovalsShrinkTheMembership(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	h := newHarness(t, func(c *storeactor.Config) { c.Logger = zap.New(core) })
	for _, cc := range []*raftpb.ConfChange{addNode(1, false, "http://a:1"), addNode(2, false, "http://b:1")} {
		h.confChangeAt(1, cc)
	}
	h.confChange(addNode(3, true, "http://c:1"))
	logs.TakeAll()

	forced := func(typ raftpb.ConfChangeType, id uint64, ctx []byte) storeactor.ConfApplied {
		_, v := h.confChangeAt(5, &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(id), Context: ctx})
		return v
	}
	if v := forced(raftpb.ConfChangeAddNode, 3, storeactor.PromoteContext); v.CC.GetNodeId() != 3 {
		t.Fatalf("promotion of the learner survivor refused: %v", v.CC)
	}
	for _, id := range []uint64{1, 2} {
		if v := forced(raftpb.ConfChangeRemoveNode, id, nil); v.CC.GetNodeId() != id {
			t.Fatalf("removal of %d refused: %v", id, v.CC)
		}
	}
	if v := forced(raftpb.ConfChangeRemoveNode, 9, nil); v.CC.GetNodeId() != 0 {
		t.Fatalf("removal of a non-member accepted: %v", v.CC)
	}
	ms := h.reader.Members()
	if len(ms.List) != 1 || ms.List[0].ID != 3 || ms.List[0].IsLearner || !ms.Removed[1] || !ms.Removed[2] {
		t.Fatalf("members %v removed %v, want only 3, a voter", ms.List, ms.Removed)
	}
	var got []string
	for _, e := range logs.All() {
		f := e.ContextMap()
		if e.Message == "promote member" {
			got = append(got, fmt.Sprintf("promote member %v", f["promoted-member-id"]))
		} else {
			got = append(got, fmt.Sprintf("%s %v %v", e.Message, f["removed-remote-peer-id"], f["removed-remote-peer-urls"]))
		}
	}
	want := "promote member 3|removed member 1 [http://a:1]|removed member 2 [http://b:1]"
	if strings.Join(got, "|") != want {
		t.Errorf("logged\n %s\nwant\n %s", strings.Join(got, "|"), want)
	}
}

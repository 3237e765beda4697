package storeactor_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// compactFixture writes, at revisions 2..9:
//
//	a=1 a=2 a=3 b=1 b=2 (delete b) c=1 a=4
func compactFixture(h *harness) {
	h.t.Helper()
	h.put("a", "1")         // 2
	h.put("a", "2")         // 3
	h.put("a", "3")         // 4
	h.put("b", "1")         // 5
	h.put("b", "2")         // 6
	h.must(delReq("b", "")) // 7
	h.put("c", "1")         // 8
	h.put("a", "4")         // 9
}

func TestCompactionRevisions(t *testing.T) {
	h := newHarness(t)
	compactFixture(h)

	cases := []struct {
		rev  int64
		want error
	}{
		{10, rpctypes.ErrGRPCFutureRev},
		{5, nil},
		{5, rpctypes.ErrGRPCCompacted}, // again
		{4, rpctypes.ErrGRPCCompacted}, // backwards
		{9, nil},                       // up to the current revision
	}
	for _, c := range cases {
		res := h.do(compactReq(c.rev, false))
		if c.want != nil {
			wantErr(t, fmt.Sprintf("compact %d", c.rev), res.Err, c.want)
			continue
		}
		if res.Err != nil {
			t.Fatalf("compact %d: %v", c.rev, res.Err)
		}
		if r := res.Resp.(*pb.CompactionResponse); r.Header.Revision != 9 {
			t.Fatalf("compact %d: header revision %d, want the current 9", c.rev, r.Header.Revision)
		}
		if v := h.reader.View(); v.CompactRev != c.rev || v.Rev != 9 {
			t.Fatalf("after compact %d: view %+v (a compaction is not a revision)", c.rev, *v)
		}
	}
}

func TestReadsAroundTheCompactionPoint(t *testing.T) {
	h := newHarness(t)
	compactFixture(h)
	h.must(compactReq(6, true)) // reads must be right whether or not the physical work is done

	for rev := int64(1); rev < 6; rev++ {
		_, err := h.reader.Range(&pb.RangeRequest{Key: []byte("a"), Revision: rev})
		wantErr(t, fmt.Sprintf("range at %d", rev), err, rpctypes.ErrGRPCCompacted)
		res := h.do(&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("a"), Revision: rev}})
		wantErr(t, fmt.Sprintf("applied range at %d", rev), res.Err, rpctypes.ErrGRPCCompacted)
	}
	all := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}
	want := map[int64][]string{
		6: {kvAt("a", "3", 2, 4, 3), kvAt("b", "2", 5, 6, 2)}, // exactly at the compaction point
		7: {kvAt("a", "3", 2, 4, 3)},
		8: {kvAt("a", "3", 2, 4, 3), kvAt("c", "1", 8, 8, 1)},
		9: {kvAt("a", "4", 2, 9, 4), kvAt("c", "1", 8, 8, 1)},
		0: {kvAt("a", "4", 2, 9, 4), kvAt("c", "1", 8, 8, 1)},
	}
	for rev, w := range want {
		all.Revision = rev
		if got := kvs(h.rng(all).Kvs); !equal(got, w) {
			t.Errorf("range all at %d = %q, want %q", rev, got, w)
		}
	}
	// A txn reading at the compaction point works, below it fails.
	tr, err := h.reader.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{opGet("b", "", 6)}})
	if err != nil || len(tr.Responses[0].GetResponseRange().Kvs) != 1 {
		t.Fatalf("txn at compact revision: %v %v", tr, err)
	}
}

// Physical compaction deletes every version no read at or above the
// compaction revision can see, keeps the newest one (unless it is a
// tombstone) and drops the history up to there.
func TestPhysicalCompactionKeepsLatest(t *testing.T) {
	h := newHarness(t)
	compactFixture(h)
	if n := storeactor.StoredVersionCount(h.db); n != 8 {
		t.Fatalf("%d versions before compaction", n)
	}
	h.must(compactReq(8, true))
	// The gateway answers physical=true once the View says so.
	eventually(t, "physical compaction", func() bool { return h.reader.View().CompactDone == 8 })
	if d := storeactor.CompactDone(h.db); d != 8 {
		t.Fatalf("compact done = %d in pebble when the View said 8", d)
	}
	mains := func(k string) []int64 {
		var out []int64
		for _, v := range storeactor.StoredVersions(h.db, k) {
			out = append(out, v.Main)
		}
		return out
	}
	if got := mains("a"); fmt.Sprint(got) != "[9 4]" {
		t.Errorf("a versions = %v, want [9 4] (newest above and newest at/below the point)", got)
	}
	if got := mains("b"); len(got) != 0 {
		t.Errorf("b versions = %v, want none: its newest version at the point is a tombstone", got)
	}
	if got := mains("c"); fmt.Sprint(got) != "[8]" {
		t.Errorf("c versions = %v", got)
	}
	if hs := storeactor.History(h.db, 0, 7); len(hs) != 0 {
		t.Errorf("history below 8 survived: %+v", hs)
	}
	// A watch may start at the compaction revision: its history stays.
	if hs := storeactor.History(h.db, 8, 8); len(hs) != 1 || hs[0].Key != "c" {
		t.Errorf("history at 8 = %+v", hs)
	}
	if hs := storeactor.History(h.db, 9, 9); len(hs) != 1 || hs[0].Key != "a" {
		t.Errorf("history at 9 = %+v", hs)
	}
	// Reads at and above the point are unchanged.
	if got := h.get("a", 8); !equal(got, []string{kvAt("a", "3", 2, 4, 3)}) {
		t.Errorf("a at 8 = %v", got)
	}
	if got := h.get("a", 0); !equal(got, []string{kvAt("a", "4", 2, 9, 4)}) {
		t.Errorf("a = %v", got)
	}
	if got := h.get("b", 8); len(got) != 0 {
		t.Errorf("b at 8 = %v", got)
	}

	// A later compaction handles what changed since.
	h.put("a", "5")              // 10
	h.put("b", "again")          // 11: version restarts, create = 11
	h.must(delReq("c", ""))      // 12
	h.must(compactReq(12, true)) // physical
	eventually(t, "second physical compaction", func() bool { return h.reader.View().CompactDone == 12 })
	if got := mains("a"); fmt.Sprint(got) != "[10]" {
		t.Errorf("a versions after second compaction = %v", got)
	}
	if got := mains("c"); len(got) != 0 {
		t.Errorf("c versions after second compaction = %v", got)
	}
	if got := h.get("b", 0); !equal(got, []string{kvAt("b", "again", 11, 11, 1)}) {
		t.Errorf("b = %v", got)
	}
	if hs := storeactor.History(h.db, 0, 12); len(hs) != 1 || hs[0].Main != 12 || !hs[0].Tombstone {
		t.Errorf("history after second compaction = %+v, want only the delete at 12", hs)
	}
	// Writes continue at the next revision.
	if pr := h.put("a", "6"); pr.Header.Revision != 13 {
		t.Fatalf("put after compaction: revision %d", pr.Header.Revision)
	}
}

// Keys with more doomed versions than compaction deletes one by one (it
// then writes a range tombstone) end the same as keys with few.
func TestPhysicalCompactionOfManyVersions(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 40; i++ {
		h.put("many", fmt.Sprint(i)) // 2..41
	}
	for i := 0; i < 30; i++ {
		h.put("gone", fmt.Sprint(i)) // 42..71
	}
	h.must(delReq("gone", "")) // 72
	h.put("few", "1")          // 73
	h.put("few", "2")          // 74
	h.put("many", "last")      // 75
	h.must(compactReq(74, true))
	eventually(t, "physical compaction", func() bool { return h.reader.View().CompactDone == 74 })
	for key, want := range map[string]string{"many": "[75 41]", "gone": "[]", "few": "[74]"} {
		var mains []int64
		for _, v := range storeactor.StoredVersions(h.db, key) {
			mains = append(mains, v.Main)
		}
		if fmt.Sprint(mains) != want && !(want == "[]" && len(mains) == 0) {
			t.Errorf("%s versions = %v, want %s", key, mains, want)
		}
	}
	if got := h.get("many", 74); !equal(got, []string{kvAt("many", "39", 2, 41, 40)}) {
		t.Errorf("many at 74 = %v", got)
	}
	if n := storeactor.LatestCount(h.db); n != 2 {
		t.Errorf("%d latest entries, want 2 (many, few)", n)
	}
}

// With a tiny chunk, physical compaction takes many steps interleaved with
// applies; a physical=true client is answered only once all are done,
// while physical=false is answered at once.
func TestPhysicalCompactionRepliesWhenDone(t *testing.T) {
	h := newHarness(t, func(c *storeactor.Config) { c.CompactChunk = 1 })
	const n = 60
	for i := 0; i < n; i++ {
		h.put(fmt.Sprintf("k%02d", i%6), fmt.Sprint(i)) // revisions 2..61
	}
	target := h.rev()

	// physical=true is answered at apply like any request; the gateway
	// then waits on the published View until the physical work is done.
	// The View must say "done" only once the old versions are gone.
	phys := make(chan actors.Result, 1)
	h.index++
	h.applyRaw(storeactor.Entry{Index: h.index, Term: 1, Req: compactReq(target, true), Reply: phys})
	select {
	case r := <-phys:
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	case <-time.After(wait):
		t.Fatal("no reply to the compaction")
	}
	if a := expectApplied(t, h); a != h.index {
		t.Fatalf("Applied %d", a)
	}
	eventually(t, "published compaction progress", func() bool { return h.reader.View().CompactDone == target })
	if d := storeactor.CompactDone(h.db); d != target {
		t.Fatalf("View says compaction done at %d but pebble has %d", target, d)
	}
	h.put("late", "1")
	if c := storeactor.StoredVersionCount(h.db); c != 7 { // 6 keys + "late"
		t.Fatalf("%d versions after physical compaction, want 7", c)
	}

	// physical=false answers from the apply, the work finishes later.
	for i := 0; i < n; i++ {
		h.put(fmt.Sprintf("k%02d", i%6), fmt.Sprint(i))
	}
	target = h.rev()
	if res := h.do(compactReq(target, false)); res.Err != nil {
		t.Fatal(res.Err)
	}
	eventually(t, "background compaction", func() bool { return storeactor.CompactDone(h.db) == target })
	if c := storeactor.StoredVersionCount(h.db); c != 7 {
		t.Fatalf("%d versions after compaction, want 7", c)
	}
}

// A stopped and re-created Store reloads its revision, compaction point and
// applied index from pebble, skips entries it has applied, resumes an
// unfinished physical compaction and keeps counting revisions.
func TestStoreRestartReloadsState(t *testing.T) {
	h := newHarness(t, func(c *storeactor.Config) { c.CompactChunk = 1 })
	for i := 0; i < 40; i++ {
		h.put(fmt.Sprintf("k%d", i%4), fmt.Sprint(i)) // 2..41
	}
	h.must(delReq("k3", "")) // 42
	// Start a long compaction and stop the store right away: it may be
	// interrupted anywhere.
	if res := h.do(compactReq(41, false)); res.Err != nil {
		t.Fatal(res.Err)
	}
	before := *h.reader.View()
	h.restart()

	// Physical compaction may progress between the two looks.
	if v := *h.reader.View(); v.Rev != before.Rev || v.CompactRev != before.CompactRev ||
		v.Applied != before.Applied || v.AppliedTerm != before.AppliedTerm || v.CompactDone < before.CompactDone {
		t.Fatalf("view after restart %+v, want %+v", v, before)
	}
	if before.Rev != 42 || before.CompactRev != 41 || before.Applied != 42 {
		t.Fatalf("view %+v", before)
	}
	eventually(t, "resumed compaction", func() bool { return storeactor.CompactDone(h.db) == 41 })
	if c := storeactor.StoredVersionCount(h.db); c != 5 { // k0..k3 latest + k3's tombstone at 42
		t.Fatalf("%d versions after the resumed compaction, want 5", c)
	}
	_, err := h.reader.Range(&pb.RangeRequest{Key: []byte("k0"), Revision: 40})
	wantErr(t, "read below the reloaded compaction point", err, rpctypes.ErrGRPCCompacted)
	if got := h.get("k3", 41); !equal(got, []string{kvAt("k3", "39", 5, 41, 10)}) {
		t.Fatalf("k3 at 41 = %v", got)
	}

	// Entries it already applied are skipped (as the raft actor re-sends
	// them after its own restart): no revision; the store says how far it
	// has applied (else raft would replay again and again), and a client
	// still waiting is told the outcome is unknown (the instance that
	// applied the entry stopped before answering it).
	ch := make(chan actors.Result, 1)
	h.applyRaw(storeactor.Entry{Index: 42, Term: 1, Req: putReq("dup", "1"), Reply: ch})
	if got := expectApplied(t, h); got != 42 {
		t.Fatalf("Applied{%d} for a replay of what was applied, want 42", got)
	}
	if r := <-ch; !errors.Is(r.Err, rpctypes.ErrGRPCTimeout) {
		t.Fatalf("client of an entry applied before the restart got %+v, want %v", r, rpctypes.ErrGRPCTimeout)
	}
	if pr := h.put("next", "1"); pr.Header.Revision != 43 {
		t.Fatalf("put after restart: revision %d, want 43", pr.Header.Revision)
	}
	if got := h.get("dup", 0); len(got) != 0 {
		t.Fatalf("dup = %v", got)
	}
	h.raft.ExpectNoMsg(0)
}

// A store that sees a gap in the indexes (it lost an Apply to a restart)
// asks for a replay once and drops entries until the gap is filled.
func TestStoreAsksReplayOnGap(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // index 1, revision 2

	lost := make(chan actors.Result, 1)
	h.applyRaw(storeactor.Entry{Index: 3, Term: 1, Req: putReq("b", "1"), Reply: lost})
	if r := testkitExpectReplay(t, h); r != 2 {
		t.Fatalf("Replay from %d, want 2", r)
	}
	h.applyRaw(storeactor.Entry{Index: 4, Term: 1, Req: putReq("c", "1")})
	h.raft.ExpectNoMsg(20 * time.Millisecond) // asked once only
	if h.rev() != 2 {
		t.Fatalf("entries after a gap were applied: rev %d", h.rev())
	}
	// The replay (2..4) fills the gap and answers waiters again.
	w2, w3 := make(chan actors.Result, 1), make(chan actors.Result, 1)
	h.applyRaw(
		storeactor.Entry{Index: 2, Term: 1, Req: putReq("x", "1"), Reply: w2},
		storeactor.Entry{Index: 3, Term: 1, Req: putReq("b", "1"), Reply: w3},
		storeactor.Entry{Index: 4, Term: 1, Req: putReq("c", "1")},
	)
	if a := expectApplied(t, h); a != 4 {
		t.Fatalf("Applied %d", a)
	}
	for i, w := range []chan actors.Result{w2, w3} {
		r := <-w
		if r.Err != nil || r.Resp.(*pb.PutResponse).Header.Revision != int64(3+i) {
			t.Fatalf("replayed entry %d: %+v", 2+i, r)
		}
	}
	select {
	case r := <-lost:
		t.Fatalf("dropped entry answered: %+v", r)
	default:
	}
	if h.rev() != 5 {
		t.Fatalf("rev %d", h.rev())
	}
}

func testkitExpectReplay(t *testing.T, h *harness) uint64 {
	t.Helper()
	return expectMsg[*storeactor.Replay](t, h).From
}

// Compaction drops a deleted key's newest-version entry with its
// tombstone, and keeps it for a key written again after the delete.
func TestCompactionDropsLatestEntryOfDeletedKeys(t *testing.T) {
	h := newHarness(t)
	h.put("gone", "1")
	h.must(delReq("gone", ""))
	h.put("back", "1")
	h.must(delReq("back", ""))
	h.put("back", "2")
	if n := storeactor.LatestCount(h.db); n != 2 {
		t.Fatalf("%d latest entries before compaction, want 2", n)
	}
	h.must(compactReq(h.rev(), true))
	eventually(t, "physical compaction", func() bool { return h.reader.View().CompactDone == h.rev() })
	if n := storeactor.LatestCount(h.db); n != 1 {
		t.Fatalf("%d latest entries after compaction, want 1 (back)", n)
	}
	if got := h.get("back", 0); len(got) != 1 {
		t.Fatalf("back = %v", got)
	}
}

// LiveBytes counts the versions and history written, falls by what
// physical compaction deletes, and survives a restart.
func TestLiveBytesFollowWritesAndCompaction(t *testing.T) {
	h := newHarness(t)
	if got := h.reader.View().LiveBytes; got != 0 {
		t.Fatalf("empty store: %d live bytes", got)
	}
	val := strings.Repeat("v", 1000)
	for i := 0; i < 10; i++ {
		h.put(fmt.Sprintf("k%d", i%5), val)
	}
	full := h.reader.View().LiveBytes
	if full < 10*1000 || full > 10*1100 {
		t.Fatalf("10 puts of 1000 bytes: %d live bytes", full)
	}
	h.must(delReq("k", "l"))
	rev := h.rev()
	h.must(compactReq(rev, true))
	eventually(t, "physical compaction", func() bool { return h.reader.View().CompactDone >= rev })
	after := h.reader.View().LiveBytes
	if after > 200 {
		t.Fatalf("after deleting everything and compacting: %d of %d live bytes left", after, full)
	}
	h.restart()
	if got := h.reader.View().LiveBytes; got != after {
		t.Fatalf("after restart: %d, want %d", got, after)
	}
}

// The start-up consistency check passes on a store that went through
// puts, deletes, leases and a compaction, and catches a newest-version
// entry that disagrees with its version.
func TestCheckConsistency(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 20; i++ {
		h.put(fmt.Sprintf("k%d", i%7), fmt.Sprint(i))
	}
	h.must(delReq("k3", ""))
	h.must(delReq("k5", "k7"))
	h.put("k5", "again")
	rev := h.rev()
	h.must(compactReq(rev-2, true))
	eventually(t, "physical compaction", func() bool { return h.reader.View().CompactDone >= rev-2 })
	if err := h.reader.CheckConsistency(); err != nil {
		t.Fatalf("consistent store: %v", err)
	}
	// Break it: a version entry whose record says another create revision.
	storeactor.CorruptNewestVersion(h.db, "k1")
	if err := h.reader.CheckConsistency(); err == nil {
		t.Fatal("a broken newest-version entry passed the check")
	}
}

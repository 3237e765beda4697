package raftactor_test

import (
	"fmt"
	"github.com/cockroachdb/pebble/v2/vfs"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
)

// N concurrent proposals from many goroutines: every one is answered, and
// together they take revisions 2..N+1, each exactly once.
func TestConcurrentProposalsGetDistinctRevisions(t *testing.T) {
	n := startNode(t, nodeOpts{})
	const goroutines, each = 16, 25
	revs := make(chan int64, goroutines*each)
	errs := make(chan error, goroutines*each)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// Pipelined: each goroutine has all its proposals in flight.
			chans := make([]<-chan actors.Result, each)
			for i := range chans {
				chans[i] = n.send(putReq(fmt.Sprintf("g%02d/%02d", g, i), fmt.Sprint(i)))
			}
			for i, ch := range chans {
				res, err := await(ch, wait)
				if err == nil {
					err = res.Err
				}
				if err != nil {
					errs <- fmt.Errorf("g%d/%d: %w", g, i, err)
					continue
				}
				revs <- res.Resp.(*pb.PutResponse).Header.Revision
			}
		}(g)
	}
	wg.Wait()
	close(revs)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var got []int64
	for r := range revs {
		got = append(got, r)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	for i, r := range got {
		if r != int64(i+2) {
			t.Fatalf("revisions are not 2..%d exactly once: at %d got %d", goroutines*each+1, i, r)
		}
	}
	if len(got) != goroutines*each || n.reader.View().Rev != int64(goroutines*each+1) {
		t.Fatalf("%d replies, store revision %d", len(got), n.reader.View().Rev)
	}
	r, err := n.reader.Range(&pb.RangeRequest{Key: []byte("g"), RangeEnd: []byte("h"), CountOnly: true})
	if err != nil || r.Count != goroutines*each {
		t.Fatalf("count %v %v", r, err)
	}
}

// Group commit: proposals that arrive while the raft actor waits on an
// fsync all go into the next Ready, persisted with one fsync. The test
// holds the WAL sync of one proposal, queues N more meanwhile, and counts
// WAL syncs.
func TestGroupCommitOneSyncForQueuedProposals(t *testing.T) {
	db, fs := openSyncCountingDB(t)
	n := startNode(t, nodeOpts{db: db, wal: openWAL(t, fs)})
	n.put("warm", "up")

	blocked, release := fs.holdNextSync()
	t.Cleanup(release)
	first := n.send(putReq("first", "1"))
	select {
	case <-blocked:
	case <-time.After(wait):
		t.Fatal("the proposal's WAL sync never started")
	}
	const N = 100
	chans := make([]<-chan actors.Result, N)
	var wg sync.WaitGroup
	for g := 0; g < 10; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < N; i += 10 {
				chans[i] = n.send(putReq(fmt.Sprintf("k%03d", i), "v"))
			}
		}(g)
	}
	wg.Wait() // all N are in the raft actor's mailbox
	before := fs.syncs.Load()
	release()

	if res, err := await(first, wait); err != nil || res.Err != nil {
		t.Fatalf("first: %v %v", err, res.Err)
	}
	for i, ch := range chans {
		if res, err := await(ch, wait); err != nil || res.Err != nil {
			t.Fatalf("proposal %d: %v %v", i, err, res.Err)
		}
	}
	syncs := fs.syncs.Load() - before
	t.Logf("%d WAL syncs for %d proposals", syncs, N+1)
	if syncs > 3 {
		t.Fatalf("%d WAL syncs for %d queued proposals: not group committed", syncs, N+1)
	}
	if rev := n.reader.View().Rev; rev != N+3 {
		t.Fatalf("revision %d, want %d", rev, N+3)
	}
}

// gate blocks the store's Receive on the Apply that carries a put of key
// until released: the raft actor commits, the store has not applied.
func gate(key string) (wrap func(*actor.Props) *actor.Props, reached <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var once, rel sync.Once
	wrap = func(p *actor.Props) *actor.Props {
		return p.Clone(actor.WithReceiverMiddleware(func(next actor.ReceiverFunc) actor.ReceiverFunc {
			return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
				if a, ok := env.Message.(*storeactor.Apply); ok {
					for _, e := range a.Entries {
						if e.Req != nil && e.Req.Put != nil && string(e.Req.Put.Key) == key {
							once.Do(func() { close(in); <-out })
						}
					}
				}
				next(ctx, env)
			}
		}))
	}
	return wrap, in, func() { rel.Do(func() { close(out) }) }
}

// A ReadIndex, and a batch of clients' reads, is answered only once the
// store has applied everything committed when it was asked: a read after
// it sees every earlier write.
func TestReadIndexWaitsForTheStore(t *testing.T) {
	t.Run("ReadIndex", func(t *testing.T) { testReadWaitsForTheStore(t, (*node).readIndex) })
	t.Run("batch", func(t *testing.T) { testReadWaitsForTheStore(t, (*node).joinRead) })
}

func testReadWaitsForTheStore(t *testing.T, read func(*node) <-chan error) {
	wrap, reached, release := gate("slow")
	n := startNode(t, nodeOpts{storeWrap: wrap})
	t.Cleanup(release)
	n.put("a", "1")
	if err := <-read(n); err != nil {
		t.Fatalf("read index on an idle node: %v", err)
	}

	slow := n.send(putReq("slow", "1"))
	select {
	case <-reached:
	case <-time.After(wait):
		t.Fatal("the store never got the slow apply")
	}
	st := n.status()
	if st.Committed <= st.Applied || st.Lead != memberID {
		t.Fatalf("status while the store is held: %+v (want committed > applied)", st)
	}
	ri := read(n)
	select {
	case err := <-ri:
		t.Fatalf("read index answered (%v) before the store applied a committed entry", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, _, ok := n.get("slow"); ok {
		t.Fatal("slow visible before it was applied")
	}
	release()
	select {
	case err := <-ri:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("read index never answered")
	}
	if _, _, ok := n.get("slow"); !ok {
		t.Fatal("read index answered but the committed write is not readable")
	}
	if res, err := await(slow, wait); err != nil || res.Err != nil {
		t.Fatalf("slow: %v %v", err, res.Err)
	}
	if st := n.status(); st.Applied < st.Committed {
		t.Fatalf("status after release %+v", st)
	}
}

// Restarting the raft actor on the same DB keeps the log and hard state:
// the term never goes back, nothing committed is lost or re-applied, and
// proposals continue at the next revision. Then the same for a restart of
// both actors (a process restart).
func TestRaftRestartKeepsLogAndHardState(t *testing.T) {
	n := startNode(t, nodeOpts{})
	for i := 0; i < 10; i++ {
		if rev := n.put(fmt.Sprintf("k%d", i), "v"); rev != int64(i+2) {
			t.Fatalf("put %d at revision %d", i, rev)
		}
	}
	st1 := n.status()
	if st1.Term == 0 || st1.Committed < 11 {
		t.Fatalf("status %+v", st1)
	}
	if hs, err := n.cfg.WAL.HardState(); hs == nil || err != nil {
		t.Fatalf("no hard state in the WAL (%v)", err)
	}
	if first, last, cnt := raftLogBounds(n.cfg.WAL); first != 1 || last != st1.Committed || cnt != int(last) {
		t.Fatalf("raft log in the WAL: %d..%d (%d entries), committed %d", first, last, cnt, st1.Committed)
	}

	// Raft actor alone.
	n.kit.Stop(n.raftPID)
	n.startRaft()
	st2 := n.status()
	if st2.Term < st1.Term || st2.Committed <= st1.Committed {
		t.Fatalf("after raft restart: %+v, before %+v", st2, st1)
	}
	if v := n.raftView.Load(); v.Term != st2.Term || v.Lead != memberID {
		t.Fatalf("published view %+v", *v)
	}
	if rev := n.put("after1", "v"); rev != 12 {
		t.Fatalf("put after raft restart at revision %d, want 12", rev)
	}

	// Both actors, as after a process restart.
	n.restart()
	st3 := n.status()
	if st3.Term < st2.Term || st3.Committed <= st2.Committed {
		t.Fatalf("after restart: %+v, before %+v", st3, st2)
	}
	if v := n.reader.View(); v.Rev != 12 {
		t.Fatalf("store revision after restart %d", v.Rev)
	}
	for i := 0; i < 10; i++ {
		if v, rev, ok := n.get(fmt.Sprintf("k%d", i)); !ok || v != "v" || rev != int64(i+2) {
			t.Fatalf("k%d after restart: %q @%d %v", i, v, rev, ok)
		}
	}
	if rev := n.put("after2", "v"); rev != 13 {
		t.Fatalf("put after restart at revision %d, want 13", rev)
	}
	if err := <-n.readIndex(); err != nil {
		t.Fatal(err)
	}
}

// With a small SnapshotCount (and small WAL segments) the raft log is
// truncated as the store applies; restarts from a truncated log keep every write and the
// revision, and truncation keeps working after them.
func TestLogTruncationSurvivesRestart(t *testing.T) {
	n := startNode(t, nodeOpts{wal: openWALSized(t, vfs.NewMem(), 512),
		raftConfig: func(c *raftactor.Config) { c.SnapshotCount = 5; c.CatchUp = 2 }})
	written := 0
	putMore := func(k int) {
		t.Helper()
		for i := 0; i < k; i++ {
			written++
			if rev := n.put(fmt.Sprintf("k%03d", written), fmt.Sprint(written)); rev != int64(written+1) {
				t.Fatalf("put %d at revision %d", written, rev)
			}
		}
	}
	checkAll := func(when string) {
		t.Helper()
		if v := n.reader.View(); v.Rev != int64(written+1) {
			t.Fatalf("%s: store revision %d, want %d", when, v.Rev, written+1)
		}
		r, err := n.reader.Range(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
		if err != nil || r.Count != int64(written) {
			t.Fatalf("%s: %d keys (%v), want %d", when, r.GetCount(), err, written)
		}
		for i, kv := range r.Kvs {
			if string(kv.Value) != fmt.Sprint(i+1) || kv.ModRevision != int64(i+2) {
				t.Fatalf("%s: %s = %s @%d", when, kv.Key, kv.Value, kv.ModRevision)
			}
		}
	}
	const perSegment = 512 / 40 // entries a WAL segment holds at most (each > 40 B)
	truncated := func(when string) uint64 {
		t.Helper()
		first, last, cnt := raftLogBounds(n.cfg.WAL)
		t.Logf("%s: the WAL holds entries %d..%d", when, first, last)
		if !hasKey(t, n.db, "rs") || first <= 1 || cnt > 5+2+3+2*perSegment || uint64(cnt) != last-first+1 {
			t.Fatalf("%s: raft log not truncated: entries %d..%d (%d), snapshot key %v", when, first, last, cnt, hasKey(t, n.db, "rs"))
		}
		return first
	}

	putMore(30)
	checkAll("before restart")
	f1 := truncated("before restart")
	st1 := n.status()

	n.restart()
	checkAll("after restart")
	if st := n.status(); st.Term < st1.Term || st.Committed <= st1.Committed {
		t.Fatalf("status after restart %+v, before %+v", st, st1)
	}
	putMore(20)
	checkAll("after more writes")
	if f2 := truncated("after more writes"); f2 <= f1 {
		t.Fatalf("no truncation after the restart: first entry %d, was %d", f2, f1)
	}

	// Raft actor alone restarted on a truncated log, store kept.
	n.kit.Stop(n.raftPID)
	n.startRaft()
	putMore(3)
	n.restart()
	checkAll("after second restart")
	putMore(1)
	checkAll("end")
}

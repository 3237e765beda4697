package storeactor_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// Many goroutines read through one Reader while the Store applies txns
// that each move a set of keys together. Every read must see one revision
// of the whole set (never half a txn), revisions never go backwards, and a
// read pinned at a past revision always returns the same answer.
func TestReaderConcurrentWithApplies(t *testing.T) {
	h := newHarness(t)
	const nKeys, rounds, readers = 5, 150, 6
	setAll := func(i int) *pb.InternalRaftRequest {
		ops := make([]*pb.RequestOp, nKeys)
		for k := range ops {
			ops[k] = opPut(fmt.Sprintf("set/%d", k), fmt.Sprint(i))
		}
		return txnReq(&pb.TxnRequest{Success: ops})
	}
	h.must(setAll(0)) // revision 2
	pinned := h.rng(&pb.RangeRequest{Key: []byte("set/"), RangeEnd: []byte("set0"), Revision: 2})

	var stop atomic.Bool
	var reads atomic.Int64
	errc := make(chan error, readers)
	var wg sync.WaitGroup
	for g := 0; g < readers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			fail := func(format string, args ...any) {
				select {
				case errc <- fmt.Errorf("reader %d: "+format, append([]any{g}, args...)...):
				default:
				}
				stop.Store(true)
			}
			var lastRev int64
			for !stop.Load() {
				var kvsIn []*pb.RangeResponse
				switch g % 3 {
				case 0:
					r, err := h.reader.Range(&pb.RangeRequest{Key: []byte("set/"), RangeEnd: []byte("set0")})
					if err != nil {
						fail("range: %v", err)
						return
					}
					kvsIn = append(kvsIn, r)
				case 1:
					tr, err := h.reader.Txn(&pb.TxnRequest{
						Compare: []*pb.Compare{withEnd(cmpVersion("set/", gt, 0), "set0")},
						Success: []*pb.RequestOp{opGet("set/", "set0", 0), opGet("set/0", "", 0)},
					})
					if err != nil {
						fail("txn: %v", err)
						return
					}
					if !tr.Succeeded {
						fail("txn compare failed: %v", tr)
						return
					}
					kvsIn = append(kvsIn, tr.Responses[0].GetResponseRange())
					if tr.Responses[1].GetResponseRange().Kvs[0].ModRevision != tr.Responses[0].GetResponseRange().Kvs[0].ModRevision {
						fail("two reads in one txn saw different revisions")
						return
					}
				case 2:
					r, err := h.reader.Range(&pb.RangeRequest{Key: []byte("set/"), RangeEnd: []byte("set0"), Revision: 2})
					if err != nil {
						fail("pinned range: %v", err)
						return
					}
					if fmt.Sprint(kvs(r.Kvs)) != fmt.Sprint(kvs(pinned.Kvs)) {
						fail("pinned read changed: %v", kvs(r.Kvs))
						return
					}
				}
				for _, r := range kvsIn {
					if len(r.Kvs) != nKeys {
						fail("%d keys", len(r.Kvs))
						return
					}
					for _, kv := range r.Kvs {
						if !bytes.Equal(kv.Value, r.Kvs[0].Value) || kv.ModRevision != r.Kvs[0].ModRevision {
							fail("torn read: %v", kvs(r.Kvs))
							return
						}
					}
					if r.Kvs[0].ModRevision > r.Header.Revision {
						fail("mod revision %d above header %d", r.Kvs[0].ModRevision, r.Header.Revision)
						return
					}
					if r.Header.Revision < lastRev {
						fail("revision went back %d -> %d", lastRev, r.Header.Revision)
						return
					}
					lastRev = r.Header.Revision
				}
				reads.Add(1)
			}
		}(g)
	}
	for i := 1; i <= rounds && !stop.Load(); i++ {
		// Several txns per Apply, like a group-committed raft batch.
		h.apply(setAll(i), putReq("other", fmt.Sprint(i)))
	}
	stop.Store(true)
	wg.Wait()
	failOnReported(t, errc)
	if want := int64(2 + 2*rounds); h.rev() != want {
		t.Fatalf("rev %d, want %d", h.rev(), want)
	}
	t.Logf("%d reads during %d applies", reads.Load(), rounds)
}

// Reads at the current revision (revision 0) racing with compactions to
// the newest revision. etcd never answers such a read with "compacted" (it
// reads under the lock the compaction takes), so clients do not retry it.
func TestCurrentRevisionReadsNeverCompacted(t *testing.T) {
	h := newHarness(t)
	h.put("k", "0")
	var stop atomic.Bool
	var compacted, reads atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				_, err := h.reader.Range(&pb.RangeRequest{Key: []byte("k")})
				if errors.Is(err, rpctypes.ErrGRPCCompacted) {
					compacted.Add(1)
				} else if err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := 1; i <= 100; i++ {
		// As `etcdctl compact $(current revision)` right after a write.
		h.apply(putReq("k", fmt.Sprint(i)), compactReq(int64(i+2), false))
	}
	stop.Store(true)
	wg.Wait()
	if n := compacted.Load(); n > 0 {
		t.Fatalf("%d of %d reads at the current revision answered ErrGRPCCompacted", n, reads.Load())
	}
}

// bugRev0Compacted: storeactor/reader.go Reader.Range/Txn re-check the
// compaction point after reading (recheckCompaction) with reqRev = the
// revision of the view loaded before the read; when a batch that compacts
// to a newer revision is published meanwhile, a revision-0 read fails with
// ErrGRPCCompacted instead of being retried on the new view.
const bugRev0Compacted = "Reader.Range at revision 0 can answer ErrGRPCCompacted when a compaction to a newer revision is published during the read (reader.go recheckCompaction)"

// A physical=true compaction when the store restarts mid-compaction: the
// restarted store resumes and finishes the compaction from pebble and
// publishes its progress, which is what the gateway's physical wait
// watches, so the client still gets its answer.
func TestPhysicalCompactionProgressSurvivesStoreRestart(t *testing.T) {
	var once atomic.Bool
	h := newHarness(t, func(c *storeactor.Config) { c.CompactChunk = 1 })
	for i := 0; i < 20; i++ {
		h.put(fmt.Sprintf("k%d", i%3), fmt.Sprint(i))
	}
	ev := h.kit.CaptureEvents()
	h.stop()
	h.pid = h.kit.Spawn(testkit.PanicOn(h.props, func(m any) bool {
		return fmt.Sprintf("%T", m) == "storeactor.compactStep" && once.CompareAndSwap(false, true)
	}))
	rev := h.rev()
	ch := make(chan actors.Result, 1)
	h.index++
	h.applyRaw(storeactor.Entry{Index: h.index, Term: 1, Req: compactReq(rev, true), Reply: ch})
	ev.ExpectSupervisorEvent(wait)
	select {
	case r := <-ch:
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	case <-time.After(time.Second):
		t.Fatal("compaction request not answered")
	}
	eventually(t, "resumed compaction", func() bool { return storeactor.CompactDone(h.db) == rev })
	eventually(t, "published progress after restart", func() bool { return h.reader.View().CompactDone == rev })
}

// Single-key reads go through the read cache (every miss inserted) while
// the Store writes that key at every revision: revision r is a delete when
// r%5 == 0, else a put of the value r, with several revisions per Apply.
// A read at revision R (the current one, or an explicit one at or below
// it) must answer exactly what revision R holds: a cached version that a
// later write should have replaced shows up as a mod revision below R.
func TestReaderSingleKeyReadsThroughCacheSeeEveryWrite(t *testing.T) {
	h := newHarness(t)
	h.reader.CacheEveryRead()
	req := func(rev int64) *pb.InternalRaftRequest {
		if rev%5 == 0 {
			return delReq("hot", "")
		}
		return putReq("hot", fmt.Sprint(rev))
	}
	h.must(req(2))
	check := func(r *pb.RangeResponse, at int64) error {
		switch {
		case at%5 == 0 && len(r.Kvs) != 0:
			return fmt.Errorf("at %d (a delete): %v", at, kvs(r.Kvs))
		case at%5 == 0:
			return nil
		case len(r.Kvs) != 1 || r.Kvs[0].ModRevision != at || string(r.Kvs[0].Value) != fmt.Sprint(at):
			return fmt.Errorf("at %d: %v", at, kvs(r.Kvs))
		}
		return nil
	}
	var stop atomic.Bool
	var reads atomic.Int64
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				r, err := h.reader.Range(&pb.RangeRequest{Key: []byte("hot")})
				if err == nil {
					err = check(r, r.Header.Revision)
				}
				if err == nil && g%2 == 1 && r.Header.Revision > 2 {
					// An explicit revision at or below the current one.
					at := 2 + int64(i)%(r.Header.Revision-1)
					var past *pb.RangeResponse
					if past, err = h.reader.Range(&pb.RangeRequest{Key: []byte("hot"), Revision: at}); err == nil {
						err = check(past, at)
					}
				}
				if err != nil {
					errc <- fmt.Errorf("reader %d: %w", g, err)
					stop.Store(true)
					return
				}
				reads.Add(1)
			}
		}(g)
	}
	for i := 0; i < 300 && !stop.Load(); i++ {
		n := 1 + i%3
		reqs := make([]*pb.InternalRaftRequest, n)
		for j := range reqs {
			reqs[j] = req(h.rev() + 1 + int64(j))
		}
		h.apply(reqs...)
	}
	stop.Store(true)
	wg.Wait()
	failOnReported(t, errc)
	t.Logf("%d reads during %d revisions", reads.Load(), h.rev())
}

// failOnReported fails the test with the first error a reader reported, if
// any (readers report into a buffered channel and stop the others).
func failOnReported(t *testing.T, errc <-chan error) {
	t.Helper()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

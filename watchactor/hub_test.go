package watchactor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
	"github.com/metastore/metastore/watchactor"
)

func key(k string) []byte { return []byte(k) }

func TestLiveEventsOneResponsePerRevision(t *testing.T) {
	h := newHarness(t, watchactor.Config{})
	s := h.open(1 << 20)
	c := h.create(s, &pb.WatchCreateRequest{Key: key("a"), RangeEnd: key("c")})
	if c.WatchId != 0 || c.Header.Revision != 1 {
		t.Fatalf("created = %v", c)
	}
	h.put("a", "1") // 2
	h.put("z", "x") // 3: outside the range
	// One txn, one revision, two events: one response.
	h.apply(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key("b"), Value: key("2")}}},
		{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: key("a")}}},
	}}}) // 4
	rs := h.take(s, 2)
	if got := fmt.Sprint(evs(rs[0].Events)); got != "[PUT a=1@2]" || rs[0].Header.Revision != 2 {
		t.Fatalf("first response %s at %d", got, rs[0].Header.Revision)
	}
	if got := fmt.Sprint(evs(rs[1].Events)); got != "[PUT b=2@4 DELETE a@4]" || rs[1].Header.Revision != 4 {
		t.Fatalf("txn response %s at %d", got, rs[1].Header.Revision)
	}
	h.quiet(s, 50*time.Millisecond)
}

func TestBatchOfRevisionsSplitsPerRevision(t *testing.T) {
	h := newHarness(t, watchactor.Config{})
	s := h.open(1 << 20)
	h.create(s, &pb.WatchCreateRequest{Key: key("k"), PrevKv: true})
	// Three entries applied as one store batch: one Committed, three revisions.
	h.apply(putReq("k", "1"), putReq("k", "2"), delReq("k", ""))
	rs := h.take(s, 3)
	var got []string
	for _, r := range rs {
		got = append(got, fmt.Sprintf("%d:%v", r.Header.Revision, evs(r.Events)))
	}
	want := "[2:[PUT k=1@2] 3:[PUT k=2@3 prev=1] 4:[DELETE k@4 prev=2]]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v\nwant %s", got, want)
	}
}

func TestStartInThePastCatchesUpThenGoesLive(t *testing.T) {
	h := newHarness(t, watchactor.Config{ScanPerStep: 3}) // several catch-up steps
	for i := 0; i < 10; i++ {
		h.put(fmt.Sprintf("p/%d", i%3), fmt.Sprint(i)) // revisions 2..11
	}
	s := h.open(1 << 20)
	h.create(s, &pb.WatchCreateRequest{Key: key("p/"), RangeEnd: key("p0"), StartRevision: 4})
	var got []string
	for len(got) < 8 {
		for _, r := range h.take(s, 1) {
			if r.Header.Revision != 11 {
				t.Fatalf("catch-up header revision %d, want the hub's 11 (as etcd)", r.Header.Revision)
			}
			got = append(got, evs(r.Events)...)
		}
	}
	want := "[PUT p/2=2@4 PUT p/0=3@5 PUT p/1=4@6 PUT p/2=5@7 PUT p/0=6@8 PUT p/1=7@9 PUT p/2=8@10 PUT p/0=9@11]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v\nwant %s", got, want)
	}
	h.put("p/x", "live")
	if r := h.next(s); fmt.Sprint(evs(r.Events)) != "[PUT p/x=live@12]" {
		t.Fatalf("live after catch-up: %v", r)
	}
}

// A client that stops reading: the stream holds at most its budget, the
// watcher falls back to history, and once drained it gets every revision,
// in order, exactly once.
func TestSlowStreamIsBoundedAndCatchesUp(t *testing.T) {
	const limit = 4 << 10
	h := newHarness(t, watchactor.Config{})
	s := h.open(limit)
	h.create(s, &pb.WatchCreateRequest{Key: key("s"), RangeEnd: key("t")})
	val := strings.Repeat("v", 500)
	const n = 60
	for i := 0; i < n; i++ {
		h.put(fmt.Sprintf("s%02d", i), val)
	}
	h.barrier()
	// Nothing read yet: the queue stopped at the budget.
	items, err := s.Take()
	if drained := s.Sent(); err != nil || !drained {
		t.Fatalf("drained=%v err=%v: the hub should have been refused", drained, err)
	}
	if len(items) == 0 || len(items) > limit/500+1 {
		t.Fatalf("%d responses queued for a %d byte budget", len(items), limit)
	}
	next := int64(2)
	check := func(rs []*pb.WatchResponse) {
		for _, r := range rs {
			for _, e := range r.Events {
				if e.Kv.ModRevision != next {
					t.Fatalf("event at %d, want %d", e.Kv.ModRevision, next)
				}
				next++
			}
		}
	}
	var first []*pb.WatchResponse
	for _, it := range items {
		first = append(first, it.Resp)
	}
	check(first)
	h.send(&watchactor.Drained{Out: s.Stream})
	for next <= n+1 {
		check(h.take(s, 1))
	}
	// Back in the live path.
	h.put("s-live", "x")
	check(h.take(s, 1))
	if next != n+3 {
		t.Fatalf("next = %d", next)
	}
}

func TestCompactedStartGetsCompactRevision(t *testing.T) {
	h := newHarness(t, watchactor.Config{})
	for i := 0; i < 5; i++ {
		h.put("c", fmt.Sprint(i)) // 2..6
	}
	h.apply(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 5}})
	s := h.open(1 << 20)
	h.create(s, &pb.WatchCreateRequest{Key: key("c"), StartRevision: 3, WatchId: 7})
	r := h.next(s)
	if r.WatchId != 7 || r.CompactRevision != 5 || !r.Canceled || len(r.Events) != 0 || r.Header.Revision != 0 {
		t.Fatalf("compacted response = %v", r)
	}
	// The compacted watcher keeps its id until canceled, as in etcd, and
	// is not synced: no progress answer for the stream.
	dup := h.create(s, &pb.WatchCreateRequest{Key: key("c"), WatchId: 7})
	if !dup.Canceled || dup.WatchId != -1 {
		t.Fatalf("reusing a compacted watcher's id: %v", dup)
	}
	h.send(&watchactor.RequestProgress{Out: s.Stream})
	h.quiet(s, 50*time.Millisecond)
	h.send(&watchactor.Cancel{Out: s.Stream, WatchID: 7})
	if r := h.next(s); !r.Canceled || r.WatchId != 7 {
		t.Fatalf("cancel of the compacted watcher: %v", r)
	}
	// At the compaction revision itself the history is still there.
	h.create(s, &pb.WatchCreateRequest{Key: key("c"), StartRevision: 5, WatchId: 8})
	r = h.next(s)
	if got := fmt.Sprint(evs(r.Events)); got != "[PUT c=3@5 PUT c=4@6]" {
		t.Fatalf("watch from the compaction revision: %s", got)
	}
}

func TestCreateErrorsAndIDs(t *testing.T) {
	h := newHarness(t, watchactor.Config{})
	s := h.open(1 << 20)
	canceled := func(req *pb.WatchCreateRequest, reason string) {
		t.Helper()
		r := h.create(s, req)
		if !r.Canceled || r.WatchId != -1 || r.CancelReason != reason {
			t.Fatalf("%v -> %v, want canceled with %q", req, r, reason)
		}
	}
	canceled(&pb.WatchCreateRequest{Key: key("a"), StartRevision: -1}, rpctypes.ErrCompacted.Error())
	canceled(&pb.WatchCreateRequest{Key: key("b"), RangeEnd: key("a")}, "mvcc: watcher range is empty")
	if r := h.create(s, &pb.WatchCreateRequest{Key: key("a"), WatchId: 1}); r.WatchId != 1 {
		t.Fatalf("client id: %v", r)
	}
	canceled(&pb.WatchCreateRequest{Key: key("a"), WatchId: 1}, "mvcc: duplicate watch ID provided on the WatchStream")
	// Automatic ids skip the ones in use.
	for _, want := range []int64{0, 2, 3} {
		if r := h.create(s, &pb.WatchCreateRequest{Key: key("a")}); r.WatchId != want {
			t.Fatalf("auto id %d, want %d", r.WatchId, want)
		}
	}
	h.send(&watchactor.Cancel{Out: s.Stream, WatchID: 2})
	if r := h.next(s); !r.Canceled || r.WatchId != 2 {
		t.Fatalf("cancel: %v", r)
	}
	h.send(&watchactor.Cancel{Out: s.Stream, WatchID: 42}) // unknown: no answer
	h.quiet(s, 50*time.Millisecond)
	// Filters and an empty key (etcd reads it as "\x00").
	h.create(s, &pb.WatchCreateRequest{Key: key("f"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
	h.put("f", "1")
	h.apply(delReq("f", ""))
	if r := h.next(s); fmt.Sprint(evs(r.Events)) != "[DELETE f@3]" {
		t.Fatalf("NOPUT watcher got %v", evs(r.Events))
	}
}

func TestRequestProgress(t *testing.T) {
	h := newHarness(t, watchactor.Config{})
	s := h.open(1 << 20)
	h.send(&watchactor.RequestProgress{Out: s.Stream})
	h.quiet(s, 50*time.Millisecond) // no watchers: no answer
	h.put("x", "1")
	h.create(s, &pb.WatchCreateRequest{Key: key("a")})
	h.send(&watchactor.RequestProgress{Out: s.Stream})
	if r := h.next(s); r.WatchId != -1 || r.Header.Revision != 2 || len(r.Events) != 0 {
		t.Fatalf("progress = %v", r)
	}
	// A watcher with a future start is not yet at its start: no answer.
	h.create(s, &pb.WatchCreateRequest{Key: key("a"), StartRevision: 10})
	h.send(&watchactor.RequestProgress{Out: s.Stream})
	h.quiet(s, 50*time.Millisecond)
}

func TestProgressNotifyOnlyWhenQuiet(t *testing.T) {
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	h := newHarness(t, watchactor.Config{Clock: clock, ProgressInterval: time.Minute})
	clock.WaitPending(1, wait)
	s := h.open(1 << 20)
	h.create(s, &pb.WatchCreateRequest{Key: key("a"), ProgressNotify: true, WatchId: 5})
	h.create(s, &pb.WatchCreateRequest{Key: key("b"), WatchId: 6}) // no progress_notify
	clock.Advance(time.Minute)
	if r := h.next(s); r.WatchId != 5 || len(r.Events) != 0 || r.Header.Revision != 1 {
		t.Fatalf("progress notification = %v", r)
	}
	h.put("a", "1")
	if r := h.next(s); len(r.Events) != 1 {
		t.Fatalf("event = %v", r)
	}
	clock.Advance(time.Minute) // an event was sent since the last tick: no notification
	h.quiet(s, 50*time.Millisecond)
	clock.Advance(time.Minute)
	if r := h.next(s); r.WatchId != 5 || r.Header.Revision != 2 {
		t.Fatalf("progress notification = %v", r)
	}
}

// Batches the hub never got (here: applied by a store wired to no hub)
// show up as a gap in the next Committed; the synced watchers then read
// the missing revisions from history, so they still see every one.
func TestGapInBatchesCatchesUpFromHistory(t *testing.T) {
	h := newHarness(t, watchactor.Config{})
	s := h.open(1 << 20)
	h.create(s, &pb.WatchCreateRequest{Key: key("g"), RangeEnd: key("h")})
	h.put("g1", "a") // 2, seen live
	h.next(s)
	h.kit.Stop(h.store)
	h.store = h.kit.Spawn(storeactor.New(storeactor.Config{DB: h.db}, h.reader))
	h.put("g2", "b") // 3, unseen
	h.put("g3", "c") // 4, unseen
	h.kit.Stop(h.store)
	h.store = h.kit.Spawn(storeactor.New(storeactor.Config{DB: h.db, Watch: h.hub}, h.reader))
	h.put("g4", "d") // 5: Committed{From: 5} while the hub is at 2
	var got []string
	for len(got) < 3 {
		for _, r := range h.take(s, 1) {
			got = append(got, evs(r.Events)...)
		}
	}
	if fmt.Sprint(got) != "[PUT g2=b@3 PUT g3=c@4 PUT g4=d@5]" {
		t.Fatalf("got %v", got)
	}
}

// A panic in the hub restarts it; the streams it served end with
// Unavailable (clientv3 then resumes them) and new streams work.
func TestPanicFailsOpenStreamsAndRecovers(t *testing.T) {
	boom := &watchactor.Cancel{WatchID: -99}
	h := newHarness(t, watchactor.Config{}, func(p *actor.Props) *actor.Props {
		return testkit.PanicOn(p, func(m any) bool { c, ok := m.(*watchactor.Cancel); return ok && c.WatchID == boom.WatchID })
	})
	ev := h.kit.CaptureEvents()
	s := h.open(1 << 20)
	h.create(s, &pb.WatchCreateRequest{Key: key("a")})
	h.put("a", "1")
	h.next(s)
	boom.Out = s.Stream
	h.send(boom)
	ev.ExpectSupervisorEvent(wait)
	select {
	case <-s.Ready():
	case <-time.After(wait):
		t.Fatal("stream not failed after the hub restarted")
	}
	if _, err := s.Take(); status.Code(err) != codes.Unavailable {
		t.Fatalf("stream error %v, want Unavailable", err)
	}
	// A new stream resumes from the next revision and sees later writes.
	s2 := h.open(1 << 20)
	h.create(s2, &pb.WatchCreateRequest{Key: key("a"), StartRevision: 3})
	h.put("a", "2")
	if r := h.next(s2); fmt.Sprint(evs(r.Events)) != "[PUT a=2@3]" {
		t.Fatalf("after restart: %v", evs(r.Events))
	}
}

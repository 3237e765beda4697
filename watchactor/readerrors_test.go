package watchactor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
	"github.com/metastore/metastore/watchactor"
)

// faultyHarness is a harness whose DB fails every read of an sstable
// while the toggle is on.
func faultyHarness(t *testing.T) (*harness, *errorfs.Toggle) {
	t.Helper()
	faults := testkit.TableReadFaults()
	db, err := storeactor.OpenPebbleFS(errorfs.Wrap(vfs.NewMem(), faults), "/db", storeactor.WithoutBlockCache())
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessOn(t, db, watchactor.Config{}), faults
}

// flush moves everything written so far to sstables, where the faults are.
func (h *harness) flush() {
	h.t.Helper()
	if err := h.db.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

// failure waits for s to end and returns its error and the responses
// queued before it.
func (h *harness) failure(s *stream) (got []*pb.WatchResponse, err error) {
	h.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case <-s.Ready():
		case <-deadline:
			h.t.Fatalf("the stream did not fail; got %v", got)
		}
		items, err := s.Take()
		for _, it := range items {
			got = append(got, it.Resp)
		}
		s.Sent()
		if err != nil {
			return got, err
		}
	}
}

// failedForReads is metastore_watch_streams_failed_total{reason="store-read"}.
func failedForReads(t *testing.T) float64 {
	return testkit.Gather(t, testkit.Registry(t)).Total("metastore_watch_streams_failed_total", "reason", "store-read")
}

// wantReadFailure checks err is how a stream ends when the store cannot
// be read: Unavailable (clientv3 resumes its watchers on a new stream),
// saying why.
func wantReadFailure(t *testing.T, err error) {
	t.Helper()
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), errorfs.ErrInjected.Error()) {
		t.Fatalf("stream ended with %v, want Unavailable with the read error", err)
	}
}

// An event whose prev_kv cannot be read (a disk read error) is not sent
// without it: the stream of the watcher that asked for it fails with
// Unavailable, counted; the other streams go on; and the watcher, resumed
// on a new stream after its last event as clientv3 does, gets the event
// with its prev_kv once the disk reads again.
func TestPrevKVReadErrorFailsTheStream(t *testing.T) {
	h, faults := faultyHarness(t)
	h.put("a", "1") // revision 2
	withPrev := h.open(1 << 20)
	h.create(withPrev, &pb.WatchCreateRequest{Key: key("a"), PrevKv: true})
	plain := h.open(1 << 20)
	h.create(plain, &pb.WatchCreateRequest{Key: key("a")})
	h.flush()
	before := failedForReads(t)

	faults.On()
	h.put("a", "2") // revision 3: its prev_kv, a=1, is on disk only
	if got := evs(h.next(plain).Events); fmt.Sprint(got) != "[PUT a=2@3]" {
		t.Fatalf("watcher without prev_kv got %v", got)
	}
	got, err := h.failure(withPrev)
	faults.Off()
	wantReadFailure(t, err)
	if len(got) != 0 {
		t.Fatalf("the failed stream was sent %v", got)
	}
	if n := failedForReads(t) - before; n != 1 {
		t.Fatalf("metastore_watch_streams_failed_total{store-read} grew by %v, want 1", n)
	}

	h.put("a", "3") // revision 4
	if got := evs(h.next(plain).Events); fmt.Sprint(got) != "[PUT a=3@4]" {
		t.Fatalf("watcher without prev_kv, after the fault: %v", got)
	}
	resumed := h.open(1 << 20)
	h.create(resumed, &pb.WatchCreateRequest{Key: key("a"), PrevKv: true, StartRevision: 3})
	var all []string
	for len(all) < 2 {
		all = append(all, evs(h.next(resumed).Events)...)
	}
	if fmt.Sprint(all) != "[PUT a=2@3 prev=1 PUT a=3@4 prev=2]" {
		t.Fatalf("resumed watcher got %v", all)
	}
}

// A catch-up whose history read fails (a disk read error) fails the
// streams of the watchers that needed it, with Unavailable, and nothing
// else: a stream whose watchers are synced goes on getting events (the
// Hub no longer restarts, failing every stream), and a later catch-up
// reads once the disk does.
func TestHistoryReadErrorFailsOnlyItsStreams(t *testing.T) {
	h, faults := faultyHarness(t)
	h.put("a", "1") // revision 2
	h.put("b", "1") // revision 3
	live := h.open(1 << 20)
	h.create(live, &pb.WatchCreateRequest{Key: key("b")})
	h.flush()
	before := failedForReads(t)

	faults.On()
	behind := h.open(1 << 20)
	h.send(&watchactor.Create{Out: behind.Stream, Req: &pb.WatchCreateRequest{Key: key("a"), StartRevision: 2}})
	got, err := h.failure(behind)
	faults.Off()
	wantReadFailure(t, err)
	if len(got) != 1 || !got[0].Created || len(got[0].Events) != 0 {
		t.Fatalf("the failed stream was sent %v, want its created response alone", got)
	}
	if n := failedForReads(t) - before; n != 1 {
		t.Fatalf("metastore_watch_streams_failed_total{store-read} grew by %v, want 1", n)
	}

	h.put("b", "2") // revision 4
	if got := evs(h.next(live).Events); fmt.Sprint(got) != "[PUT b=2@4]" {
		t.Fatalf("synced watcher after the fault: %v", got)
	}
	again := h.open(1 << 20)
	h.create(again, &pb.WatchCreateRequest{Key: key("a"), StartRevision: 2})
	if got := evs(h.next(again).Events); fmt.Sprint(got) != "[PUT a=1@2]" {
		t.Fatalf("catch-up after the fault: %v", got)
	}
}

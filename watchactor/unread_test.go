package watchactor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/testkit"
	"github.com/metastore/metastore/watchactor"
)

// A client that asks for progress over and over (and gets progress ticks)
// without reading holds at most one progress notification per watch id
// between its other responses: what it will read is the event it was sent
// and the latest progress, in revision order, not one response per request.
func TestProgressForAClientThatDoesNotRead(t *testing.T) {
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	h := newHarness(t, watchactor.Config{Clock: clock, ProgressInterval: time.Minute})
	clock.WaitPending(1, wait)
	s := h.open(1 << 20)
	h.create(s, &pb.WatchCreateRequest{Key: key("a"), ProgressNotify: true, WatchId: 5})
	h.create(s, &pb.WatchCreateRequest{Key: key("b"), ProgressNotify: true, WatchId: 6})
	for i := 0; i < 200; i++ {
		if i == 100 {
			h.put("a", "1")
			h.put("x", "not watched")
		}
		h.send(&watchactor.RequestProgress{Out: s.Stream})
		clock.Advance(time.Minute)
	}
	h.barrier()

	items, err := s.Take()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	last := map[int64]int64{} // the revision each watcher last learned
	events := 0
	for _, it := range items {
		r := it.Resp
		got = append(got, fmt.Sprintf("id %d rev %d events %d", r.WatchId, r.Header.Revision, len(r.Events)))
		ids := []int64{r.WatchId}
		if r.WatchId == -1 {
			ids = []int64{5, 6} // a stream-wide notification counts for every watcher
		}
		for _, id := range ids {
			if r.Header.Revision < last[id] {
				t.Fatalf("watcher %d went back from revision %d:\n%v", id, last[id], got)
			}
			last[id] = r.Header.Revision
		}
		events += len(r.Events)
	}
	// Before the event: one notification each for -1, 5 and 6; the event;
	// after it the same three at most.
	if events != 1 || len(items) > 7 {
		t.Fatalf("%d responses held for a client that did not read, %d events:\n%v", len(items), events, got)
	}
	if r := items[len(items)-1].Resp; r.Header.Revision != 3 {
		t.Fatalf("last notification at revision %d, want the current 3:\n%v", r.Header.Revision, got)
	}
}

// The handler reads a client's next request only while the stream holds
// less than its budget, counting the answers still to come: a client that
// sends requests without reading what they answer is not read either, and
// loses nothing once it reads.
func TestAdmitHoldsRequestsOfAClientThatDoesNotRead(t *testing.T) {
	h := newHarness(t, watchactor.Config{})
	s := h.open(1000)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	for s.Admit(cancelled) == nil {
		n++
		if n > 100 {
			t.Fatal("admits requests without bound while nothing is read")
		}
		h.send(&watchactor.Create{Out: s.Stream, Req: &pb.WatchCreateRequest{Key: key("k"), WatchId: int64(n)}})
	}
	h.barrier() // every create handled: the answers are queued, unread
	if err := s.Admit(cancelled); err == nil {
		t.Fatal("admitted a request while the answers to the others are unread")
	}

	admitted := make(chan error, 1)
	go func() { admitted <- s.Admit(context.Background()) }()
	got := h.take(s, n) // the client reads: room again
	select {
	case err := <-admitted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("still not admitted after the client read everything")
	}
	for i, r := range got {
		if !r.Created || r.WatchId != int64(i+1) {
			t.Fatalf("answer %d: %v", i, r)
		}
	}

	// A closed stream lets a waiting reader go.
	for s.Admit(cancelled) == nil {
	}
	go func() { admitted <- s.Admit(context.Background()) }()
	s.Close()
	select {
	case err := <-admitted:
		if err == nil {
			t.Fatal("admitted on a closed stream")
		}
	case <-time.After(wait):
		t.Fatal("a closed stream kept its reader waiting")
	}
}

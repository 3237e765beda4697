package watchactor_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
	"github.com/metastore/metastore/watchactor"
)

// wait bounds every wait for something that must happen.
const wait = 5 * time.Second

// harness runs a real Store on in-memory pebble feeding a real Hub, with a
// probe in the raft actor's place. Tests talk to the Hub with its messages
// and read what it queues from Streams, as the gateway does.
type harness struct {
	t      testing.TB
	kit    *testkit.Kit
	db     *pebble.DB
	reader *storeactor.Reader
	raft   *testkit.Probe
	store  *actor.PID
	hub    *actor.PID
	index  uint64
}

func newHarness(t testing.TB, cfg watchactor.Config, wrap ...func(*actor.Props) *actor.Props) *harness {
	t.Helper()
	db, err := storeactor.OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessOn(t, db, cfg, wrap...)
}

// newHarnessOn is newHarness on db, which it closes when the test ends.
func newHarnessOn(t testing.TB, db *pebble.DB, cfg watchactor.Config, wrap ...func(*actor.Props) *actor.Props) *harness {
	t.Helper()
	t.Cleanup(func() { db.Close() })
	h := &harness{t: t, db: db, kit: testkit.New(t)}
	var err error
	h.reader, err = storeactor.NewReader(db)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = h.reader
	props := watchactor.New(cfg)
	for _, w := range wrap {
		props = w(props)
	}
	h.hub = h.kit.Spawn(props)
	h.store = h.kit.Spawn(storeactor.New(storeactor.Config{DB: db, Watch: h.hub}, h.reader))
	h.raft = h.kit.NewProbe()
	return h
}

// apply applies reqs as one batch and waits until the store has.
func (h *harness) apply(reqs ...*pb.InternalRaftRequest) {
	h.t.Helper()
	entries := make([]storeactor.Entry, len(reqs))
	for i, r := range reqs {
		h.index++
		entries[i] = storeactor.Entry{Index: h.index, Term: 1, Req: r}
	}
	h.raft.Request(h.store, &storeactor.Apply{Entries: entries})
	if got := testkit.Expect[*storeactor.Applied](h.raft, wait); got.Index != h.index {
		h.t.Fatalf("Applied{%d}, want %d", got.Index, h.index)
	}
}

func (h *harness) put(k, v string) { h.t.Helper(); h.apply(putReq(k, v)) }

func putReq(k, v string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}
}

func delReq(k, end string) *pb.InternalRaftRequest {
	d := &pb.DeleteRangeRequest{Key: []byte(k)}
	if end != "" {
		d.RangeEnd = []byte(end)
	}
	return &pb.InternalRaftRequest{DeleteRange: d}
}

// stream is a test's end of one watch stream: the Stream the Hub pushes
// into and the responses taken from it but not yet looked at.
type stream struct {
	*watchactor.Stream
	got []*pb.WatchResponse
}

// open registers a new stream with the Hub.
func (h *harness) open(limit int64) *stream {
	s := &stream{Stream: watchactor.NewStream(watchactor.NewBudget(limit, 1<<30))}
	h.kit.Root().Send(h.hub, &watchactor.OpenStream{Out: s.Stream})
	return s
}

func (h *harness) send(m any) { h.kit.Root().Send(h.hub, m) }

// barrier returns once the Hub has handled everything sent to it so far
// (the store's Committed batches included).
func (h *harness) barrier() {
	h.t.Helper()
	s := h.open(1 << 20)
	h.create(s, &pb.WatchCreateRequest{Key: []byte("barrier")})
	h.send(&watchactor.CloseStream{Out: s.Stream})
}

// create sends a create request and returns the created response.
func (h *harness) create(s *stream, req *pb.WatchCreateRequest) *pb.WatchResponse {
	h.t.Helper()
	h.send(&watchactor.Create{Out: s.Stream, Req: req})
	r := h.next(s)
	if !r.Created {
		h.t.Fatalf("want a created response, got %v", r)
	}
	return r
}

// next returns the next response queued on s, waiting for it.
func (h *harness) next(s *stream) *pb.WatchResponse {
	h.t.Helper()
	return h.take(s, 1)[0]
}

// take returns the next n responses of s, waiting for them, and sends
// Drained when the stream asks for it, as the gateway does.
func (h *harness) take(s *stream, n int) []*pb.WatchResponse {
	h.t.Helper()
	deadline := time.After(wait)
	for len(s.got) < n {
		select {
		case <-s.Ready():
		case <-deadline:
			h.t.Fatalf("got %d responses, want %d: %v", len(s.got), n, s.got)
		}
		items, err := s.Take()
		if err != nil {
			h.t.Fatalf("stream failed: %v", err)
		}
		for _, it := range items {
			s.got = append(s.got, it.Resp)
		}
		if s.Sent() {
			h.send(&watchactor.Drained{Out: s.Stream})
		}
	}
	out := s.got[:n:n]
	s.got = s.got[n:]
	return out
}

// quiet checks that nothing is queued on s within d.
func (h *harness) quiet(s *stream, d time.Duration) {
	h.t.Helper()
	if len(s.got) > 0 {
		h.t.Fatalf("unexpected responses %v", s.got)
	}
	select {
	case <-s.Ready():
		if items, err := s.Take(); len(items) > 0 || err != nil {
			h.t.Fatalf("unexpected responses %v, err %v", items, err)
		}
	case <-time.After(d):
	}
}

// evs renders events compactly: "PUT a=1@2" (mod revision), "DELETE a@3".
func evs(es []*mvccpb.Event) []string {
	var out []string
	for _, e := range es {
		s := e.Type.String() + " " + string(e.Kv.Key)
		if e.Type == mvccpb.Event_PUT {
			s += "=" + string(e.Kv.Value)
		}
		s += "@" + strconv.FormatInt(e.Kv.ModRevision, 10)
		if e.PrevKv != nil {
			s += " prev=" + string(e.PrevKv.Value)
		}
		out = append(out, s)
	}
	return out
}

package gateway

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/watchactor"
)

// FuzzWatch sends a stream of watch requests decoded from the fuzz input
// (create, cancel, progress; each a length byte then a WatchRequest)
// through the gateway's receive loop to the watch Hub of a world holding
// seedKV's history, then writes a few more revisions, and checks what the
// stream gets against etcd's rules:
//
//   - every create is answered, in order, with created (etcd's id choice)
//     or created-and-canceled with etcd's reason; a cancel of a live id
//     with canceled, any other with nothing;
//   - each watcher gets exactly the events of its range from its start
//     revision on, after its filters, with prev_kv when asked, and a
//     watcher starting below the compaction point gets the compacted
//     response and nothing else;
//   - a progress notification at revision R comes after every event at or
//     below R of the stream's watchers.
func FuzzWatch(f *testing.F) {
	create := func(c *pb.WatchCreateRequest) *pb.WatchRequest {
		return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}}
	}
	cancel := func(id int64) *pb.WatchRequest {
		return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}}
	}
	progress := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}
	for _, reqs := range [][]*pb.WatchRequest{
		{create(&pb.WatchCreateRequest{Key: []byte("a")}), progress},
		{create(&pb.WatchCreateRequest{Key: []byte("a"), RangeEnd: []byte("c0"), StartRevision: 4, PrevKv: true}), progress},
		{create(&pb.WatchCreateRequest{Key: []byte("b"), StartRevision: 2}), create(&pb.WatchCreateRequest{Key: []byte("b"), StartRevision: 3})},
		{create(&pb.WatchCreateRequest{RangeEnd: []byte{0}, StartRevision: 3, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}}),
			create(&pb.WatchCreateRequest{Key: []byte("c"), RangeEnd: []byte{0}, StartRevision: 14, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})},
		{create(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 5}), create(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 5}), cancel(5),
			create(&pb.WatchCreateRequest{Key: []byte("b"), WatchId: 5, StartRevision: 9}), cancel(6)},
		{create(&pb.WatchCreateRequest{Key: []byte("z"), RangeEnd: []byte("a")}), create(&pb.WatchCreateRequest{StartRevision: -1}),
			create(&pb.WatchCreateRequest{WatchId: 1}), create(&pb.WatchCreateRequest{}), create(&pb.WatchCreateRequest{})},
		{{}, create(&pb.WatchCreateRequest{Key: []byte("d"), StartRevision: 5, Fragment: true, ProgressNotify: true}), cancel(0), progress},
	} {
		f.Add(joinMessages(f, reqs...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs := splitMessages(data, func() *pb.WatchRequest { return new(pb.WatchRequest) })
		w := newWorld(t)
		m := seedKV(w)
		wm := newWatchModel(m)
		for _, r := range reqs {
			wm.request(r)
		}

		out := watchactor.NewStream(w.g.watchBudget)
		send := func(msg any) { w.g.cfg.Root.Send(w.g.cfg.Watch, msg) }
		send(&watchactor.OpenStream{Out: out})
		if err := w.g.recvWatch(&scriptedWatchStream{reqs: reqs}, out, send); err != nil {
			t.Fatal(err)
		}
		// More revisions, after every request reached the Hub: the live
		// path, on top of the history catch-up.
		for _, r := range []*pb.TxnRequest{
			{Success: []*pb.RequestOp{opPut("a", "post")}},
			{Success: []*pb.RequestOp{opDel("b", "")}},
			{Success: []*pb.RequestOp{opPut("c/9", "9"), opPut("\x00", "zero")}},
			{Success: []*pb.RequestOp{opDel("d", "\x00")}},
		} {
			if _, err := m.txnReq(r); err != nil {
				t.Fatal(err)
			}
			if _, err := w.kv().Txn(w.ctx, r); err != nil {
				t.Fatal(err)
			}
		}

		deadline := time.After(wait)
		for !wm.done() {
			select {
			case <-out.Ready():
			case <-deadline:
				t.Fatalf("requests %v\nstill waiting: %s", reqs, wm.waiting())
			}
			items, err := out.Take()
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				w.g.watchHeader(it.Resp.Header) // as the gateway's send loop
				wm.got(t, it.Resp)
			}
			if out.Sent() {
				send(&watchactor.Drained{Out: out})
			}
		}
		send(&watchactor.CloseStream{Out: out})
		w.noFailures()
	})
}

// scriptedWatchStream is the client's side of a watch stream that sends reqs
// and then closes.
type scriptedWatchStream struct {
	grpc.ServerStream
	reqs []*pb.WatchRequest
}

func (s *scriptedWatchStream) Context() context.Context { return context.Background() }

func (s *scriptedWatchStream) Recv() (*pb.WatchRequest, error) {
	if len(s.reqs) == 0 {
		return nil, io.EOF
	}
	r := proto.Clone(s.reqs[0]).(*pb.WatchRequest)
	s.reqs = s.reqs[1:]
	return r, nil
}

func (s *scriptedWatchStream) Send(*pb.WatchResponse) error { return nil }

// watchModel is etcd's watch stream (v3rpc/watch.go and mvcc's
// watchStream) over kvModel's history.
type watchModel struct {
	m        *kvModel
	createAt int64                   // the revision when the requests are handled
	ids      map[int64]*watcherModel // the stream's watchers by id
	nextID   int64                   // etcd's AutoWatchID counter
	control  []expectedControl       // created and canceled responses still to come, in order
	current  map[int64]*watcherModel // by id, as far as the responses got
}

// expectedControl is a created or canceled response and the watcher it
// creates, if any.
type expectedControl struct {
	resp *pb.WatchResponse
	w    *watcherModel
}

type watcherModel struct {
	id                      int64
	span                    span
	start                   int64
	noPut, noDelete, prevKV bool
	gotEvents               []*mvccpb.Event
	gotCompacted            bool
}

func newWatchModel(m *kvModel) *watchModel {
	return &watchModel{m: m, createAt: m.rev(), ids: map[int64]*watcherModel{}, current: map[int64]*watcherModel{}}
}

// request is what etcd does with r: it queues the control response, if
// any, and records the watcher.
func (wm *watchModel) request(r *pb.WatchRequest) {
	hdr := &pb.ResponseHeader{ClusterId: clusterID, MemberId: selfID, RaftTerm: 2, Revision: wm.createAt}
	switch u := r.RequestUnion.(type) {
	case *pb.WatchRequest_CreateRequest:
		c := u.CreateRequest
		refuse := func(reason string) {
			wm.control = append(wm.control, expectedControl{resp: &pb.WatchResponse{Header: hdr, WatchId: -1, Created: true, Canceled: true, CancelReason: reason}})
		}
		key, end := c.Key, c.RangeEnd
		if len(key) == 0 {
			key = []byte{0}
		}
		switch {
		case c.StartRevision < 0:
			refuse(rpctypes.ErrCompacted.Error())
			return
		case len(end) > 0 && !(len(end) == 1 && end[0] == 0) && string(key) >= string(end):
			refuse("mvcc: watcher range is empty")
			return
		}
		id := c.WatchId
		if id == 0 {
			for wm.ids[wm.nextID] != nil {
				wm.nextID++
			}
			id = wm.nextID
			wm.nextID++
		} else if wm.ids[id] != nil {
			refuse("mvcc: duplicate watch ID provided on the WatchStream")
			return
		}
		w := &watcherModel{id: id, span: span{key, end}, start: c.StartRevision, prevKV: c.PrevKv}
		if w.start == 0 {
			w.start = wm.createAt + 1
		}
		for _, f := range c.Filters {
			w.noPut = w.noPut || f == pb.WatchCreateRequest_NOPUT
			w.noDelete = w.noDelete || f == pb.WatchCreateRequest_NODELETE
		}
		wm.ids[id] = w
		wm.control = append(wm.control, expectedControl{&pb.WatchResponse{Header: hdr, WatchId: id, Created: true}, w})
	case *pb.WatchRequest_CancelRequest:
		if w := wm.ids[u.CancelRequest.WatchId]; w != nil {
			delete(wm.ids, w.id)
			wm.control = append(wm.control, expectedControl{resp: &pb.WatchResponse{Header: hdr, WatchId: w.id, Canceled: true}})
		}
	}
}

// compacted reports whether w starts below the compaction point.
func (wm *watchModel) compacted(w *watcherModel) bool { return w.start < wm.m.compact }

// want is every event w must get, in order.
func (wm *watchModel) want(w *watcherModel) []*mvccpb.Event {
	var out []*mvccpb.Event
	if wm.compacted(w) {
		return nil
	}
	for rev := max(w.start, 1); rev <= wm.m.rev(); rev++ {
		for _, ev := range wm.m.events[rev] {
			if !w.span.holds(string(ev.Kv.Key)) || (ev.Type == mvccpb.Event_PUT && w.noPut) || (ev.Type == mvccpb.Event_DELETE && w.noDelete) {
				continue
			}
			ev = proto.Clone(ev).(*mvccpb.Event)
			if prev := wm.m.states[rev-1][string(ev.Kv.Key)]; w.prevKV && prev != nil && ev.Kv.CreateRevision != ev.Kv.ModRevision {
				ev.PrevKv = prev
			}
			out = append(out, ev)
		}
	}
	return out
}

// got checks one response the stream received.
func (wm *watchModel) got(t *testing.T, r *pb.WatchResponse) {
	t.Helper()
	switch {
	case r.Created || (r.Canceled && r.CompactRevision == 0 && len(r.Events) == 0):
		if len(wm.control) == 0 {
			t.Fatalf("unexpected %s", prototext.Format(r))
		}
		want := wm.control[0]
		wm.control = wm.control[1:]
		if !proto.Equal(r, want.resp) {
			t.Fatalf("got %s\nwant %s", prototext.Format(r), prototext.Format(want.resp))
		}
		if want.w != nil {
			wm.current[r.WatchId] = want.w
		} else if !r.Created {
			delete(wm.current, r.WatchId)
		}
	case r.CompactRevision != 0:
		w := wm.current[r.WatchId]
		if w == nil || !wm.compacted(w) || w.gotCompacted || !r.Canceled || r.CompactRevision != wm.m.compact || len(r.Events) > 0 {
			t.Fatalf("unexpected %s", prototext.Format(r))
		}
		w.gotCompacted = true
	case len(r.Events) == 0:
		if r.WatchId != -1 || r.Header.GetRevision() < wm.createAt {
			t.Fatalf("unexpected %s", prototext.Format(r))
		}
		// A progress notification: nothing at or below its revision is
		// still to come for any watcher of the stream.
		for _, w := range wm.current {
			want := wm.want(w)
			n := 0
			for n < len(want) && want[n].Kv.ModRevision <= r.Header.Revision {
				n++
			}
			if len(w.gotEvents) < n {
				t.Fatalf("progress at %d before watcher %d got %d events of %d up to there", r.Header.Revision, w.id, len(w.gotEvents), n)
			}
		}
	default:
		w := wm.current[r.WatchId]
		if w == nil {
			t.Fatalf("events for no watcher: %s", prototext.Format(r))
		}
		w.gotEvents = append(w.gotEvents, r.Events...)
		want := wm.want(w)
		if len(w.gotEvents) > len(want) {
			t.Fatalf("watcher %d got %d events, want %d: %v", w.id, len(w.gotEvents), len(want), w.gotEvents)
		}
		for i, ev := range w.gotEvents {
			if !proto.Equal(ev, want[i]) {
				t.Fatalf("watcher %d: event %d is %s, want %s", w.id, i, prototext.Format(ev), prototext.Format(want[i]))
			}
		}
	}
}

// done: every control response came, and every watcher still live got all
// its events (or its compacted response).
func (wm *watchModel) done() bool { return wm.waiting() == "" }

func (wm *watchModel) waiting() string {
	if len(wm.control) > 0 {
		return prototext.Format(wm.control[0].resp)
	}
	for _, w := range wm.ids {
		if wm.compacted(w) && !w.gotCompacted || len(w.gotEvents) < len(wm.want(w)) {
			return fmt.Sprintf("watcher %d: %d events of %d", w.id, len(w.gotEvents), len(wm.want(w)))
		}
	}
	return ""
}

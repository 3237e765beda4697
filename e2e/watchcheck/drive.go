package watchcheck

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// StreamCtx returns ctx marked so that clientv3 puts the watchers created
// with it on their own gRPC watch stream (clientv3 shares one stream among
// the watchers whose contexts carry the same metadata). Use the returned
// context with Client.RequestProgress to reach that stream.
func StreamCtx(ctx context.Context, name string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "watchcheck-stream", name)
}

// ClientWatcher is one incarnation of a watcher run through clientv3.
type ClientWatcher struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// ClientWatch starts the recording's current incarnation through clientv3
// (with created notifications, so that a watcher from revision 0 learns its
// start) and records every response until ctx ends or Stop is called.
func ClientWatch(ctx context.Context, cli *clientv3.Client, rec *Recording) *ClientWatcher {
	spec := rec.Spec()
	opts := []clientv3.OpOption{clientv3.WithCreatedNotify()}
	if spec.StartRev > 0 {
		opts = append(opts, clientv3.WithRev(spec.StartRev))
	}
	switch spec.End {
	case "":
	case "\x00":
		opts = append(opts, clientv3.WithFromKey())
	default:
		opts = append(opts, clientv3.WithRange(spec.End))
	}
	if spec.PrevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if spec.NoPut {
		opts = append(opts, clientv3.WithFilterPut())
	}
	if spec.NoDelete {
		opts = append(opts, clientv3.WithFilterDelete())
	}
	if spec.Fragment {
		opts = append(opts, clientv3.WithFragment())
	}
	if spec.ProgressNotify {
		opts = append(opts, clientv3.WithProgressNotify())
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &ClientWatcher{cancel: cancel, done: make(chan struct{})}
	ch := cli.Watch(ctx, spec.Key, opts...)
	go func() {
		defer close(w.done)
		for resp := range ch {
			rec.Add(FromClient(resp))
		}
	}()
	return w
}

// Stop cancels the watcher and waits until its channel is closed.
func (w *ClientWatcher) Stop() {
	w.cancel()
	<-w.done
}

// Done is closed when the watcher's channel has been closed.
func (w *ClientWatcher) Done() <-chan struct{} { return w.done }

// RawStream is one raw gRPC watch stream with any number of watchers, each
// recorded in its own Recording. Nothing is read unless Recv is called, so
// a test decides how fast (or whether) the stream is read. Watch, Cancel and
// RequestProgress may be called concurrently with Recv.
type RawStream struct {
	stream pb.Watch_WatchClient
	sendMu sync.Mutex

	mu     sync.Mutex
	recs   map[int64]*Recording
	nextID int64
	// created holds the watchers whose created response has arrived: a
	// stream-wide progress notification covers only those. One that
	// arrives before a watcher's created response was asked for before
	// the server had the create (responses come in request order), so it
	// promises nothing about that watcher.
	created map[int64]bool
	// Unrouted holds responses for no known watcher (read it after Recv
	// has stopped).
	Unrouted []Response
}

// OpenRawStream opens a watch stream on conn. The stream lives until ctx
// ends or CloseSend is called and the server ends it.
func OpenRawStream(ctx context.Context, conn grpc.ClientConnInterface) (*RawStream, error) {
	st, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		return nil, err
	}
	return &RawStream{stream: st, recs: map[int64]*Recording{}, created: map[int64]bool{}, nextID: 1}, nil
}

// Watch creates a watcher for the recording's current incarnation, with a
// watch id of its own (client-assigned, from 1 up), and returns that id.
func (s *RawStream) Watch(rec *Recording) (int64, error) {
	spec := rec.Spec()
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.recs[id] = rec
	s.mu.Unlock()
	req := &pb.WatchCreateRequest{
		Key: []byte(spec.Key), StartRevision: spec.StartRev, WatchId: id,
		PrevKv: spec.PrevKV, Fragment: spec.Fragment, ProgressNotify: spec.ProgressNotify,
	}
	if spec.End != "" {
		req.RangeEnd = []byte(spec.End)
	}
	if spec.NoPut {
		req.Filters = append(req.Filters, pb.WatchCreateRequest_NOPUT)
	}
	if spec.NoDelete {
		req.Filters = append(req.Filters, pb.WatchCreateRequest_NODELETE)
	}
	return id, s.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}})
}

// Cancel asks the server to cancel watcher id; its canceled response ends
// the recording's incarnation.
func (s *RawStream) Cancel(id int64) error {
	return s.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{
		CancelRequest: &pb.WatchCancelRequest{WatchId: id}}})
}

// RequestProgress sends a progress request for the whole stream.
func (s *RawStream) RequestProgress() error {
	return s.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{
		ProgressRequest: &pb.WatchProgressRequest{}}})
}

// CloseSend closes the client's side of the stream.
func (s *RawStream) CloseSend() error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.CloseSend()
}

func (s *RawStream) send(req *pb.WatchRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(req)
}

// Recv reads one response and records it: a response for a watch id goes
// to that watcher's recording (a canceled one ends it), a stream-wide
// progress notification (watch id -1) to every watcher already created.
func (s *RawStream) Recv() (Response, error) {
	pr, err := s.stream.Recv()
	if err != nil {
		return Response{}, err
	}
	r := FromPB(pr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.WatchID == -1 && r.IsProgress() {
		for id, rec := range s.recs {
			if s.created[id] {
				rec.Add(r)
			}
		}
		return r, nil
	}
	rec := s.recs[r.WatchID]
	if rec == nil {
		s.Unrouted = append(s.Unrouted, r)
		return r, nil
	}
	rec.Add(r)
	if r.Created {
		s.created[r.WatchID] = true
	}
	if r.Canceled {
		delete(s.recs, r.WatchID)
		delete(s.created, r.WatchID)
	}
	return r, nil
}

// RecvLoop calls Recv until it fails, calling pace (if not nil) before each
// read; it returns the error that ended it (nil for a clean end of stream
// or a canceled context).
func (s *RawStream) RecvLoop(pace func()) error {
	for {
		if pace != nil {
			pace()
		}
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, context.Canceled) || isEOF(err) || isCanceledStatus(err) {
				return nil
			}
			return err
		}
	}
}

// Truth collects the history with a clientv3 watcher over all keys with
// prev_kv, on a stream of its own.
type Truth struct {
	cli  *clientv3.Client
	ctx  context.Context
	from int64
	rec  *Recording
	w    *ClientWatcher
}

// CollectTruth starts watching every key from revision from. The watcher
// must keep up with the writes (clientv3 buffers without bound, so it
// does unless the server stalls it) and must not fall behind a compaction.
func CollectTruth(ctx context.Context, cli *clientv3.Client, from int64) *Truth {
	ctx = StreamCtx(ctx, fmt.Sprintf("truth-%p", cli))
	t := &Truth{cli: cli, ctx: ctx, from: from,
		rec: NewRecording("truth", Spec{Key: "\x00", End: "\x00", StartRev: from, PrevKV: true})}
	t.w = ClientWatch(ctx, cli, t.rec)
	return t
}

// Recording is what the truth watcher received.
func (t *Truth) Recording() *Recording { return t.rec }

// History waits until the truth watcher has seen revision to (asking for
// progress notifications meanwhile), stops it, and returns the history of
// [from, to].
func (t *Truth) History(ctx context.Context, to int64) (*History, error) {
	defer t.w.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; t.rec.LastSeen() < to; i++ {
		if canceled, compact := t.rec.Ended(); canceled {
			return nil, fmt.Errorf("truth watcher canceled (compact revision %d) after revision %d", compact, t.rec.LastSeen())
		}
		if i%10 == 9 {
			_ = t.cli.RequestProgress(t.ctx)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("truth watcher saw up to revision %d of %d: %w", t.rec.LastSeen(), to, ctx.Err())
		case <-tick.C:
		}
	}
	h := NewHistory(t.from)
	for _, seg := range t.rec.Segments() {
		for _, r := range seg.Resps {
			for _, ev := range r.Events {
				if ev.Kv.ModRevision > to {
					break
				}
				if err := h.Add(ev); err != nil {
					return nil, err
				}
			}
		}
	}
	h.Extend(to)
	return h, nil
}

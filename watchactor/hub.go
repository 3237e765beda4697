package watchactor

import (
	"bytes"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// MinProgressInterval is etcd's floor for --watch-progress-notify-interval.
const MinProgressInterval = 100 * time.Millisecond

// Config is what a Hub needs.
type Config struct {
	Store  *storeactor.Reader // history, prev_kv and the compaction point
	Clock  actors.Clock
	Logger *zap.Logger

	// ProgressInterval is --watch-progress-notify-interval: how often
	// watchers created with progress_notify that got no events meanwhile
	// are told the current revision. 0 disables; like etcd, values below
	// MinProgressInterval are raised to it.
	ProgressInterval time.Duration
	// ScanPerStep and BytesPerStep bound the history changes one catch-up
	// step reads, and the keys and values it keeps.
	ScanPerStep, BytesPerStep int
	// WatchersPerStep bounds the unsynced watchers one catch-up step serves.
	WatchersPerStep int
}

// etcd's mvcc errors, as watch create responses carry them in cancel_reason.
const (
	reasonEmptyRange  = "mvcc: watcher range is empty"
	reasonDuplicateID = "mvcc: duplicate watch ID provided on the WatchStream"
)

// errRestarted ends the streams open when the Hub restarts: Unavailable
// makes clientv3 reconnect and resume each watcher after its last event.
var errRestarted = status.Error(codes.Unavailable, "etcdserver: watch service restarted")

// errReadFailed ends a stream whose watchers need what the store could not
// read (history to catch up from, an event's prev_kv): Unavailable, as
// errRestarted, so that clientv3 opens a new stream and resumes each
// watcher after the last event it got (from this member once its disk
// reads again, or from another), instead of missing an event or getting
// one without the prev_kv it asked for. etcd sends such an event without
// its prev_kv.
func errReadFailed(err error) error {
	return status.Error(codes.Unavailable, "etcdserver: watch stream failed to read the store: "+err.Error())
}

// Hub owns every watcher of the node.
type Hub struct {
	cfg Config
	ctx actor.Context

	// streams outlives restarts of the actor (it is created with the
	// props), so that a restarted Hub can fail the streams its predecessor
	// served instead of leaving them silent.
	streams map[*Stream]*streamState

	rev        int64 // every revision up to here has been handed to synced watchers
	synced     index
	unsynced   watcherSet
	stepQueued bool // a syncStep is in the mailbox
	stopTick   func()

	watchers int        // watchers of all streams
	gauges   *hubGauges // outlives restarts, as streams (metrics.go)
	failLog  *actors.LogLimiter
}

// streamState is the Hub's side of one Stream.
type streamState struct {
	out      *Stream
	watchers map[int64]*watcher
	nextID   int64 // next automatic watch id to try
	stalled  bool  // out refused a push; wait for Drained before catching up
	failed   bool  // the Hub ended it (failStream): it has no watchers any more
}

type watcher struct {
	id       int64
	st       *streamState
	rng      rangeID // rng.key alone when single
	single   bool
	startRev int64
	nextRev  int64 // first revision not yet queued (or filtered out) for it

	noPut, noDelete, prevKV, fragment, progressNotify bool

	quiet  bool // no events queued since the last progress tick
	synced bool
}

func (w *watcher) isRange() bool { return !w.single }

// New returns the Hub's props.
func New(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = actors.RealClock
	}
	if cfg.ProgressInterval > 0 && cfg.ProgressInterval < MinProgressInterval {
		cfg.Logger.Warn("adjusting watch progress notify interval to minimum period",
			zap.Duration("min-watch-progress-notify-interval", MinProgressInterval))
		cfg.ProgressInterval = MinProgressInterval
	}
	if cfg.ScanPerStep <= 0 {
		cfg.ScanPerStep = 1000
	}
	if cfg.BytesPerStep <= 0 {
		cfg.BytesPerStep = 8 << 20
	}
	if cfg.WatchersPerStep <= 0 {
		cfg.WatchersPerStep = 512
	}
	streams := map[*Stream]*streamState{}
	gauges := &hubGauges{}
	failLog := actors.NewLogLimiter(cfg.Clock, time.Second)
	return actor.PropsFromProducer(func() actor.Actor {
		return &Hub{cfg: cfg, streams: streams, gauges: gauges, failLog: failLog}
	}, actors.KeepStopped())
}

func (h *Hub) Receive(ctx actor.Context) {
	h.ctx = ctx
	switch m := ctx.Message().(type) {
	case *actor.Started:
		h.start(ctx)
	case *actor.Stopping, *actor.Restarting:
		if h.stopTick != nil {
			h.stopTick()
		}
	case *storeactor.Committed:
		h.committed(m)
	case syncStep:
		h.stepQueued = false
		h.syncStep()
	case progressTick:
		h.progressTick()
	case *OpenStream:
		h.streams[m.Out] = &streamState{out: m.Out, watchers: map[int64]*watcher{}}
	case *CloseStream:
		if st := h.streams[m.Out]; st != nil {
			for _, w := range st.watchers {
				h.drop(w)
			}
			delete(h.streams, m.Out)
		}
	case *Create:
		if st := h.streams[m.Out]; st != nil {
			h.create(st, m.Req, m.Refused)
		}
		m.Out.Handled()
	case *Cancel:
		if st := h.streams[m.Out]; st != nil {
			h.cancel(st, m.WatchID)
		}
		m.Out.Handled()
	case *RequestProgress:
		if st := h.streams[m.Out]; st != nil {
			h.requestProgress(st)
		}
		m.Out.Handled()
	case *Drained:
		if st := h.streams[m.Out]; st != nil {
			st.stalled = false
			h.scheduleSync()
		}
	}
	h.report(isStopping(ctx.Message()))
}

func (h *Hub) start(ctx actor.Context) {
	for s := range h.streams {
		s.fail(errRestarted)
		delete(h.streams, s)
		streamsFailedRestart.Inc()
	}
	h.rev = h.cfg.Store.View().Rev
	h.synced = newIndex()
	h.unsynced = watcherSet{}
	if h.cfg.ProgressInterval > 0 {
		self, root := ctx.Self(), ctx.ActorSystem().Root
		h.stopTick = h.cfg.Clock.Every(h.cfg.ProgressInterval, func() { root.Send(self, progressTick{}) })
	}
}

func (h *Hub) header(rev int64) *pb.ResponseHeader { return &pb.ResponseHeader{Revision: rev} }

// create registers a watcher, checking the request as etcd's v3rpc and
// mvcc layers do, in their order.
func (h *Hub) create(st *streamState, req *pb.WatchCreateRequest, refused string) {
	refuse := func(reason string) {
		st.out.pushControl(&pb.WatchResponse{
			Header: h.header(h.rev), WatchId: -1, Created: true, Canceled: true, CancelReason: reason,
		})
	}
	if refused != "" {
		refuse(refused)
		return
	}
	if req.StartRevision < 0 {
		refuse(rpctypes.ErrCompacted.Error())
		return
	}
	key, end := req.Key, req.RangeEnd
	if len(key) == 0 {
		key = []byte{0}
	}
	w := &watcher{st: st, startRev: req.StartRevision, prevKV: req.PrevKv, fragment: req.Fragment,
		progressNotify: req.ProgressNotify, quiet: true}
	switch {
	case len(end) == 0:
		w.single, w.rng = true, rangeID{key: string(key)}
	case len(end) == 1 && end[0] == 0:
		w.rng = rangeID{key: string(key), fromKey: true}
	case bytes.Compare(key, end) >= 0:
		refuse(reasonEmptyRange)
		return
	default:
		w.rng = rangeID{key: string(key), end: string(end)}
	}
	for _, f := range req.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDelete = true
		}
	}
	w.id = req.WatchId
	if w.id == 0 { // etcd's AutoWatchID
		for st.watchers[st.nextID] != nil {
			st.nextID++
		}
		w.id = st.nextID
		st.nextID++
	} else if st.watchers[w.id] != nil {
		refuse(reasonDuplicateID)
		return
	}
	st.watchers[w.id] = w
	h.watchers++
	st.out.pushControl(&pb.WatchResponse{Header: h.header(h.rev), WatchId: w.id, Created: true})
	if w.startRev == 0 || w.startRev > h.rev {
		w.nextRev = max(h.rev+1, w.startRev)
		h.setSynced(w)
		return
	}
	w.nextRev = w.startRev
	h.unsynced[w] = struct{}{}
	h.scheduleSync()
}

func (h *Hub) cancel(st *streamState, id int64) {
	w := st.watchers[id]
	if w == nil {
		return
	}
	h.drop(w)
	st.out.pushControl(&pb.WatchResponse{Header: h.header(h.rev), WatchId: id, Canceled: true})
}

// drop forgets a watcher: synced, unsynced, or stopped by a compaction
// (in neither set).
func (h *Hub) drop(w *watcher) {
	delete(w.st.watchers, w.id)
	h.watchers--
	if w.synced {
		h.synced.remove(w)
	} else {
		delete(h.unsynced, w)
	}
}

func (h *Hub) setSynced(w *watcher) {
	delete(h.unsynced, w)
	w.synced = true
	h.synced.add(w)
}

// setUnsynced moves a synced watcher to catch-up from nextRev.
func (h *Hub) setUnsynced(w *watcher, nextRev int64) {
	h.synced.remove(w)
	w.synced = false
	w.nextRev = nextRev
	h.unsynced[w] = struct{}{}
	h.scheduleSync()
}

func (h *Hub) scheduleSync() {
	if !h.stepQueued {
		h.stepQueued = true
		h.ctx.Send(h.ctx.Self(), syncStep{})
	}
}

// requestProgress answers a stream's progress request as etcd does: one
// notification (watch id -1) at the current revision if every watcher of
// the stream is synced and past its start; nothing otherwise, and nothing
// for a stream without watchers.
func (h *Hub) requestProgress(st *streamState) {
	if len(st.watchers) == 0 {
		return
	}
	for _, w := range st.watchers {
		if !w.synced || h.rev < w.startRev {
			return
		}
	}
	st.out.pushProgress(&pb.WatchResponse{Header: h.header(h.rev), WatchId: -1})
}

// progressTick notifies the progress_notify watchers that got no events
// since the previous tick, if they are synced (etcd's rule: a progress
// notification promises no event at or below its revision is still to come).
func (h *Hub) progressTick() {
	defer func(start time.Time) { progressSec.Observe(time.Since(start).Seconds()) }(time.Now())
	for _, st := range h.streams {
		for _, w := range st.watchers {
			if !w.progressNotify {
				continue
			}
			if w.quiet && w.synced && h.rev >= w.startRev {
				st.out.pushProgress(&pb.WatchResponse{Header: h.header(h.rev), WatchId: w.id})
			}
			w.quiet = true
		}
	}
}

// committed hands an apply batch's events to the synced watchers, one
// response per watcher and revision, as etcd does.
func (h *Hub) committed(m *storeactor.Committed) {
	if m.Rev <= h.rev {
		return // published before this Hub started: it read the revision then
	}
	if m.From > h.rev+1 {
		// Batches were lost (a restart of the store between commit and
		// send): everyone synced catches up from pebble instead.
		h.cfg.Logger.Warn("watch hub missed store batches; catching up from history",
			zap.Int64("hub-rev", h.rev), zap.Int64("from", m.From))
		for _, set := range h.synced.keys {
			for w := range set {
				h.setUnsynced(w, max(w.nextRev, h.rev+1))
			}
		}
		for _, set := range h.synced.ranges {
			for w := range set {
				h.setUnsynced(w, max(w.nextRev, h.rev+1))
			}
		}
		h.rev = m.Rev
		return
	}
	evs := m.Events
	for len(evs) > 0 && !h.synced.empty() {
		rev, n := evs[0].Kv.ModRevision, 1
		for n < len(evs) && evs[n].Kv.ModRevision == rev {
			n++
		}
		if rev > h.rev {
			h.deliver(rev, evs[:n])
		}
		evs = evs[n:]
	}
	h.rev = m.Rev
}

// deliver queues one revision's events for the synced watchers they match.
func (h *Hub) deliver(rev int64, evs []*mvccpb.Event) {
	if len(evs) == 1 {
		// The common case: every matching watcher gets the same one-event
		// slice (responses only read it).
		var ws []*watcher
		h.synced.match(evs[0].Kv.Key, func(w *watcher) {
			if rev >= w.nextRev { // else it starts at a future revision
				ws = append(ws, w)
			}
		})
		for _, w := range ws {
			h.deliverTo(w, rev, evs)
		}
		return
	}
	var batch map[*watcher][]*mvccpb.Event
	for _, ev := range evs {
		h.synced.match(ev.Kv.Key, func(w *watcher) {
			if rev < w.nextRev {
				return
			}
			if batch == nil {
				batch = map[*watcher][]*mvccpb.Event{}
			}
			batch[w] = append(batch[w], ev)
		})
	}
	for w, wevs := range batch {
		h.deliverTo(w, rev, wevs)
	}
}

// deliverTo queues revision rev's events for w, or sends w to catch-up
// from rev when its stream is full.
func (h *Hub) deliverTo(w *watcher, rev int64, evs []*mvccpb.Event) {
	switch {
	case h.send(w, rev, evs):
		w.nextRev = rev + 1
	case !w.st.failed:
		h.setUnsynced(w, rev)
	}
}

// send queues evs (of revisions up to and including those the caller
// accounts for) for w with the given header revision, after w's filters
// and with prev_kv when w asked for it. It reports false when the stream
// refused them, or has failed (a prev_kv could not be read: see
// failStream); nothing was queued then.
func (h *Hub) send(w *watcher, hdrRev int64, evs []*mvccpb.Event) bool {
	if w.st.failed {
		return false // one of its other watchers failed it in this pass
	}
	if w.noPut || w.noDelete {
		kept := make([]*mvccpb.Event, 0, len(evs))
		for _, ev := range evs {
			if (ev.Type == mvccpb.Event_PUT && w.noPut) || (ev.Type == mvccpb.Event_DELETE && w.noDelete) {
				continue
			}
			kept = append(kept, ev)
		}
		evs = kept
	}
	if len(evs) == 0 {
		return true
	}
	if w.prevKV {
		withPrev := make([]*mvccpb.Event, len(evs))
		for i, ev := range evs {
			withPrev[i] = ev
			if ev.Type == mvccpb.Event_PUT && ev.Kv.CreateRevision == ev.Kv.ModRevision {
				continue // a create has no previous version (etcd's IsCreateEvent)
			}
			prev, err := h.cfg.Store.PrevKV(ev.Kv.Key, ev.Kv.ModRevision)
			if err != nil {
				h.failStream(w.st, fmt.Errorf("read prev_kv of %q at %d: %w", ev.Kv.Key, ev.Kv.ModRevision, err))
				return false
			}
			if prev != nil {
				withPrev[i] = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv, PrevKv: prev}
			}
		}
		evs = withPrev
	}
	r := &response{hdr: pb.ResponseHeader{Revision: hdrRev}}
	r.resp.Header, r.resp.WatchId, r.resp.Events = &r.hdr, w.id, evs
	resp := &r.resp
	if !w.st.out.pushEvents(Outgoing{Resp: resp, Fragment: w.fragment}, eventsSize(evs)) {
		w.st.stalled = true
		return false
	}
	w.quiet = false
	return true
}

// failStream ends st, after what is already queued, with errReadFailed:
// its watchers need what the store could not read. The Hub forgets them at
// once (no more reads for them); the handler sends the client what was
// queued, then the error, and closes the stream.
func (h *Hub) failStream(st *streamState, err error) {
	if st.failed {
		return
	}
	if ok, held := h.failLog.Allow(); ok {
		h.cfg.Logger.Error("failed a watch stream: cannot read the store", zap.Error(err),
			zap.Int("watchers", len(st.watchers)), zap.Int64("unlogged-since-last", held))
	}
	streamsFailedRead.Inc()
	for _, w := range st.watchers {
		h.drop(w)
	}
	delete(h.streams, st.out)
	st.failed = true
	st.out.fail(errReadFailed(err))
}

// response allocates a response and its header together: the live path
// makes one per watcher and revision.
type response struct {
	resp pb.WatchResponse
	hdr  pb.ResponseHeader
}

// eventsSize estimates the memory a queued response with evs holds: the
// response, its header and event slice (about 256 bytes of Go objects) and
// the events, counted in full although watchers of one revision share them.
func eventsSize(evs []*mvccpb.Event) int64 {
	n := 256
	for _, ev := range evs {
		n += 160 + len(ev.Kv.Key) + len(ev.Kv.Value)
		if ev.PrevKv != nil {
			n += 96 + len(ev.PrevKv.Key) + len(ev.PrevKv.Value)
		}
	}
	return int64(n)
}

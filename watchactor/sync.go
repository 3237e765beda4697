package watchactor

import (
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// syncStep serves up to WatchersPerStep unsynced watchers from history:
// those behind the compaction point get etcd's compacted response and stop; the rest get the events of the next bounded slice of history
// (one response each, header at the Hub's revision, as etcd's catch-up
// does) and join the synced index once they reach the Hub's revision. If
// any remain, the next step is queued behind whatever arrived meanwhile.
func (h *Hub) syncStep() {
	compactRev := h.cfg.Store.View().CompactRev
	chosen := newIndex()
	var ws []*watcher
	minRev := h.rev + 1
	for w := range h.unsynced {
		if w.st.stalled {
			continue
		}
		if w.nextRev < compactRev {
			// As in etcd, the watcher is done but keeps its id on the
			// stream (never synced again) until the client cancels it.
			w.st.out.pushControl(&pb.WatchResponse{
				Header: h.header(0), WatchId: w.id, CompactRevision: compactRev, Canceled: true,
			})
			delete(h.unsynced, w)
			continue
		}
		if w.nextRev > h.rev {
			h.setSynced(w)
			continue
		}
		if len(ws) == h.cfg.WatchersPerStep {
			break
		}
		ws = append(ws, w)
		chosen.add(w)
		minRev = min(minRev, w.nextRev)
	}
	if len(ws) == 0 {
		return
	}
	evs, last, err := h.cfg.Store.History(minRev, h.rev, h.cfg.ScanPerStep, h.cfg.BytesPerStep, chosen.holds)
	if errors.Is(err, rpctypes.ErrGRPCCompacted) {
		h.scheduleSync() // the next step answers those now behind the compaction
		return
	}
	if err != nil {
		// Only the watchers that needed this read fail (their streams);
		// the rest of the Hub serves on, and the next step reads again
		// for whoever else is behind.
		err = fmt.Errorf("read history %d..%d: %w", minRev, h.rev, err)
		for _, w := range ws {
			h.failStream(w.st, err)
		}
		h.moreToSync()
		return
	}
	per := map[*watcher][]*mvccpb.Event{}
	for _, ev := range evs {
		chosen.match(ev.Kv.Key, func(w *watcher) {
			if ev.Kv.ModRevision >= w.nextRev {
				per[w] = append(per[w], ev)
			}
		})
	}
	for _, w := range ws {
		if w.nextRev > last || !h.send(w, h.rev, per[w]) {
			continue // nothing read for it yet, or its stream is full or failed
		}
		w.nextRev = last + 1
		if w.nextRev > h.rev {
			h.setSynced(w)
		}
	}
	h.moreToSync()
}

// moreToSync queues another step if an unsynced watcher can make progress.
func (h *Hub) moreToSync() {
	for w := range h.unsynced {
		if !w.st.stalled {
			h.scheduleSync()
			return
		}
	}
}

package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// Snapshot transfer: POST /raft/snapshot, body = frame(MsgSnap) ‖ data.
//
// It has its own request (and so its own connection) because the data can
// be gigabytes: on the stream it would delay every heartbeat and append
// behind it, and the stream's write timeout would have to allow for it.
// Raft sends a peer at most one MsgSnap and waits for ReportSnapshot before
// the next, so one transfer per peer is all there is; another MsgSnap
// arriving meanwhile is refused at once (reported failed) rather than
// queued behind gigabytes.
//
// The outcome reaches raft exactly once per MsgSnap handed to Send:
// SnapshotStatus(false) after the receiver answered 204 (it has stored the
// data and delivered the message), SnapshotStatus(true) otherwise.

// snapshots is the peer's snapshot goroutine.
func (p *peer) snapshots() {
	defer p.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case m := <-p.snapc:
			start := time.Now()
			to := idString(p.id)
			inflight := snapshotSendInflights.WithLabelValues(to)
			inflight.Inc()
			n, err := p.sendSnapshot(m)
			inflight.Dec()
			if err != nil {
				snapshotSendFailures.WithLabelValues(to).Inc()
				p.m.sentFailures.Inc()
			} else {
				snapshotSend.WithLabelValues(to).Inc()
				snapshotSendSeconds.WithLabelValues(to).Observe(time.Since(start).Seconds())
				p.m.sentBytes.Add(float64(n))
			}
			log := p.t.log.With(zap.String("remote-peer-id", idString(p.id)),
				zap.Uint64("snapshot-index", m.GetSnapshot().GetMetadata().GetIndex()),
				zap.Int64("bytes", n), zap.Duration("took", time.Since(start)))
			if err != nil {
				log.Warn("failed to send snapshot", zap.Error(err))
			} else {
				log.Info("sent snapshot")
			}
			// Free the slot first: raft may answer the status with the
			// next MsgSnap at once.
			p.snapBusy.Store(false)
			p.t.snapshotStatus(p.id, err != nil)
		}
	}
}

// sendSnapshot transfers one snapshot; n is the number of data bytes read
// from OpenSnapshot.
func (p *peer) sendSnapshot(m *raftpb.Message) (n int64, err error) {
	urls := *p.urls.Load()
	base := ""
	if g := p.good.Load(); g != nil {
		base = *g
	} else if len(urls) > 0 {
		base = urls[0]
	} else {
		return 0, errNoURLs
	}
	if err := p.checkURL(base); err != nil {
		return 0, err
	}
	head, err := appendFrame(nil, m)
	if err != nil {
		return 0, err
	}
	data, err := p.t.cfg.OpenSnapshot(m)
	if err != nil {
		return 0, fmt.Errorf("open snapshot: %w", err)
	}
	defer func() {
		// Removes the checkpoint (a full copy of the DB) behind data.
		if cerr := data.Close(); cerr != nil {
			p.t.log.Warn("failed to release snapshot data", zap.String("remote-peer-id", idString(p.id)), zap.Error(cerr))
		}
	}()
	cr := &countingReader{r: data}

	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, base+pathSnapshot,
		io.MultiReader(bytes.NewReader(head), cr))
	if err != nil {
		return 0, err
	}
	req.ContentLength = -1
	p.t.setRequestHeaders(req.Header, p.id)
	resp, err := p.client.Do(req)
	if err != nil {
		if p.ctx.Err() == nil {
			p.t.unreachable(p.id)
		}
		return cr.n.Load(), err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode == http.StatusGone {
			p.t.removed(p.id)
		}
		return cr.n.Load(), fmt.Errorf("peer answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return cr.n.Load(), nil
}

// countingReader counts the bytes read through it. Atomic: when a peer
// answers a snapshot before reading all of it, net/http's writer may still
// be reading the body while the sender looks at the count.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

var errSnapshotDataRefused = errors.New("snapshot data refused: this member cannot receive snapshots")

// handleSnapshot receives one snapshot: header, data to ReceiveSnapshot,
// then Deliver, then 204. Any failure answers an error and delivers nothing.
func (t *Transport) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	from, ok := t.checkPeerRequest(w, r)
	if !ok {
		return
	}
	in := t.register(w, from, false)
	if in == nil {
		refuse(w, errStopped.Error(), http.StatusServiceUnavailable)
		return
	}
	defer t.unregister(in)
	log := t.log.With(zap.String("remote-peer-id", idString(from)))
	start, fromID := time.Now(), idString(from)
	inflight := snapshotReceiveInflights.WithLabelValues(fromID)
	inflight.Inc()
	defer inflight.Dec()
	cr := &countingReader{r: r.Body}
	ok = false
	defer func() {
		receivedBytes.WithLabelValues(fromID).Add(float64(cr.n.Load()))
		if ok {
			snapshotReceive.WithLabelValues(fromID).Inc()
			snapshotReceiveSeconds.WithLabelValues(fromID).Observe(time.Since(start).Seconds())
		} else {
			snapshotReceiveFailures.WithLabelValues(fromID).Inc()
			recvFailures.WithLabelValues(fromID).Inc()
		}
	}()

	br := bufio.NewReaderSize(cr, streamBufSize)
	m, _, err := readFrame(br, nil)
	if err != nil {
		log.Warn("bad snapshot request", zap.Error(err))
		refuse(w, "bad snapshot header: "+err.Error(), http.StatusBadRequest)
		return
	}
	if m.GetType() != raftpb.MsgSnap || m.GetFrom() != from || m.GetTo() != t.cfg.ID {
		log.Warn("bad snapshot request", zap.Stringer("type", m.GetType()),
			zap.String("message-from", idString(m.GetFrom())), zap.String("message-to", idString(m.GetTo())))
		refuse(w, "bad snapshot header: not a MsgSnap from the sender to this member", http.StatusBadRequest)
		return
	}
	if t.cfg.ReceiveSnapshot == nil {
		if _, err := br.Peek(1); err != io.EOF {
			log.Warn("refused snapshot", zap.Error(errSnapshotDataRefused))
			refuse(w, errSnapshotDataRefused.Error(), http.StatusInternalServerError)
			return
		}
	} else if err := t.cfg.ReceiveSnapshot(m, br); err != nil {
		log.Warn("failed to receive snapshot", zap.Uint64("snapshot-index", m.GetSnapshot().GetMetadata().GetIndex()), zap.Error(err))
		refuse(w, "failed to receive snapshot: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if t.stopped.Load() {
		refuse(w, errStopped.Error(), http.StatusServiceUnavailable)
		return
	}
	t.deliver(m)
	ok = true
	log.Info("received snapshot", zap.Uint64("snapshot-index", m.GetSnapshot().GetMetadata().GetIndex()))
	w.WriteHeader(http.StatusNoContent)
}

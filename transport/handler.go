package transport

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// errMemberRemoved is etcd's wording (rafthttp), which tools grep for.
const errMemberRemoved = "the member has been permanently removed from the cluster"

// Handler serves the peer side of the transport, paths under /raft.
func (t *Transport) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathStream, t.handleStream)
	mux.HandleFunc("POST "+pathSnapshot, t.handleSnapshot)
	mux.HandleFunc("GET "+pathProbe, t.handleProbe)
	return mux
}

func (t *Transport) handleProbe(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(hdrMemberID, idString(t.cfg.ID))
	w.Header().Set(hdrClusterID, idString(t.cfg.ClusterID))
	if t.stopped.Load() {
		refuse(w, errStopped.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "OK\n")
}

// checkPeerRequest applies etcd's checks to a peer's request and answers
// the refusal itself: cluster id (412), addressee (412), removed sender
// (410).
func (t *Transport) checkPeerRequest(w http.ResponseWriter, r *http.Request) (from uint64, ok bool) {
	w.Header().Set(hdrClusterID, idString(t.cfg.ClusterID))
	w.Header().Set(hdrMemberID, idString(t.cfg.ID))
	if t.stopped.Load() {
		refuse(w, errStopped.Error(), http.StatusServiceUnavailable)
		return 0, false
	}
	cid, err := parseID(r.Header.Get(hdrClusterID))
	if err != nil || cid != t.cfg.ClusterID {
		t.log.Warn("request cluster ID mismatch",
			zap.String("local-member-cluster-id", idString(t.cfg.ClusterID)),
			zap.String("remote-peer-cluster-id", r.Header.Get(hdrClusterID)),
			zap.String("remote-peer-id", r.Header.Get(hdrFrom)),
			zap.String("path", r.URL.Path))
		refuse(w, "cluster ID mismatch", http.StatusPreconditionFailed)
		return 0, false
	}
	from, err = parseID(r.Header.Get(hdrFrom))
	if err != nil || from == 0 {
		refuse(w, "bad "+hdrFrom+" header", http.StatusBadRequest)
		return 0, false
	}
	to, err := parseID(r.Header.Get(hdrTo))
	if err != nil || to != t.cfg.ID {
		t.log.Warn("to member mismatch",
			zap.String("remote-peer-id", idString(from)),
			zap.String("to", r.Header.Get(hdrTo)),
			zap.String("path", r.URL.Path))
		refuse(w, "to member mismatch", http.StatusPreconditionFailed)
		return 0, false
	}
	if t.cfg.IsRemoved != nil && t.cfg.IsRemoved(from) {
		t.log.Warn("rejected request from removed member", zap.String("remote-peer-id", idString(from)), zap.String("path", r.URL.Path))
		refuse(w, errMemberRemoved, http.StatusGone)
		return 0, false
	}
	return from, true
}

// inbound is a request being received (a stream or a snapshot), held in
// Transport.inbound so Stop can cut it and wait for it.
type inbound struct {
	rc     *http.ResponseController
	from   uint64
	stream bool
}

// cut makes the request's pending and future body reads fail at once (the
// connection's read deadline), which ends the handler. Called with inMu
// held, i.e. while the handler is still running.
func (in *inbound) cut() { _ = in.rc.SetReadDeadline(time.Unix(1, 0)) }

// register records a request; nil once Stop has begun. A new stream from a
// member replaces any older one from it: the sender keeps one stream, so an
// older one is a half-open leftover.
func (t *Transport) register(w http.ResponseWriter, from uint64, stream bool) *inbound {
	in := &inbound{rc: http.NewResponseController(w), from: from, stream: stream}
	// Streams and snapshots live as long as they need: lift any
	// ReadTimeout/WriteTimeout of the peer server for this connection.
	_ = in.rc.SetReadDeadline(time.Time{})
	_ = in.rc.SetWriteDeadline(time.Time{})
	t.inMu.Lock()
	defer t.inMu.Unlock()
	if t.stopped.Load() {
		return nil
	}
	if stream {
		for old := range t.inbound {
			if old.stream && old.from == from {
				old.cut()
				delete(t.inbound, old)
			}
		}
	}
	t.inbound[in] = struct{}{}
	t.inWG.Add(1)
	return in
}

func (t *Transport) unregister(in *inbound) {
	t.inMu.Lock()
	delete(t.inbound, in)
	// Whatever ended the handler, the connection is not reused: fail the
	// server's drain of the remaining body at once instead of waiting for
	// the sender to send 256 KiB or hang up.
	in.cut()
	t.inMu.Unlock()
	t.inWG.Done()
}

// handleStream receives a peer's stream: frames until the body ends.
func (t *Transport) handleStream(w http.ResponseWriter, r *http.Request) {
	from, ok := t.checkPeerRequest(w, r)
	if !ok {
		return
	}
	in := t.register(w, from, true)
	if in == nil {
		refuse(w, errStopped.Error(), http.StatusServiceUnavailable)
		return
	}
	defer t.unregister(in)
	log := t.log.With(zap.String("remote-peer-id", idString(from)))

	// HTTP/1: keep reading the request after the response has started.
	_ = in.rc.EnableFullDuplex()
	w.WriteHeader(http.StatusOK)
	if err := in.rc.Flush(); err != nil {
		log.Warn("failed to accept stream", zap.Error(err))
		return
	}
	log.Info("accepted stream from peer")

	cr := &countingReader{r: r.Body}
	br := bufio.NewReaderSize(cr, streamBufSize)
	var buf []byte
	received, failures := receivedBytes.WithLabelValues(idString(from)), recvFailures.WithLabelValues(idString(from))
	var counted int64
	for {
		m, b, err := readFrame(br, buf)
		buf = b
		if n := cr.n.Load(); n > counted {
			received.Add(float64(n - counted))
			counted = n
		}
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				log.Info("peer closed stream")
			case t.stopped.Load() || isTimeout(err):
				log.Info("closed stream from peer")
			default:
				failures.Inc()
				log.Warn("closed stream from peer", zap.Error(err))
			}
			return
		}
		if m.GetFrom() != from || m.GetTo() != t.cfg.ID {
			failures.Inc()
			log.Warn("closed stream from peer: message not from the sender to this member",
				zap.String("message-from", idString(m.GetFrom())), zap.String("message-to", idString(m.GetTo())),
				zap.Stringer("type", m.GetType()))
			return
		}
		if t.stopped.Load() {
			return
		}
		t.deliver(m)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refuse answers an error without reading the rest of the request body.
// Go's HTTP/1 server would otherwise try to drain the body before writing
// the response — and a stream's body stays open, so the refusal would wait
// for the sender's connect timeout. Failing the reads at once makes the
// server answer and close the connection.
func refuse(w http.ResponseWriter, msg string, code int) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0))
	http.Error(w, msg, code)
}

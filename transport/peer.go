package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// Tunables; variables so tests can shrink them.
var (
	queueSize = 4096 // messages waiting for a peer's stream

	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second

	// connectTimeout bounds dialing plus the peer's 200 on a new stream.
	connectTimeout = 5 * time.Second
	// writeTimeout bounds one write into a stream (at most one bufio
	// buffer, or one large message): a peer that stops reading — dead host,
	// half-open connection — is detected by the next write instead of by TCP
	// retransmission timeouts minutes later. etcd's ConnWriteTimeout.
	writeTimeout = 5 * time.Second
)

const streamBufSize = 64 << 10

var (
	errStopped        = errors.New("transport stopped")
	errPeerRemoved    = errors.New("peer removed")
	errURLsChanged    = errors.New("peer URLs changed")
	errClosedByPeer   = errors.New("stream closed by peer")
	errWriteTimeout   = errors.New("stream write timed out")
	errConnectTimeout = errors.New("stream connect timed out")
	errNoURLs         = errors.New("peer has no usable URL")
)

// peer is everything this member keeps for sending to one other member.
//
// Goroutines: run (the stream writer: connect, backoff, drain q) and
// snapshots (one MsgSnap transfer at a time). Both end when ctx is
// cancelled; stop waits for them.
type peer struct {
	t  *Transport
	id uint64

	// q is the stream queue. Send pushes without blocking; only run pops.
	// Never closed: a Send racing with RemovePeer may still push into it.
	q chan *raftpb.Message
	// snapc (capacity 1) hands a MsgSnap to the snapshot goroutine.
	// snapBusy is set by Send when it hands one over and cleared once its
	// outcome is reported, so at most one transfer per peer is queued or in
	// flight, and Send's push into snapc never blocks.
	snapc    chan *raftpb.Message
	snapBusy atomic.Bool
	// overflow is set when Send dropped a message on a full queue and
	// reported Unreachable; cleared when the writer makes progress. Keeps
	// Unreachable at one call per overflow episode, not one per message.
	overflow atomic.Bool

	urls   atomic.Pointer[[]string]
	kick   chan struct{} // cap 1: new URLs, skip the backoff wait
	good   atomic.Pointer[string]
	active atomic.Int64 // unix ns the current stream was accepted; 0 = none
	// flushes counts stream flushes (batches written), for tests and
	// metrics: messages sent / flushes is the batching factor.
	flushes atomic.Uint64
	m       peerMetrics

	ht     *http.Transport
	client *http.Client

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu           sync.Mutex
	streamCancel context.CancelCauseFunc // the live stream attempt, if any
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	p := &peer{
		t:     t,
		id:    id,
		q:     make(chan *raftpb.Message, queueSize),
		snapc: make(chan *raftpb.Message, 1),
		kick:  make(chan struct{}, 1),
		m:     newPeerMetrics(t.cfg.ID, id),
	}
	p.urls.Store(normalizeURLs(urls))
	// A dedicated HTTP/1.1 client per peer: its connections are this peer's
	// alone (no pool shared with other peers or clients), no compression
	// (raft entries are mostly incompressible and latency matters).
	dialer := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	var protos http.Protocols
	protos.SetHTTP1(true)
	p.ht = &http.Transport{
		DialContext:         dialer.DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: connectTimeout,
		Protocols:           &protos,
	}
	if t.cfg.TLS != nil {
		p.ht.TLSClientConfig = t.cfg.TLS.Clone()
		// Streams are HTTP/1.1 (a chunked body per stream): offer only
		// that, whatever the config was given (an HTTP/2 client sharing
		// it adds "h2", which the server would then pick).
		p.ht.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	p.client = &http.Client{Transport: p.ht}
	p.ctx, p.cancel = context.WithCancelCause(context.Background())
	return p
}

func normalizeURLs(urls []string) *[]string {
	out := make([]string, 0, len(urls))
	for _, u := range urls {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return &out
}

func (p *peer) start() {
	p.wg.Add(3)
	go p.run()
	go p.snapshots()
	go p.probe()
}

// stop cancels the peer and waits for its goroutines. Called once, after
// the peer left the routing table.
func (p *peer) stop() {
	p.cancel(errPeerRemoved)
	p.wg.Wait()
	p.active.Store(0)
	p.ht.CloseIdleConnections()
}

func (p *peer) setURLs(urls []string) {
	next := normalizeURLs(urls)
	if slices.Equal(*p.urls.Load(), *next) {
		return
	}
	p.urls.Store(next)
	p.good.Store(nil)
	p.mu.Lock()
	if p.streamCancel != nil {
		p.streamCancel(errURLsChanged)
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// send is Send's per-message step; it must not block.
func (p *peer) send(m *raftpb.Message) {
	if m.GetType() == raftpb.MsgSnap && p.t.cfg.OpenSnapshot != nil {
		if p.snapBusy.CompareAndSwap(false, true) {
			p.snapc <- m
		} else {
			p.t.log.Warn("dropped MsgSnap: a snapshot transfer to the peer is in flight",
				zap.String("remote-peer-id", idString(p.id)))
			snapshotSendFailures.WithLabelValues(idString(p.id)).Inc()
			p.t.snapshotStatus(p.id, true)
		}
		return
	}
	select {
	case p.q <- m:
	default:
		p.m.sentFailures.Inc()
		if p.overflow.CompareAndSwap(false, true) {
			p.t.log.Warn("dropped messages: peer queue full",
				zap.String("remote-peer-id", idString(p.id)), zap.Int("queue-size", cap(p.q)))
			p.t.unreachable(p.id)
		}
		if m.GetType() == raftpb.MsgSnap {
			p.t.snapshotStatus(p.id, true)
		}
	}
}

// run keeps one stream to the peer open and drains q into it, reconnecting
// with exponential backoff (reset by every stream the peer accepted).
func (p *peer) run() {
	defer p.wg.Done()
	log := p.t.log.With(zap.String("remote-peer-id", idString(p.id)))
	backoff := minBackoff
	next := 0 // index of the URL to try next; moves on after a failure
	var lastErr string
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		urls := *p.urls.Load()
		var (
			connected bool
			err       error
			u         string
		)
		if len(urls) == 0 {
			err = errNoURLs
		} else {
			u = urls[next%len(urls)]
			connected, err = p.stream(u)
		}
		if p.ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, errURLsChanged):
			log.Info("reconnecting stream: peer URLs changed")
		case connected:
			backoff = minBackoff
			lastErr = ""
			p.m.disconnected.Inc()
			log.Warn("lost stream to peer", zap.String("remote-peer-url", u), zap.Error(err))
		default:
			next++
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				log.Warn("failed to connect stream to peer", zap.String("remote-peer-url", u), zap.Error(err))
			} else {
				log.Debug("failed to connect stream to peer", zap.String("remote-peer-url", u), zap.Error(err))
			}
		}
		if !errors.Is(err, errURLsChanged) {
			p.t.unreachable(p.id)
		}
		timer.Reset(backoff)
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
			timer.Stop() // Go ≥1.23 timers: no stale tick to drain
			backoff = minBackoff
			next = 0
		case <-timer.C:
		}
		if !connected {
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

// stream opens one stream to base and pumps q into it until either side
// drops it. connected says whether the peer accepted it.
func (p *peer) stream(base string) (connected bool, err error) {
	if err := p.checkURL(base); err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancelCause(p.ctx)
	p.mu.Lock()
	p.streamCancel = cancel
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.streamCancel = nil
		p.mu.Unlock()
		cancel(err)
	}()
	pr, pw := io.Pipe()
	defer pr.Close()
	defer pw.Close()
	// Cancelling the request is not enough to unwind it: net/http's write
	// loop sits in a read of our pipe, and a failed round trip waits for the
	// write loop. Any cancellation (connect timeout, peer removed, URLs
	// changed, Stop) therefore fails the pipe too.
	stopPipe := context.AfterFunc(ctx, func() { pw.CloseWithError(context.Cause(ctx)) })
	defer stopPipe()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+pathStream, pr)
	if err != nil {
		return false, err
	}
	req.ContentLength = -1 // chunked: each flush of the pipe goes out as a chunk
	p.t.setRequestHeaders(req.Header, p.id)

	type result struct {
		resp *http.Response
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := p.client.Do(req)
		resc <- result{resp, err}
	}()
	timer := time.NewTimer(connectTimeout)
	var r result
	select {
	case r = <-resc:
	case <-timer.C:
		cancel(errConnectTimeout)
		r = <-resc // closed below: ctx is done
	}
	timer.Stop()
	if ctx.Err() != nil {
		if r.err == nil {
			r.resp.Body.Close()
		}
		return false, context.Cause(ctx)
	}
	if r.err != nil {
		return false, r.err
	}
	resp := r.resp
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode == http.StatusGone {
			p.t.removed(p.id)
		}
		return false, fmt.Errorf("peer answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}

	// Accepted.
	p.active.Store(time.Now().UnixNano())
	p.good.Store(&base)
	defer p.active.Store(0)
	p.t.log.Info("established stream to peer", zap.String("remote-peer-id", idString(p.id)), zap.String("remote-peer-url", base))

	// The response has no content: it ends when the receiver drops the
	// stream, which must end ours too.
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel(errClosedByPeer)
		pw.CloseWithError(errClosedByPeer)
	}()
	watchdog := time.AfterFunc(time.Hour, func() {
		cancel(errWriteTimeout)
		pw.CloseWithError(errWriteTimeout)
	})
	watchdog.Stop()

	err = p.pump(ctx, &timedWriter{w: pw, watchdog: watchdog})
	watchdog.Stop()
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	cancel(err) // aborts the response read too
	pw.CloseWithError(err)
	<-monitorDone
	return true, err
}

func (p *peer) checkURL(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("bad peer URL %q: %w", base, err)
	}
	switch u.Scheme {
	case "http":
	case "https":
		if p.t.cfg.TLS == nil {
			return fmt.Errorf("peer URL %s is https but this member has no peer client TLS configuration", base)
		}
	default:
		return fmt.Errorf("bad peer URL %q: scheme must be http or https", base)
	}
	return nil
}

// pump is the batching: it blocks for one message, then writes everything
// else already queued, then flushes once — one chunk on the wire for a burst
// of raft messages, and no waiting when there is only one.
func (p *peer) pump(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriterSize(w, streamBufSize)
	fw := &frameWriter{w: bw}
	var snaps int // plain MsgSnap in the batch, reported after the flush
	for {
		var m *raftpb.Message
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case m = <-p.q:
		}
		var err error
		batched := 0 // messages in the batch, lost if it fails
	batch:
		for {
			batched++
			if err = fw.write(m); err != nil {
				if !errors.Is(err, errUnsendable) {
					break batch
				}
				p.m.sentFailures.Inc()
				batched--
				p.t.log.Error("dropped unsendable message", zap.String("remote-peer-id", idString(p.id)), zap.Error(err))
				err = nil
				if m.GetType() == raftpb.MsgSnap {
					p.t.snapshotStatus(p.id, true)
				}
			} else if m.GetType() == raftpb.MsgSnap {
				snaps++
			}
			select {
			case m = <-p.q:
			default:
				break batch
			}
		}
		if err == nil {
			err = bw.Flush()
			p.flushes.Add(1)
		}
		for ; snaps > 0; snaps-- {
			p.t.snapshotStatus(p.id, err != nil)
		}
		if err != nil {
			p.m.sentFailures.Add(float64(batched))
			return err
		}
		p.m.sentBytes.Add(float64(fw.n))
		fw.n = 0
		if p.overflow.Load() {
			p.overflow.Store(false)
		}
	}
}

// timedWriter arms the watchdog around each write into the stream.
type timedWriter struct {
	w        io.Writer
	watchdog *time.Timer
}

func (tw *timedWriter) Write(b []byte) (int, error) {
	tw.watchdog.Reset(writeTimeout)
	n, err := tw.w.Write(b)
	tw.watchdog.Stop()
	return n, err
}

package watchactor

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Outgoing is one queued response and whether the stream should split it
// the way etcd splits watch responses for watchers created with fragment.
type Outgoing struct {
	Resp     *pb.WatchResponse
	Fragment bool
}

// Budget bounds the memory of queued responses: per stream, and over
// all streams of a node together, so that neither one slow client nor a
// thousand of them can grow the server without bound.
type Budget struct {
	perStream int64
	total     int64
	used      atomic.Int64
}

// NewBudget returns a budget of perStream bytes for each stream and total
// bytes for all of them.
func NewBudget(perStream, total int64) *Budget {
	return &Budget{perStream: perStream, total: total}
}

// Stream is the outbox of one gRPC watch stream. The Hub pushes responses;
// the stream's handler waits on Ready, Takes them all at once, sends them
// and says so (Sent).
//
// Everything queued is charged to the Budget from the push until the
// handler has sent it (Sent), so the bound covers the batch being sent as
// well as the queue:
//
//   - Event responses: a push that finds the budget spent is refused and
//     remembered; Sent reports it, and the handler then sends the Hub
//     Drained. A push is refused only while the stream holds some budget,
//     so the handler always has a Sent coming that reports it.
//   - Control responses (created, canceled) are never refused, a client
//     must learn what became of its requests, and are charged controlSize.
//     They answer the client's requests, so they are bounded where those
//     are read: the handler reads the next request only once Admit lets
//     it, which it does while the stream holds less than its budget,
//     counting requests the Hub has not yet answered (Handled). A client
//     that does not read its responses is no longer read either (etcd
//     blocks its receive loop the same way), and gRPC's flow control holds
//     its requests back.
//   - Progress notifications are coalesced (etcd too drops them for a
//     client that does not read): a newer one for a watch id replaces one
//     not yet taken when nothing but progress notifications was queued
//     since. Between two other responses there is at most one per watch
//     id, so they are bounded by the others.
type Stream struct {
	budget *Budget
	ready  chan struct{} // has a token when items or err are waiting
	room   chan struct{} // has a token when Admit may have room again

	mu       sync.Mutex
	items    []Outgoing
	progress map[int64]int // watch id -> index in items of its progress notification, in the trailing run of them
	queued   int64         // charged bytes of items
	inFlight int64         // charged bytes of the batch last taken
	pending  int64         // requests admitted and not yet Handled
	refused  bool
	err      error
	closed   bool

	// queuedEvents and inFlightEvents count the events of items and of the
	// batch last taken: their share of
	// etcd_debugging_mvcc_pending_events_total.
	queuedEvents, inFlightEvents int64
}

// controlSize is what a control response or progress notification (a
// header and a few fields) is charged, and what an unanswered request
// reserves.
const controlSize = 128

// NewStream returns an empty Stream charging b.
func NewStream(b *Budget) *Stream {
	return &Stream{budget: b, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// Ready has a value when Take may have something to return.
func (s *Stream) Ready() <-chan struct{} { return s.ready }

// Take returns everything queued; the handler sends it and then calls
// Sent. A non-nil err means the Hub ended the stream: the handler returns
// it to the client after sending what Take returned.
func (s *Stream) Take() (out []Outgoing, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, s.items = s.items, nil
	clear(s.progress)
	s.inFlight += s.queued
	s.queued = 0
	s.inFlightEvents += s.queuedEvents
	s.queuedEvents = 0
	return out, s.err
}

// Sent releases the budget of what Take returned. It reports whether the
// Hub was refused a push meanwhile: the handler must then send it Drained
// so that the stream's watchers catch up.
func (s *Stream) Sent() (drained bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budget.used.Add(-s.inFlight)
	s.inFlight = 0
	if n := s.inFlightEvents; n > 0 {
		eventsTotal.Add(float64(n))
		pendingEvents.Sub(float64(n))
		s.inFlightEvents = 0
	}
	drained, s.refused = s.refused, false
	s.wake()
	return drained
}

// Admit returns once the handler may read the client's next request: at
// once while the stream holds less than its budget, otherwise when Sent
// has released enough. It reserves room for the request's answer until
// the Hub has Handled it. It fails with ctx's error, or errClosed once the
// stream is closed.
func (s *Stream) Admit(ctx context.Context) error {
	waited := false
	defer func() {
		if waited {
			unreadStreams.Dec()
		}
	}()
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return errClosed
		case s.queued+s.inFlight+s.pending*controlSize < s.budget.perStream:
			s.pending++
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		if !waited {
			waited = true
			unreadStreams.Inc()
		}
		select {
		case <-s.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Handled releases what Admit reserved for a request the Hub has now
// handled (its answer, if any, is queued).
func (s *Stream) Handled() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending > 0 {
		s.pending--
	}
	s.wake()
}

var errClosed = errors.New("watchactor: stream closed")

// Close releases what the stream holds of the budget; its handler calls it
// when it returns.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budget.used.Add(-(s.inFlight + s.queued))
	if n := s.inFlightEvents + s.queuedEvents; n > 0 {
		pendingEvents.Sub(float64(n))
	}
	s.inFlight, s.queued, s.items, s.closed = 0, 0, nil, true
	s.inFlightEvents, s.queuedEvents = 0, 0
	s.wake()
}

// pushEvents queues an event response of about size bytes unless a budget
// is spent. A stream with nothing charged is never refused, so every
// stream makes progress and a response larger than the budget still goes.
func (s *Stream) pushEvents(o Outgoing, size int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.closed {
		return true // the stream is ending; nobody will read this
	}
	if mine := s.queued + s.inFlight; mine > 0 &&
		(mine+size > s.budget.perStream || s.budget.used.Load()+size > s.budget.total) {
		s.refused = true
		return false
	}
	clear(s.progress)
	s.queue(o, size)
	if n := int64(len(o.Resp.Events)); n > 0 {
		s.queuedEvents += n
		pendingEvents.Add(float64(n))
	}
	return true
}

// pushControl queues a created or canceled response; it is never refused.
func (s *Stream) pushControl(resp *pb.WatchResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	clear(s.progress)
	s.queue(Outgoing{Resp: resp}, controlSize)
}

// pushProgress queues a progress notification for resp.WatchId (-1: the
// whole stream). One still queued for that id with only progress
// notifications after it is dropped: the new one, at the end, promises
// more, and revisions stay in order (a -1 applies to every watcher).
func (s *Stream) pushProgress(resp *pb.WatchResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.progress == nil {
		s.progress = map[int64]int{}
	}
	if i, ok := s.progress[resp.WatchId]; ok {
		copy(s.items[i:], s.items[i+1:])
		s.items[len(s.items)-1] = Outgoing{Resp: resp}
		for id, j := range s.progress {
			if j > i {
				s.progress[id] = j - 1
			}
		}
		s.progress[resp.WatchId] = len(s.items) - 1
		progressCoalesced.Inc()
		return
	}
	s.queue(Outgoing{Resp: resp}, controlSize)
	s.progress[resp.WatchId] = len(s.items) - 1
}

// queue appends o, charged size bytes.
func (s *Stream) queue(o Outgoing, size int64) {
	s.items = append(s.items, o)
	s.queued += size
	s.budget.used.Add(size)
	s.signal()
}

// fail ends the stream with err after what is already queued.
func (s *Stream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	s.signal()
}

func (s *Stream) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

func (s *Stream) wake() {
	select {
	case s.room <- struct{}{}:
	default:
	}
}

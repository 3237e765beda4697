package watchactor

import (
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

// Budget bounds the memory of queued event responses: per stream, and over
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
// Event responses are charged to the Budget from the push until the
// handler has sent them (Sent), so the bound covers the batch being sent as
// well as the queue. Control
// responses are not charged: they are small, and a client must always
// learn that a watch was created or canceled. A push that finds the budget
// spent is refused and remembered; Sent reports it, and the handler then
// sends the Hub Drained. A push is refused only while the stream holds
// some budget, so the handler always has a Sent coming that reports it.
type Stream struct {
	budget *Budget
	ready  chan struct{} // has a token when items or err are waiting

	mu       sync.Mutex
	items    []Outgoing
	queued   int64 // charged bytes of items
	inFlight int64 // charged bytes of the batch last taken
	refused  bool
	err      error
	closed   bool

	// queuedEvents and inFlightEvents count the events of items and of the
	// batch last taken: their share of
	// etcd_debugging_mvcc_pending_events_total.
	queuedEvents, inFlightEvents int64
}

// NewStream returns an empty Stream charging b.
func NewStream(b *Budget) *Stream {
	return &Stream{budget: b, ready: make(chan struct{}, 1)}
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
	return drained
}

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
	s.items = append(s.items, o)
	s.queued += size
	s.budget.used.Add(size)
	if n := int64(len(o.Resp.Events)); n > 0 {
		s.queuedEvents += n
		pendingEvents.Add(float64(n))
	}
	s.signal()
	return true
}

// pushControl queues a response outside the budget.
func (s *Stream) pushControl(resp *pb.WatchResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.items = append(s.items, Outgoing{Resp: resp})
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

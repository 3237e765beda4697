package watchactor

import (
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Outgoing is one queued response and whether the stream should split it
// the way etcd splits watch responses for watchers created with fragment.
type Outgoing struct {
	Resp     *pb.WatchResponse
	Fragment bool
}

// Stream is the outbox of one gRPC watch stream. The Hub pushes responses;
// the stream's handler waits on Ready and Takes them all at once.
//
// Event responses count against a byte budget (control responses do not:
// they are small and a client must always learn that a watch was created or
// canceled). A push that finds the budget spent is refused and remembered;
// the next Take reports it, and the handler then sends the Hub Drained.
type Stream struct {
	ready chan struct{} // has a token when items or err are waiting

	mu      sync.Mutex
	items   []Outgoing
	bytes   int
	limit   int
	refused bool
	err     error
}

// NewStream returns an empty Stream whose queued event responses may take
// up to limit bytes (estimated from key and value sizes).
func NewStream(limit int) *Stream {
	return &Stream{ready: make(chan struct{}, 1), limit: limit}
}

// Ready has a value when Take has something to return.
func (s *Stream) Ready() <-chan struct{} { return s.ready }

// Take returns everything queued. drained is true when the Hub was refused
// a push since the previous Take: the caller must send it Drained. A non-nil
// err means the Hub ended the stream; the handler returns it to the client.
func (s *Stream) Take() (out []Outgoing, drained bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, s.items, s.bytes = s.items, nil, 0
	drained, s.refused = s.refused, false
	return out, drained, s.err
}

// pushEvents queues an event response of about size bytes unless the budget
// is spent. A response is never refused by an empty queue, so one larger
// than the whole budget still goes.
func (s *Stream) pushEvents(o Outgoing, size int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return true // the stream is ending; nobody will read this
	}
	if s.bytes > 0 && s.bytes+size > s.limit {
		s.refused = true
		return false
	}
	s.items = append(s.items, o)
	s.bytes += size
	s.signal()
	return true
}

// pushControl queues a response outside the budget.
func (s *Stream) pushControl(resp *pb.WatchResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
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

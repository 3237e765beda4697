package gateway

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storeactor"
)

// A Range's budget ticket (rangebudget.go) is held until gRPC has written
// the encoded response to the connection: a unary handler returns before
// gRPC marshals its answer, and gRPC's writer holds the encoding until the
// client has read it (HTTP/2 flow control), so the bytes in flight are
// those of responses built, marshaled and not yet read.
//
// The handler hands its ticket to the server's codec (rangeCodec) with the
// response; the codec encodes the response into a buffer of its own whose
// release, when gRPC frees it — written out, or dropped with a canceled
// stream — gives the bytes back. Meanwhile it drops each key-value from
// the response as soon as it is encoded, so that the response and its
// encoding are not both whole in memory.

// rangeSends holds the responses whose tickets await the codec. Its keys
// are weak, and a response collected without being marshaled (an
// interceptor answered with an error instead) releases its ticket, so a
// ticket is never held by a response nobody will send.
type rangeSends struct {
	n atomic.Int64 // entries in m: the codec looks at m only when some are
	m sync.Map     // weak.Pointer[pb.RangeResponse] -> *pendingSend
}

type pendingSend struct {
	t       *rangeTicket
	cleanup runtime.Cleanup
}

// put hands t over with resp, which the handler returns next.
func (s *rangeSends) put(resp *pb.RangeResponse, t *rangeTicket) {
	w := weak.Make(resp)
	p := &pendingSend{t: t}
	p.cleanup = runtime.AddCleanup(resp, s.drop, w)
	s.m.Store(w, p)
	s.n.Add(1)
}

// take returns the ticket handed over with resp, if any.
func (s *rangeSends) take(resp *pb.RangeResponse) *rangeTicket {
	if s.n.Load() == 0 {
		return nil
	}
	v, ok := s.m.LoadAndDelete(weak.Make(resp))
	if !ok {
		return nil
	}
	s.n.Add(-1)
	p := v.(*pendingSend)
	p.cleanup.Stop()
	return p.t
}

func (s *rangeSends) drop(w weak.Pointer[pb.RangeResponse]) {
	if v, ok := s.m.LoadAndDelete(w); ok {
		s.n.Add(-1)
		v.(*pendingSend).t.release()
	}
}

// rangeCodec is gRPC's proto codec, encoding the Range responses handed
// over in rangeSends itself (encodeRange). Both client servers use it
// (the in-process one serves the JSON gateway).
type rangeCodec struct {
	encoding.CodecV2
	sends *rangeSends
}

func (c rangeCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*pb.RangeResponse); ok {
		if t := c.sends.take(r); t != nil {
			return encodeRange(r, t)
		}
	}
	return c.CodecV2.Marshal(v)
}

// encodeRange encodes r as proto.Marshal does (the same bytes: its
// fields in order, each part marshaled alone), taking its key-values out
// a batch at a time, into a buffer that releases t when gRPC frees it.
// The response is the handler's and is not read again once marshaled.
func encodeRange(r *pb.RangeResponse, t *rangeTicket) (mem.BufferSlice, error) {
	pool := mem.DefaultBufferPool()
	b := pool.Get(proto.Size(r))
	buf, err := appendRange((*b)[:0], r)
	if err != nil {
		pool.Put(b)
		t.release()
		return nil, err
	}
	*b = buf // the size was exact: still the pool's array
	if mem.IsBelowBufferPoolingThreshold(cap(buf)) {
		t.release() // gRPC frees no plain slice: nothing worth holding
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	return mem.BufferSlice{mem.NewBuffer(newSentBuffer(b, pool, t))}, nil
}

// encodeBatch is how many key-values encodeRange marshals at once: few
// enough that their memory goes back to the GC while the rest is encoded,
// many enough that a call's overhead is spread.
const encodeBatch = 256

func appendRange(buf []byte, r *pb.RangeResponse) ([]byte, error) {
	mo := proto.MarshalOptions{UseCachedSize: true} // encodeRange's proto.Size(r) filled the caches
	var err error
	if buf, err = mo.MarshalAppend(buf, &pb.RangeResponse{Header: r.Header}); err != nil {
		return nil, err
	}
	for len(r.Kvs) > 0 {
		n := min(len(r.Kvs), encodeBatch)
		if buf, err = mo.MarshalAppend(buf, &pb.RangeResponse{Kvs: r.Kvs[:n]}); err != nil {
			return nil, err
		}
		clear(r.Kvs[:n]) // garbage from here on: the GC may take them while the rest is encoded
		r.Kvs = r.Kvs[n:]
	}
	r.Kvs = nil
	tail := &pb.RangeResponse{More: r.More, Count: r.Count}
	tail.ProtoReflect().SetUnknown(r.ProtoReflect().GetUnknown())
	return mo.MarshalAppend(buf, tail)
}

// maxPooledSendBytes is the largest encoding given back to gRPC's buffer
// pool (its largest tier): a page of a paginated list is reused, a whole
// large list goes to the GC rather than stay in the pool.
const maxPooledSendBytes = 1 << 20

// sentBuffer is the pool of one encoded response as gRPC sees it: gRPC
// puts the buffer back when it is done with it, which releases the
// ticket. A connection that closes while the response is being written
// drops the buffer without putting it back (gRPC frees only what it has
// not started writing); then the buffer's cleanup releases the ticket, at
// the GC after.
type sentBuffer struct {
	pool    mem.BufferPool
	t       *rangeTicket
	cleanup runtime.Cleanup
}

func newSentBuffer(b *[]byte, pool mem.BufferPool, t *rangeTicket) (*[]byte, mem.BufferPool) {
	s := &sentBuffer{pool: pool, t: t}
	s.cleanup = runtime.AddCleanup(b, (*rangeTicket).release, t)
	return b, s
}

func (s *sentBuffer) Get(n int) *[]byte { return s.pool.Get(n) }

func (s *sentBuffer) Put(b *[]byte) {
	s.cleanup.Stop()
	if cap(*b) <= maxPooledSendBytes {
		s.pool.Put(b)
	}
	s.t.release()
}

// errTooLargeToSend is gRPC's answer (etcd's, which sets no smaller
// limit) to a response over the server's largest message: etcd builds
// the whole response first and reports its size; MetaStore stops reading
// once the bytes built are sure to exceed the limit and reports those.
func errTooLargeToSend(size, limit int64) error {
	return status.Errorf(codes.ResourceExhausted, "grpc: trying to send message larger than max (%d vs. %d)", size, limit)
}

// rangeSizeHeadroom bounds what a response adds to its key-values'
// fields: the header, more and count.
const rangeSizeHeadroom = 256

// readRange reads r for a client, charging what the read builds to the
// budget: a ticket when the result is large enough to hold one (then
// handed to the codec by holdForSend), nil when not.
func (g *Gateway) readRange(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, *rangeTicket, error) {
	if len(r.RangeEnd) == 0 {
		resp, err := g.cfg.Store.Range(r) // one key: at most one value to charge, after the read
		return resp, nil, err
	}
	t := g.ranges.ticket()
	whole := returnsWhatItBuilds(r)
	var last int64
	resp, err := g.cfg.Store.RangeCharged(r, func(built int64) error {
		// All but the last key-value built are returned when whole: past
		// the limit then, the response is too large whatever comes next.
		if whole && last > g.maxSendBytes {
			return errTooLargeToSend(last, g.maxSendBytes)
		}
		last = built
		return t.charge(ctx, built)
	})
	if err != nil {
		t.release()
		return nil, nil, err
	}
	return resp, t, nil
}

// returnsWhatItBuilds reports whether a read of r returns every
// key-value it builds, values included, but for one past the limit (read
// to tell More): not when revision filters drop some, when a sort other
// than by key cuts them at the limit, or when the values are read only to
// sort by.
func returnsWhatItBuilds(r *pb.RangeRequest) bool {
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	defaultOrder := r.SortOrder == pb.RangeRequest_NONE || (r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND)
	sortedThenCut := r.Limit > 0 && !defaultOrder
	valuesDropped := r.KeysOnly && r.SortTarget == pb.RangeRequest_VALUE
	return !filtered && !sortedThenCut && !valuesDropped
}

// holdForSend checks resp against the largest message gRPC sends and
// hands its ticket to the codec when it holds bytes; a single key large
// enough is charged here. On error the ticket is released.
func (g *Gateway) holdForSend(ctx context.Context, resp *pb.RangeResponse, t *rangeTicket) error {
	var built int64
	switch {
	case t != nil:
		built = t.built
	case len(resp.Kvs) == 1:
		built = int64(storeactor.KVFieldSize(resp.Kvs[0]))
		if built <= untrackedRangeBytes {
			return nil
		}
		t = g.ranges.ticket()
		if err := t.charge(ctx, built); err != nil {
			t.release()
			return err
		}
	default:
		return nil
	}
	if built+rangeSizeHeadroom > g.maxSendBytes {
		if n := int64(proto.Size(resp)); n > g.maxSendBytes {
			t.release()
			return errTooLargeToSend(n, g.maxSendBytes)
		}
	}
	if t.held == 0 {
		return nil // small: never took bytes
	}
	g.sends.put(resp, t)
	return nil
}

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

// A Range's budget ticket (rangebudget.go), or a read-only Txn's, is held
// until gRPC has written the encoded response to the connection: a unary
// handler returns before gRPC marshals its answer, and gRPC's writer holds
// the encoding until the client has read it (HTTP/2 flow control), so the
// bytes in flight are those of responses built, marshaled and not yet
// read.
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
	m sync.Map     // weak.Pointer[pb.RangeResponse or pb.TxnResponse] -> *pendingSend
}

type pendingSend struct {
	t       *rangeTicket
	cleanup runtime.Cleanup
}

// putSend hands t over with resp, which the handler returns next.
func putSend[R pb.RangeResponse | pb.TxnResponse](s *rangeSends, resp *R, t *rangeTicket) {
	w := weak.Make(resp)
	p := &pendingSend{t: t}
	p.cleanup = runtime.AddCleanup(resp, s.drop, any(w))
	s.m.Store(w, p)
	s.n.Add(1)
}

// takeSend returns the ticket handed over with resp, if any.
func takeSend[R pb.RangeResponse | pb.TxnResponse](s *rangeSends, resp *R) *rangeTicket {
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

func (s *rangeSends) drop(w any) {
	if v, ok := s.m.LoadAndDelete(w); ok {
		s.n.Add(-1)
		v.(*pendingSend).t.release()
	}
}

// rangeCodec is gRPC's proto codec, encoding the Range and Txn responses
// handed over in rangeSends itself (encodeRange, encodeTxn). Both client
// servers use it (the in-process one serves the JSON gateway).
type rangeCodec struct {
	encoding.CodecV2
	sends *rangeSends
}

func (c rangeCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch r := v.(type) {
	case *pb.RangeResponse:
		if t := takeSend(c.sends, r); t != nil {
			return encodeRange(r, t)
		}
	case *pb.TxnResponse:
		if t := takeSend(c.sends, r); t != nil {
			return encodeTxn(r, t)
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
	return heldEncoding(pool, b, buf, err, t)
}

// encodeTxn encodes a read-only txn's response r, whole, into a buffer
// that releases t when gRPC frees it. holdTxnForSend, which handed t
// over, measured r last (proto.Size, after its header was filled): its
// sizes are reused rather than measured again.
func encodeTxn(r *pb.TxnResponse, t *rangeTicket) (mem.BufferSlice, error) {
	pool := mem.DefaultBufferPool()
	mo := proto.MarshalOptions{UseCachedSize: true}
	b := pool.Get(mo.Size(r))
	buf, err := mo.MarshalAppend((*b)[:0], r)
	return heldEncoding(pool, b, buf, err, t)
}

// heldEncoding is what encodeRange and encodeTxn return for buf, the
// encoding they appended to b, the pool's: a buffer whose release, when
// gRPC frees it, releases t.
func heldEncoding(pool mem.BufferPool, b *[]byte, buf []byte, err error, t *rangeTicket) (mem.BufferSlice, error) {
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
// not started writing), and so does a cancel that overtakes the handler's
// write (gRPC's writer discards a frame for a stream it has cleaned up
// without freeing it); then the buffer's cleanup releases the ticket, at
// the GC after (which the budget starts when reads wait on it).
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
	putSend(g.sends, resp, t)
	return nil
}

// readTxn runs a read-only txn for a client, charging what its ranges
// build to the budget as readRange does; the ticket is nil on error.
// Unlike a Range, a txn is not stopped early when its result will not
// fit in a message: holdTxnForSend answers that once it is built.
func (g *Gateway) readTxn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, *rangeTicket, error) {
	t := g.ranges.ticket()
	resp, err := g.cfg.Store.TxnCharged(r, func(built int64) error { return t.charge(ctx, built) })
	if err != nil {
		t.release()
		return nil, nil, err
	}
	return resp, t, nil
}

// holdTxnForSend is holdForSend for a read-only txn's response and the
// ticket readTxn charged.
func (g *Gateway) holdTxnForSend(resp *pb.TxnResponse, t *rangeTicket) error {
	if t.held == 0 {
		return nil // small: never took bytes
	}
	if n := int64(proto.Size(resp)); n > g.maxSendBytes {
		t.release()
		return errTooLargeToSend(n, g.maxSendBytes)
	}
	putSend(g.sends, resp, t)
	return nil
}

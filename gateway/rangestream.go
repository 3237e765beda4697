package gateway

import (
	"bytes"
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/authactor"
)

// RangeStream (etcd 3.7, `etcdctl get --stream`) answers a Range as a
// stream of chunks, so that a range far larger than a gRPC message, or
// than the memory one response would take, can be read: each chunk is one
// Reader.RangeChunk of the keys after the previous chunk's last, at the
// revision of the first chunk, sized to about --max-request-bytes. The
// member holds one chunk at a time (gRPC's flow control holds the next
// back while the client has not read), however large the range.
//
// The chunks are etcd's (v3_server.go rangeStream), so that merging them
// gives what Range answers and a client sees the same messages from both:
//   - the first asks for 10 keys; each next one doubles (halves) the count
//     while the previous chunk was under half (over twice) the target size;
//   - every chunk carries only its kvs, except the last, which carries the
//     header (revision: the store's when the stream began), more, and the
//     count (keys sent plus, when the limit cut it short, those left);
//   - a revision of 0 is pinned to that first revision: writes made during
//     the stream are not seen by its later chunks;
//   - count-only is one message: the header and the count;
//   - custom sort orders and revision filters are refused (Unimplemented):
//     they need the whole range before the first key can be sent;
//   - and etcd's two quirks, kept so that clients see what etcd sends: a
//     sort target with order NONE passes the check and sorts each chunk
//     alone (so the chunks do not follow on; the keys after each chunk's
//     last-sorted key come next), and a negative limit, which reads as
//     none, is answered in one chunk.
//
// Auth is checked once before the first chunk and the auth revision once
// after the last, as for a Range; a compaction past the pinned revision
// fails the chunks after it with "required revision has been compacted".

// initialStreamChunkLimit is the key count of a stream's first chunk.
const initialStreamChunkLimit = 10

func (s *kvServer) RangeStream(r *pb.RangeRequest, rs pb.KV_RangeStreamServer) error {
	if err := checkRangeStreamRequest(r); err != nil {
		return err
	}
	ctx := rs.Context()
	if !r.Serializable {
		if err := s.g.linearizableRead(ctx); err != nil {
			return err
		}
	}
	st := &rangeStream{g: s.g, out: rs}
	err := s.g.authorizedRead(ctx, func(a *authactor.State, ai authactor.Info) error {
		return a.CheckOp(ai, r.Key, r.RangeEnd, false)
	}, func() error {
		return st.run(r)
	})
	if err != nil && st.chunks > 0 && ctx.Err() == nil {
		// The client has a part of the range and an error: say which
		// range failed where (a compaction past the pinned revision, a
		// read error, an auth change).
		s.g.cfg.Logger.Warn("range stream failed after sending chunks",
			zap.String("range_begin", string(r.Key)), zap.String("range_end", string(r.RangeEnd)),
			zap.Int64("revision", st.rev), zap.Int("chunks", st.chunks), zap.Int64("keys", st.keys), zap.Error(err))
	}
	return err
}

// checkRangeStreamRequest is etcd's: a Range's checks, then what a stream
// cannot do without reading the whole range first.
func checkRangeStreamRequest(r *pb.RangeRequest) error {
	if err := checkRangeRequest(r); err != nil {
		return err
	}
	if !(r.SortOrder == pb.RangeRequest_NONE || (r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND)) {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	return nil
}

// rangeStream is one RangeStream call in progress.
type rangeStream struct {
	g      *Gateway
	out    pb.KV_RangeStreamServer
	rev    int64 // the header's revision: the store's at the first chunk
	chunks int   // sent so far
	keys   int64 // sent so far
}

func (s *rangeStream) run(r *pb.RangeRequest) error {
	store := s.g.cfg.Store
	if r.CountOnly {
		resp, err := store.Range(r)
		if err != nil {
			return err
		}
		s.rev = resp.Header.Revision
		return s.send(&pb.RangeResponse{Header: &pb.ResponseHeader{Revision: s.rev}, Count: resp.Count})
	}
	total := r.Limit // the keys the client asked for; 0: all of them
	if total == 0 {
		total = math.MaxInt64
	}
	// Each chunk is the client's request from the previous chunk's last
	// key on, as etcd reads it (a sort target with order NONE included).
	req := proto.Clone(r).(*pb.RangeRequest)
	req.Limit = min(initialStreamChunkLimit, total)
	for {
		resp, err := store.RangeChunk(req)
		if err != nil {
			return err
		}
		if s.rev == 0 {
			s.rev = resp.Header.Revision
			if req.Revision == 0 {
				req.Revision = s.rev
			}
		}
		s.keys += int64(len(resp.Kvs))
		var next []byte
		if resp.More {
			next = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
		}
		out := &pb.RangeResponse{Kvs: resp.Kvs}
		done := !resp.More || s.keys == total
		if done {
			out.Header, out.More, out.Count = &pb.ResponseHeader{Revision: s.rev}, resp.More, s.keys
			if resp.More {
				rest, err := store.Range(&pb.RangeRequest{Key: next, RangeEnd: req.RangeEnd, Revision: req.Revision, CountOnly: true})
				if err != nil {
					return err
				}
				out.Count += rest.Count
			}
		}
		if err := s.send(out); err != nil || done {
			return err
		}
		req.Key = next
		req.Limit = min(adjustChunkLimit(req.Limit, proto.Size(resp), s.g.cfg.MaxRequestBytes), total-s.keys)
	}
}

// send sends one chunk; the last one's header gets the member's ids.
func (s *rangeStream) send(resp *pb.RangeResponse) error {
	if resp.Header != nil {
		s.g.header(resp.Header)
	}
	if err := s.out.Send(&pb.RangeStreamResponse{RangeResponse: resp}); err != nil {
		return err
	}
	s.chunks++
	return nil
}

// adjustChunkLimit is etcd's: the next chunk's key count, doubled while
// chunks come out under half the target size and halved while over twice
// it (not in between, so that sizes near a bound do not flap), never 0
// (no limit).
func adjustChunkLimit(last int64, lastSize, target int) int64 {
	switch {
	case lastSize < target/2:
		last *= 2
	case lastSize > target*2:
		last /= 2
	}
	return max(last, 1)
}

package gateway

import (
	"context"
	"errors"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/watchactor"
)

// watchServer turns one gRPC watch stream into messages to the watch Hub
// and sends back what the Hub queues in the stream's outbox.
type watchServer struct {
	pb.UnimplementedWatchServer
	g *Gateway
}

func (s *watchServer) Watch(stream pb.Watch_WatchServer) error {
	g := s.g
	out := watchactor.NewStream(g.watchBudget)
	send := func(m any) { g.cfg.Root.Send(g.cfg.Watch, m) }
	send(&watchactor.OpenStream{Out: out})
	defer func() {
		out.Close()
		send(&watchactor.CloseStream{Out: out})
	}()

	recvErr := make(chan error, 1)
	go g.recvWatchRecovered(stream, out, send, recvErr)

	ctx := stream.Context()
	maxBytes := uint(g.cfg.MaxRequestBytes + grpcOverheadBytes)
	for {
		select {
		case <-ctx.Done():
			return watchCtxErr(ctx.Err())
		case err := <-recvErr:
			if err != nil {
				countStreamFailure(ctx, err, watchRecvFailures)
				return watchCtxErr(err)
			}
			recvErr = nil // the client closed its side: keep sending, as etcd does
		case <-out.Ready():
			items, err := out.Take()
			for _, it := range items {
				start := time.Now()
				g.watchHeader(it.Resp.Header)
				var serr error
				if it.Fragment {
					serr = sendFragments(it.Resp, maxBytes, stream.Send)
				} else {
					serr = stream.Send(it.Resp)
				}
				if serr != nil {
					countStreamFailure(ctx, serr, watchSendFailures)
					return serr
				}
				observeWatchSend(it.Resp, start)
			}
			if out.Sent() {
				send(&watchactor.Drained{Out: out})
			}
			if err != nil {
				return err
			}
		}
	}
}

// recvWatchRecovered runs recvWatch on the stream's receive goroutine,
// which the gRPC recovery interceptor does not cover: a panic there is
// recovered and reported as the interceptor does (logged with the stack,
// metastore_recovered_panics_total{where="grpc"}) and fails this stream
// alone with errPanic (Internal; clientv3 opens a new stream and resumes
// its watchers). recvErr gets exactly one value.
func (g *Gateway) recvWatchRecovered(stream pb.Watch_WatchServer, out *watchactor.Stream, send func(any), recvErr chan<- error) {
	defer func() {
		if p := recover(); p != nil {
			actors.ReportPanic(g.cfg.Logger, actors.PanicGRPC, p, zap.String("method", watchMethod), zap.String("goroutine", "receive"))
			recvErr <- errPanic
		}
	}()
	recvErr <- g.recvWatch(stream, out, send)
}

// watchMethod is the Watch RPC's full name, as gRPC reports it.
const watchMethod = "/etcdserverpb.Watch/Watch"

// recvWatch forwards the client's requests until it closes its side (nil)
// or the stream breaks. It reads the next one only once out admits it: a
// client that does not read its responses is not read either, so what it
// asks for cannot pile up in the server.
func (g *Gateway) recvWatch(stream pb.Watch_WatchServer, out *watchactor.Stream, send func(any)) error {
	for {
		if err := out.Admit(stream.Context()); err != nil {
			return err
		}
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch u := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if u.CreateRequest != nil {
				send(&watchactor.Create{Out: out, Req: u.CreateRequest, Refused: g.watchRefusal(stream.Context(), u.CreateRequest)})
				continue
			}
		case *pb.WatchRequest_CancelRequest:
			if u.CancelRequest != nil {
				send(&watchactor.Cancel{Out: out, WatchID: u.CancelRequest.WatchId})
				continue
			}
		case *pb.WatchRequest_ProgressRequest:
			if u.ProgressRequest != nil {
				send(&watchactor.RequestProgress{Out: out})
				continue
			}
		default:
			g.cfg.Logger.Info("invalid watch request type received in gRPC stream")
		}
		out.Handled() // nothing for the Hub to answer
	}
}

// watchRefusal is why etcd would refuse to create the watch as the
// stream's user (auth: read permission on the range, checked at creation),
// or "".
func (g *Gateway) watchRefusal(ctx context.Context, r *pb.WatchCreateRequest) string {
	key := r.Key
	if len(key) == 0 {
		key = []byte{0} // etcd checks the key it will watch
	}
	err := g.authorize(ctx, func(st *authactor.State, ai authactor.Info) error {
		return st.CheckOp(ai, key, r.RangeEnd, false)
	})
	if err == nil {
		return ""
	}
	g.audit(ctx, watchMethod, r, err)
	switch {
	case errors.Is(err, rpctypes.ErrGRPCInvalidAuthToken), errors.Is(err, rpctypes.ErrGRPCAuthOldRevision), errors.Is(err, rpctypes.ErrGRPCUserEmpty):
		return err.Error()
	}
	return rpctypes.ErrGRPCPermissionDenied.Error()
}

func watchCtxErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return rpctypes.ErrGRPCWatchCanceled
	}
	return err
}

// watchHeader adds the member's ids and term to a header the Hub filled
// with a revision (0 in a compacted response, as etcd sends it).
func (g *Gateway) watchHeader(h *pb.ResponseHeader) {
	v := g.cfg.RaftView.Load()
	h.ClusterId, h.MemberId, h.RaftTerm = v.ClusterID, v.ID, v.Term
}

// sendFragments sends wr in pieces of at most maxBytes (each with at least
// one event), all but the last marked fragment: etcd's rule for watchers
// created with fragment set.
func sendFragments(wr *pb.WatchResponse, maxBytes uint, send func(*pb.WatchResponse) error) error {
	if uint(proto.Size(wr)) < maxBytes || len(wr.Events) < 2 {
		return send(wr)
	}
	evs := wr.Events
	for len(evs) > 0 {
		cur := &pb.WatchResponse{
			Header: wr.Header, WatchId: wr.WatchId, Created: wr.Created, Canceled: wr.Canceled,
			CompactRevision: wr.CompactRevision, CancelReason: wr.CancelReason, Fragment: true,
		}
		n := 0
		for n < len(evs) {
			cur.Events = append(cur.Events, evs[n])
			if n > 0 && uint(proto.Size(cur)) >= maxBytes {
				cur.Events = cur.Events[:n]
				break
			}
			n++
		}
		evs = evs[n:]
		cur.Fragment = len(evs) > 0
		if err := send(cur); err != nil {
			return err
		}
	}
	return nil
}

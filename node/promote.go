package node

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// MemberPromote on a follower goes to the leader, which alone knows how far
// the learner has replicated (etcd forwards it the same way):
//
//	POST /members/promote/<id in hex> -> 200 pb.MemberListResponse, or
//	409 with the gRPC status of the refusal (google.rpc.Status)
const pathPromote = "/members/promote/"

// promoteHandler is the leader's half; promote is gateway.PromoteMember.
type promoteHandler struct {
	promote func(ctx context.Context, id uint64) ([]*pb.Member, error)
}

func (h *promoteHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	id, err := strconv.ParseUint(strings.TrimPrefix(r.URL.Path, pathPromote), 16, 64)
	if err != nil {
		http.Error(w, "bad member id", http.StatusBadRequest)
		return
	}
	members, err := h.promote(r.Context(), id)
	var b []byte
	if err != nil {
		b, err = proto.Marshal(status.Convert(err).Proto())
		w.WriteHeader(http.StatusConflict)
	} else {
		b, err = proto.Marshal(&pb.MemberListResponse{Members: members})
	}
	if err == nil {
		_, _ = w.Write(b)
	}
}

// promoteAtLeader is the follower's half (gateway.Config.LeaderPromote).
func (l *leaderPeer) promoteAtLeader(ctx context.Context, id uint64) ([]*pb.Member, error) {
	urls := l.leaderURLs()
	if len(urls) == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	var last error
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+pathPromote+strconv.FormatUint(id, 16), nil)
		if err != nil {
			return nil, err
		}
		res, err := l.client.Do(req)
		if err != nil {
			last = err
			continue
		}
		b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if err != nil {
			last = err
			continue
		}
		switch res.StatusCode {
		case http.StatusOK:
			out := new(pb.MemberListResponse)
			if err := proto.Unmarshal(b, out); err != nil {
				return nil, err
			}
			return out.Members, nil
		case http.StatusConflict:
			st := new(spb.Status)
			if err := proto.Unmarshal(b, st); err != nil {
				return nil, err
			}
			return nil, status.ErrorProto(st)
		default:
			last = status.Errorf(13, "leader answered %s: %s", res.Status, bytes.TrimSpace(b))
		}
	}
	return nil, last
}

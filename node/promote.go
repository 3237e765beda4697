package node

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/status"
)

// MemberPromote on a follower goes to the leader, which alone knows how far
// the learner has replicated (etcd forwards it the same way):
//
//	POST /members/promote/<id in hex> -> 200 pb.MemberListResponse, or
//	409 with the gRPC status of the refusal (see writeStatus)
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
	if err != nil {
		writeStatus(w, err)
		return
	}
	writeProto(w, &pb.MemberListResponse{Members: members})
}

// promoteAtLeader is the follower's half (gateway.Config.LeaderPromote).
func (l *leaderPeer) promoteAtLeader(ctx context.Context, id uint64) ([]*pb.Member, error) {
	urls := l.leaderURLs()
	if len(urls) == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	var err error
	for _, u := range urls {
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u+pathPromote+strconv.FormatUint(id, 16), nil)
		if err != nil {
			return nil, err
		}
		out := new(pb.MemberListResponse)
		if err = doProto(l.client, req, out); err == nil {
			return out.Members, nil
		}
		if _, isStatus := status.FromError(err); isStatus {
			return nil, err // the leader's answer
		}
	}
	return nil, err
}

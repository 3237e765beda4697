package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/leaseactor"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
)

// Only the leader's lessor knows when leases expire, so a follower sends
// keep-alives and TTL queries on to the leader, as etcd does, over the
// leader's peer URL:
//
//	POST /leases/renew  body pb.LeaseKeepAliveRequest  -> pb.LeaseKeepAliveResponse
//	POST /leases/ttl    body pb.LeaseTimeToLiveRequest -> pb.LeaseTimeToLiveResponse
//
// Refusals come back as the lessor's gRPC errors (409, see writeStatus):
// an unknown lease; "not leader" (any more); or "not a primary lessor",
// when the leader could not confirm its leadership for the keep-alive by
// a quorum round. On the last two the sender looks the leader up again and
// retries until its deadline, as etcd's follower does.
const (
	pathLeaseRenew = "/leases/renew"
	pathLeaseTTL   = "/leases/ttl"
)

// leaseHandler serves the leader's half.
type leaseHandler struct {
	root   *actor.RootContext
	lessor *actor.PID
}

func (h *leaseHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var id int64
	var resp proto.Message
	switch r.URL.Path {
	case pathLeaseRenew:
		req := new(pb.LeaseKeepAliveRequest)
		if err := proto.Unmarshal(body, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id = req.ID
		res, err := actors.Ask(r.Context(), h.root, h.lessor, func(reply chan<- leaseactor.RenewResult) any {
			return &leaseactor.Renew{ID: id, Reply: reply}
		})
		if err == nil {
			err = res.Err
		}
		if err != nil {
			writeStatus(w, err)
			return
		}
		resp = &pb.LeaseKeepAliveResponse{ID: id, TTL: res.TTL}
	case pathLeaseTTL:
		req := new(pb.LeaseTimeToLiveRequest)
		if err := proto.Unmarshal(body, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id = req.ID
		res, err := actors.Ask(r.Context(), h.root, h.lessor, func(reply chan<- leaseactor.TTLResult) any {
			return &leaseactor.TimeToLive{ID: id, Reply: reply}
		})
		if err == nil {
			err = res.Err
		}
		if err == nil && !res.Found {
			err = rpctypes.ErrGRPCLeaseNotFound
		}
		if err != nil {
			writeStatus(w, err)
			return
		}
		resp = &pb.LeaseTimeToLiveResponse{ID: id, TTL: res.TTL, GrantedTTL: res.GrantedTTL}
	default:
		http.NotFound(w, r)
		return
	}
	writeProto(w, resp)
}

// leaderPeer is the leader as a follower reaches it, over its peer URL:
// the follower's half of lease forwarding (gateway.LeaderLeases) and of
// MemberPromote.
type leaderPeer struct {
	self    uint64
	raft    *raftactor.ViewRef
	members func() *storeactor.Members
	client  *http.Client
}

func newLeaderPeer(self uint64, client *http.Client, raft *raftactor.ViewRef, members func() *storeactor.Members) *leaderPeer {
	return &leaderPeer{self: self, raft: raft, members: members, client: client}
}

// Renew renews lease id at the leader and returns its TTL.
func (l *leaderPeer) Renew(ctx context.Context, id int64) (int64, error) {
	resp := new(pb.LeaseKeepAliveResponse)
	err := l.call(ctx, pathLeaseRenew, &pb.LeaseKeepAliveRequest{ID: id}, resp)
	return resp.TTL, err
}

// TimeToLive asks the leader for lease id's remaining and granted TTL.
func (l *leaderPeer) TimeToLive(ctx context.Context, id int64) (leaseactor.TTLResult, error) {
	resp := new(pb.LeaseTimeToLiveResponse)
	err := l.call(ctx, pathLeaseTTL, &pb.LeaseTimeToLiveRequest{ID: id}, resp)
	if errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		return leaseactor.TTLResult{}, nil
	}
	return leaseactor.TTLResult{TTL: resp.TTL, GrantedTTL: resp.GrantedTTL, Found: err == nil}, err
}

// call posts req to the current leader until it answers or ctx ends
// (leader unknown or changing: etcd's "leader changed"/timeout errors).
func (l *leaderPeer) call(ctx context.Context, path string, req, resp proto.Message) error {
	body, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	var last error = rpctypes.ErrGRPCNoLeader
	for {
		if v := l.raft.Load(); v != nil && v.Lead == l.self {
			// Leading now (the local lessor was asked first): let the
			// client retry against it.
			return rpctypes.ErrGRPCNotLeader
		}
		if urls := l.leaderURLs(); len(urls) > 0 {
			for _, u := range urls {
				last = l.post(ctx, u+path, body, resp)
				if last == nil || errors.Is(last, rpctypes.ErrGRPCLeaseNotFound) {
					return last
				}
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(last, rpctypes.ErrGRPCNoLeader) {
				return last
			}
			return rpctypes.ErrGRPCTimeout
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (l *leaderPeer) leaderURLs() []string {
	v := l.raft.Load()
	if v == nil || v.Lead == 0 {
		return nil
	}
	if m := l.members().Get(v.Lead); m != nil {
		return m.PeerURLs
	}
	return nil
}

func (l *leaderPeer) post(ctx context.Context, url string, body []byte, resp proto.Message) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/protobuf")
	return doProto(l.client, req, resp)
}

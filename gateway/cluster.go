package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
)

// clusterServer is etcd's Cluster service. Membership changes are raft
// conf changes: the store decides each against the membership of the entry
// before it (etcd's rules and errors), and answers with the membership
// after it. The checks before proposing are etcd's too: admin only, and
// with --strict-reconfig-check, no change that would leave the cluster
// without a quorum of started, connected voters.
type clusterServer struct {
	pb.UnimplementedClusterServer
	g *Gateway
}

// PeerHealth says since when this member has had a working connection to
// a peer (zero: none now). etcd's reconfiguration checks count a peer as
// connected once its connection is older than healthInterval.
type PeerHealth interface {
	ActiveSince(id uint64) time.Time
}

// healthInterval is etcd's HealthInterval.
const healthInterval = 5 * time.Second

func (s *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.Linearizable {
		if err := s.g.linearizableRead(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.g.requireUser(ctx); err != nil {
		return nil, err
	}
	resp := &pb.MemberListResponse{Header: &pb.ResponseHeader{}, Members: s.g.cfg.Members()}
	s.g.clusterHeader(resp.Header)
	return resp, nil
}

func (s *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	urls, err := parsePeerURLs(r.PeerURLs)
	if err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	// etcd's id for an added member: its URLs and the time it was added.
	m := &pb.Member{ID: storeactor.MemberID(urls, strconv.FormatInt(time.Now().Unix(), 10)), PeerURLs: urls, IsLearner: r.IsLearner}
	if err := s.mayAddMember(m); err != nil {
		return nil, err
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: &m.ID, Context: storeactor.EncodeMemberContext(m)}
	if r.IsLearner {
		cc.Type = raftpb.ConfChangeAddLearnerNode.Enum()
	}
	members, err := s.configure(ctx, cc)
	if err != nil {
		return nil, err
	}
	resp := &pb.MemberAddResponse{Header: &pb.ResponseHeader{}, Member: m, Members: members}
	s.g.clusterHeader(resp.Header)
	return resp, nil
}

func (s *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.mayRemoveMember(r.ID); err != nil {
		return nil, err
	}
	members, err := s.configure(ctx, &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: &r.ID})
	if err != nil {
		return nil, err
	}
	resp := &pb.MemberRemoveResponse{Header: &pb.ResponseHeader{}, Members: members}
	s.g.clusterHeader(resp.Header)
	return resp, nil
}

func (s *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	urls, err := parsePeerURLs(r.PeerURLs)
	if err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	m := &pb.Member{ID: r.ID, PeerURLs: urls}
	members, err := s.configure(ctx, &raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode.Enum(), NodeId: &r.ID, Context: storeactor.EncodeMemberContext(m)})
	if err != nil {
		return nil, err
	}
	resp := &pb.MemberUpdateResponse{Header: &pb.ResponseHeader{}, Members: members}
	s.g.clusterHeader(resp.Header)
	return resp, nil
}

// MemberPromote: only the leader knows whether the learner has caught up;
// a follower answers "not leader" and etcd's client retries elsewhere.
func (s *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	members, err := s.g.PromoteMember(ctx, r.ID)
	if errors.Is(err, rpctypes.ErrGRPCNotLeader) && s.g.cfg.LeaderPromote != nil {
		members, err = s.g.cfg.LeaderPromote(ctx, r.ID)
	}
	if err != nil {
		return nil, err
	}
	resp := &pb.MemberPromoteResponse{Header: &pb.ResponseHeader{}, Members: members}
	s.g.clusterHeader(resp.Header)
	return resp, nil
}

// PromoteMember promotes learner id if it has caught up with this member,
// which must lead (else rpctypes.ErrGRPCNotLeader); the caller has checked
// the permission. It returns the membership after.
func (g *Gateway) PromoteMember(ctx context.Context, id uint64) ([]*pb.Member, error) {
	s := &clusterServer{g: g}
	if err := s.mayPromoteMember(ctx, id); err != nil {
		return nil, err
	}
	return s.configure(ctx, &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: &id, Context: storeactor.PromoteContext})
}

// configure proposes cc and waits for the store's verdict.
func (s *clusterServer) configure(ctx context.Context, cc *raftpb.ConfChange) ([]*pb.Member, error) {
	id := s.g.cfg.IDs.Next()
	cc.Id = &id
	cctx, cancel := context.WithTimeout(ctx, s.g.cfg.RequestTimeout)
	defer cancel()
	res, err := actors.Ask(cctx, s.g.cfg.Root, s.g.cfg.Raft, func(reply chan<- actors.Result) any {
		return &raftactor.ProposeConfChange{CC: cc, Reply: reply}
	})
	if err != nil {
		return nil, s.g.ctxErr(ctx, err)
	}
	if res.Err != nil {
		return nil, res.Err
	}
	s.g.cfg.Logger.Info("membership changed", zap.Stringer("type", cc.GetType()), zap.String("member-id", fmt.Sprintf("%x", cc.GetNodeId())))
	return res.Resp.(*pb.MemberListResponse).Members, nil
}

// started is etcd's IsStarted: the member has published its name.
func started(m *pb.Member) bool { return m.Name != "" }

func (s *clusterServer) voters() []*pb.Member {
	return slices.DeleteFunc(slices.Clone(s.g.cfg.Members()), func(m *pb.Member) bool { return m.IsLearner })
}

// connected counts the members of ms this member is connected to since
// healthInterval, itself included.
func (s *clusterServer) connected(ms []*pb.Member) int {
	self := s.g.cfg.RaftView.Load().ID
	since := time.Now().Add(-healthInterval)
	n := 0
	for _, m := range ms {
		if m.ID == self {
			n++
		} else if t := s.g.cfg.Peers.ActiveSince(m.ID); !t.IsZero() && t.Before(since) {
			n++
		}
	}
	return n
}

// mayAddMember is etcd's: a voter may be added only with a quorum of the
// new membership started, and any member only while this member is
// connected to a quorum of the voters plus the new one (counted as down).
func (s *clusterServer) mayAddMember(m *pb.Member) error {
	if !s.g.cfg.StrictReconfigCheck {
		return nil
	}
	voters := s.voters()
	if !m.IsLearner {
		nmembers, nstarted := 1, 0
		for _, v := range voters {
			if started(v) {
				nstarted++
			}
			nmembers++
		}
		// Adding a second member to a one-member cluster (restoring a
		// cluster from one member's data) is allowed.
		if !(nstarted == 1 && nmembers == 2) && nstarted < nmembers/2+1 {
			s.g.cfg.Logger.Warn("rejecting member add request; not enough healthy members")
			return rpctypes.ErrGRPCMemberNotEnoughStarted
		}
	}
	if len(voters) > 1 && s.connected(voters) < (len(voters)+1)/2+1 {
		s.g.cfg.Logger.Warn("rejecting member add request; local member has not been connected to majority peers, reconfigure breaks active quorum")
		return rpctypes.ErrGRPCUnhealthy
	}
	return nil
}

// mayRemoveMember is etcd's: removing a voter must leave a quorum of
// started members, and of connected ones unless the removed one is down.
func (s *clusterServer) mayRemoveMember(id uint64) error {
	if !s.g.cfg.StrictReconfigCheck {
		return nil
	}
	members := s.g.cfg.Members()
	if i := slices.IndexFunc(members, func(m *pb.Member) bool { return m.ID == id }); i >= 0 && members[i].IsLearner {
		return nil
	}
	voters := s.voters()
	nmembers, nstarted := 0, 0
	for _, v := range voters {
		if v.ID == id {
			continue
		}
		if started(v) {
			nstarted++
		}
		nmembers++
	}
	if nstarted < nmembers/2+1 {
		return rpctypes.ErrGRPCMemberNotEnoughStarted
	}
	if self := s.g.cfg.RaftView.Load().ID; id != self && s.g.cfg.Peers.ActiveSince(id).IsZero() {
		return nil // a member that is down is not part of the active quorum
	}
	if s.connected(voters)-1 < 1+(len(voters)-1)/2 {
		s.g.cfg.Logger.Warn("rejecting member remove request; local member has not been connected to all peers, reconfigure breaks active quorum")
		return rpctypes.ErrGRPCUnhealthy
	}
	return nil
}

// learnerReadyPercent is how far (of the leader's log) a learner must have
// replicated to be promoted (etcd's readyPercentThreshold).
const learnerReadyPercent = 0.9

// mayPromoteMember is etcd's isLearnerReady plus the quorum check.
func (s *clusterServer) mayPromoteMember(ctx context.Context, id uint64) error {
	st, err := actors.Ask(ctx, s.g.cfg.Root, s.g.cfg.Raft, func(reply chan<- raftactor.StatusInfo) any {
		return &raftactor.Status{Reply: reply}
	})
	if err != nil {
		return s.g.ctxErr(ctx, err)
	}
	if st.Match == nil {
		return rpctypes.ErrGRPCNotLeader
	}
	match, ok := st.Match[id]
	if !ok {
		return rpctypes.ErrGRPCMemberNotFound
	}
	if lead := st.Match[st.ID]; lead > 0 && float64(match)/float64(lead) < learnerReadyPercent {
		return rpctypes.ErrGRPCLearnerNotReady
	}
	if !s.g.cfg.StrictReconfigCheck {
		return nil
	}
	nmembers, nstarted := 1, 1 // the learner counts, as started
	for _, v := range s.voters() {
		if started(v) {
			nstarted++
		}
		nmembers++
	}
	if nstarted < nmembers/2+1 {
		return rpctypes.ErrGRPCMemberNotEnoughStarted
	}
	return nil
}

// parsePeerURLs is etcd's types.NewURLs: http(s) URLs are host:port with
// no path; unix(s) anything. The result is sorted.
func parsePeerURLs(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, errors.New("no valid URLs given")
	}
	out := make([]string, len(in))
	for i, raw := range in {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		switch u.Scheme {
		case "http", "https":
			if _, _, err := net.SplitHostPort(u.Host); err != nil {
				return nil, fmt.Errorf("URL address does not have the form \"host:port\": %s", raw)
			}
			if u.Path != "" {
				return nil, fmt.Errorf("URL must not contain a path: %s", raw)
			}
		case "unix", "unixs":
		default:
			return nil, fmt.Errorf("URL scheme must be http, https, unix, or unixs: %s", raw)
		}
		out[i] = u.String()
	}
	slices.Sort(out)
	return out, nil
}

// clusterHeader fills a Cluster service response's header as etcd does:
// ids and term, no revision (membership is not MVCC data).
func (g *Gateway) clusterHeader(h *pb.ResponseHeader) {
	v := g.cfg.RaftView.Load()
	h.ClusterId, h.MemberId, h.RaftTerm = v.ClusterID, v.ID, v.Term
}

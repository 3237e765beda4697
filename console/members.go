package console

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// The cluster view: MemberList from this member, then each member's own
// Status over its client URLs (in parallel, each bounded), and the
// active alarms. Ids are hex strings: a uint64 does not fit a JavaScript
// number.

// statusTimeout bounds one member's Status: a member down is shown as
// such without holding up the page.
const statusTimeout = 3 * time.Second

type memberView struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	PeerURLs   []string    `json:"peerURLs"`
	ClientURLs []string    `json:"clientURLs"`
	IsLearner  bool        `json:"isLearner"`
	Self       bool        `json:"self"` // the member serving the console
	Status     *statusView `json:"status,omitempty"`
	Error      string      `json:"error,omitempty"` // why there is no status
}

type statusView struct {
	Leader           string   `json:"leader"`
	RaftTerm         uint64   `json:"raftTerm"`
	RaftIndex        uint64   `json:"raftIndex"`
	RaftAppliedIndex uint64   `json:"raftAppliedIndex"`
	DBSize           int64    `json:"dbSize"`
	DBSizeInUse      int64    `json:"dbSizeInUse"`
	DBSizeQuota      int64    `json:"dbSizeQuota"`
	Version          string   `json:"version"`
	StorageVersion   string   `json:"storageVersion"`
	Errors           []string `json:"errors,omitempty"`
}

type alarmView struct {
	Member string `json:"member"`
	Alarm  string `json:"alarm"`
}

type clusterView struct {
	Cluster string       `json:"cluster"`
	Leader  string       `json:"leader"` // as this member sees it ("0": none)
	Members []memberView `json:"members"`
	Alarms  []alarmView  `json:"alarms"`
	// LeaderChanges is this member's etcd_server_leader_changes_seen_total.
	LeaderChanges float64 `json:"leaderChanges"`
}

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

func parseID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("not a member or lease id (hex): %q", s)
	}
	return id, nil
}

// serveMembers is the cluster view.
func (c *Console) serveMembers(_ http.ResponseWriter, r *http.Request, s *session) reply {
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	list, err := pb.NewClusterClient(c.cfg.Conn).MemberList(ctx, &pb.MemberListRequest{Linearizable: true})
	if err != nil {
		return c.fail(s, err)
	}
	self := list.Header.MemberId
	out := clusterView{Cluster: hexID(list.Header.ClusterId), Leader: "0", Members: make([]memberView, len(list.Members)), Alarms: []alarmView{}}
	keep := map[string]bool{}
	var wg sync.WaitGroup
	for i, m := range list.Members {
		out.Members[i] = memberView{ID: hexID(m.ID), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs,
			IsLearner: m.IsLearner, Self: m.ID == self}
		for _, u := range m.ClientURLs {
			keep[u] = true
		}
		wg.Add(1)
		go func(v *memberView, m *pb.Member) {
			defer wg.Done()
			st, err := c.status(ctx, m, self)
			if err != nil {
				v.Error = rpcReply(err).body.(apiError).Error
				return
			}
			v.Status = &statusView{Leader: hexID(st.Leader), RaftTerm: st.RaftTerm, RaftIndex: st.RaftIndex,
				RaftAppliedIndex: st.RaftAppliedIndex, DBSize: st.DbSize, DBSizeInUse: st.DbSizeInUse, DBSizeQuota: st.DbSizeQuota,
				Version: st.Version, StorageVersion: st.StorageVersion, Errors: st.Errors}
		}(&out.Members[i], m)
	}
	wg.Wait()
	c.members.retain(keep)
	slices.SortFunc(out.Members, func(a, b memberView) int { return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID)) })
	for _, m := range out.Members {
		if m.Self && m.Status != nil {
			out.Leader = m.Status.Leader
		}
	}
	alarms, err := pb.NewMaintenanceClient(c.cfg.Conn).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	if err != nil {
		return c.fail(s, err)
	}
	for _, a := range alarms.Alarms {
		out.Alarms = append(out.Alarms, alarmView{Member: hexID(a.MemberID), Alarm: a.Alarm.String()})
	}
	out.LeaderChanges = gatherValue(c.cfg.Gatherer, "etcd_server_leader_changes_seen_total")
	return ok(out)
}

// status is one member's Status, asked of that member: over the
// in-process connection for this one, else its first client URL that
// answers.
func (c *Console) status(ctx context.Context, m *pb.Member, self uint64) (*pb.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var st *pb.StatusResponse
	err := c.onMember(ctx, m, self, func(conn *grpc.ClientConn) (err error) {
		st, err = pb.NewMaintenanceClient(conn).Status(ctx, &pb.StatusRequest{})
		return err
	})
	return st, err
}

// onMember runs call on a connection to member m: the in-process one for
// this member, else each of its client URLs until one answers.
func (c *Console) onMember(ctx context.Context, m *pb.Member, self uint64, call func(*grpc.ClientConn) error) error {
	if m.ID == self {
		return call(c.cfg.Conn)
	}
	if len(m.ClientURLs) == 0 {
		return errors.New("the member has not published client URLs (it has not started yet)")
	}
	var err error
	for _, u := range m.ClientURLs {
		var conn *grpc.ClientConn
		if conn, err = c.members.get(u); err != nil {
			continue
		}
		if err = call(conn); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// findMember is the member with the given id and this member's id.
func (c *Console) findMember(ctx context.Context, id uint64) (*pb.Member, uint64, error) {
	list, err := pb.NewClusterClient(c.cfg.Conn).MemberList(ctx, &pb.MemberListRequest{Linearizable: true})
	if err != nil {
		return nil, 0, err
	}
	for _, m := range list.Members {
		if m.ID == id {
			return m, list.Header.MemberId, nil
		}
	}
	return nil, list.Header.MemberId, fmt.Errorf("no member %x in the cluster", id)
}

type memberRequest struct {
	ID string `json:"id"`
}

// serveMoveLeader asks the leader (only it can) to hand leadership to
// the member given.
func (c *Console) serveMoveLeader(_ http.ResponseWriter, r *http.Request, s *session) reply {
	return c.idAction(r, s, "move-leader", "member", rpcTimeout, func(ctx context.Context, target uint64) error {
		st, err := pb.NewMaintenanceClient(c.cfg.Conn).Status(ctx, &pb.StatusRequest{})
		if err != nil {
			return err
		}
		if st.Leader == 0 {
			return errors.New("the cluster has no leader")
		}
		leader, self, err := c.findMember(ctx, st.Leader)
		if err != nil {
			return err
		}
		return c.onMember(ctx, leader, self, func(conn *grpc.ClientConn) error {
			_, err := pb.NewMaintenanceClient(conn).MoveLeader(ctx, &pb.MoveLeaderRequest{TargetID: target})
			return err
		})
	})
}

// servePromote promotes a learner to a voting member.
func (c *Console) servePromote(_ http.ResponseWriter, r *http.Request, s *session) reply {
	return c.idAction(r, s, "promote-member", "member", rpcTimeout, func(ctx context.Context, id uint64) error {
		_, err := pb.NewClusterClient(c.cfg.Conn).MemberPromote(ctx, &pb.MemberPromoteRequest{ID: id})
		return err
	})
}

// serveRemove removes a member from the cluster.
func (c *Console) serveRemove(_ http.ResponseWriter, r *http.Request, s *session) reply {
	return c.idAction(r, s, "remove-member", "member", rpcTimeout, func(ctx context.Context, id uint64) error {
		_, err := pb.NewClusterClient(c.cfg.Conn).MemberRemove(ctx, &pb.MemberRemoveRequest{ID: id})
		return err
	})
}

// serveDefrag defragments one member's storage (asked of that member).
func (c *Console) serveDefrag(_ http.ResponseWriter, r *http.Request, s *session) reply {
	return c.idAction(r, s, "defrag", "member", longTimeout, func(ctx context.Context, id uint64) error {
		m, self, err := c.findMember(ctx, id)
		if err != nil {
			return err
		}
		return c.onMember(ctx, m, self, func(conn *grpc.ClientConn) error {
			_, err := pb.NewMaintenanceClient(conn).Defragment(ctx, &pb.DefragmentRequest{})
			return err
		})
	})
}

// idAction runs an action on the member or lease named by the request's
// id, as the session's user, and logs it with the id as field.
func (c *Console) idAction(r *http.Request, s *session, action, field string, timeout time.Duration, do func(context.Context, uint64) error) reply {
	var req memberRequest
	if err := decode(r, &req); err != nil {
		return badRequest(err.Error())
	}
	id, err := parseID(req.ID)
	if err != nil {
		return badRequest(err.Error())
	}
	ctx, cancel := asUser(r, s, timeout)
	defer cancel()
	start := c.cfg.Clock.Now()
	rep := ok(struct{}{})
	if err := do(ctx, id); err != nil {
		rep = c.fail(s, err)
	}
	c.logAction(r, s, action, rep, zap.String(field, req.ID), zap.Duration("took", c.cfg.Clock.Now().Sub(start)))
	return rep
}

type alarmRequest struct {
	Member string `json:"member"`
	Alarm  string `json:"alarm"` // NOSPACE, CORRUPT
}

// serveDisarm deactivates one alarm of one member.
func (c *Console) serveDisarm(_ http.ResponseWriter, r *http.Request, s *session) reply {
	var req alarmRequest
	if err := decode(r, &req); err != nil {
		return badRequest(err.Error())
	}
	id, err := parseID(req.Member)
	if err != nil {
		return badRequest(err.Error())
	}
	typ, known := pb.AlarmType_value[req.Alarm]
	if !known || typ == int32(pb.AlarmType_NONE) {
		return badRequest(fmt.Sprintf("unknown alarm %q", req.Alarm))
	}
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	rep := ok(struct{}{})
	if _, err := pb.NewMaintenanceClient(c.cfg.Conn).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE,
		MemberID: id, Alarm: pb.AlarmType(typ)}); err != nil {
		rep = c.fail(s, err)
	}
	c.logAction(r, s, "disarm-alarm", rep, zap.String("member", req.Member), zap.String("alarm", req.Alarm))
	return rep
}

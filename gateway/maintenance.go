package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
)

// maintenanceServer implements etcd's Maintenance service.
type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	g *Gateway
}

func (s *maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	if err := s.g.requireUser(ctx); err != nil {
		return nil, err
	}
	st, err := actors.Ask(ctx, s.g.cfg.Root, s.g.cfg.Raft, func(reply chan<- raftactor.StatusInfo) any {
		return &raftactor.Status{Reply: reply}
	})
	if err != nil {
		return nil, s.g.ctxErr(ctx, err)
	}
	// In use: the MVCC data not compacted away (the quota's measure).
	total, inUse := s.g.cfg.DBSize(), s.g.cfg.Store.View().LiveBytes
	resp := &pb.StatusResponse{
		Header:           &pb.ResponseHeader{},
		Version:          s.g.cfg.Version,
		DbSize:           total,
		DbSizeInUse:      inUse,
		Leader:           st.Lead,
		RaftIndex:        st.Committed,
		RaftTerm:         st.Term,
		RaftAppliedIndex: st.Applied,
		IsLearner:        st.IsLearner,
		DbSizeQuota:      s.g.cfg.Store.QuotaBytes(),
		DowngradeInfo:    &pb.DowngradeInfo{},
		StorageVersion:   s.g.cfg.StorageVersion,
	}
	if st.Lead == 0 {
		resp.Errors = append(resp.Errors, rpctypes.ErrNoLeader.Error())
	}
	alarms, err := s.g.cfg.Store.Alarms()
	if err != nil {
		return nil, err // Unknown with the store's error
	}
	for _, a := range alarms {
		resp.Errors = append(resp.Errors, a.String()) // as etcd reports them
	}
	s.g.header(resp.Header)
	return resp, nil
}

// Alarm goes through raft, as in etcd: every member agrees on the alarms.
// Listing them needs a user, changing them the root role.
func (s *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	check := s.g.requireAdmin
	if r.Action == pb.AlarmRequest_GET {
		check = s.g.requireUser
	}
	if err := check(ctx); err != nil {
		return nil, err
	}
	return proposeFor[*pb.AlarmResponse](ctx, s.g, &pb.InternalRaftRequest{Alarm: r})
}

// HashKV hashes the MVCC key space up to a revision on this member, from
// the store's published state (no raft round trip, as in etcd).
func (s *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	h, err := s.g.cfg.Store.HashKV(r.Revision)
	if err != nil {
		return nil, err
	}
	resp := &pb.HashKVResponse{
		Header:          &pb.ResponseHeader{Revision: h.CurrentRevision},
		Hash:            h.Hash,
		CompactRevision: h.CompactRevision,
		HashRevision:    h.Revision,
	}
	s.g.header(resp.Header)
	return resp, nil
}

// Defragment needs the root role. Unlike etcd's, it does not stop the
// world: pebble compacts in the background while requests are served.
func (s *maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	s.g.cfg.Logger.Info("starting defragment")
	if err := s.g.cfg.Defragment(ctx); err != nil {
		s.g.cfg.Logger.Warn("failed to defragment", zap.Error(err))
		return nil, s.g.ctxErr(ctx, err)
	}
	s.g.cfg.Logger.Info("finished defragment")
	return &pb.DefragmentResponse{}, nil // etcd sends no header here
}

// snapshotChunk is the blob size of a Snapshot stream message (etcd's).
const snapshotChunk = 32 * 1024

// Snapshot streams a consistent copy of the member's data, in MetaStore's
// snapshot format (storeactor/snapshot.go), the way etcd streams its own:
// chunks with the bytes still to come, then one message with the SHA-256
// of them all. It needs the root role. Reads and writes go on meanwhile:
// the copy is a pebble checkpoint (hard links), not a locked read.
func (s *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	if err := s.g.requireAdmin(srv.Context()); err != nil {
		return err
	}
	snap, err := s.g.cfg.Snapshots.Take()
	if err != nil {
		return err
	}
	pr := snap.Reader()
	defer func() {
		// Also when the client went away: the checkpoint is a full copy.
		if err := pr.Close(); err != nil {
			s.g.cfg.Logger.Warn("failed to remove snapshot checkpoint", zap.Error(err))
		}
	}()
	version := s.g.cfg.StorageVersion
	total, sent := snap.Size(), int64(0)
	s.g.cfg.Logger.Info("sending database snapshot to client", zap.Int64("total-bytes", total))
	h := sha256.New()
	for sent < total {
		buf := make([]byte, snapshotChunk) // not reused: Send may still hold the last one
		n, err := io.ReadFull(pr, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		if n == 0 {
			return fmt.Errorf("snapshot ended after %d of %d bytes", sent, total)
		}
		sent += int64(n)
		h.Write(buf[:n])
		if err := srv.Send(&pb.SnapshotResponse{RemainingBytes: uint64(total - sent), Blob: buf[:n], Version: version}); err != nil {
			return err
		}
	}
	if err := srv.Send(&pb.SnapshotResponse{Blob: h.Sum(nil), Version: version}); err != nil {
		return err
	}
	s.g.cfg.Logger.Info("sent database snapshot to client", zap.Int64("total-bytes", total))
	return nil
}

// Hash hashes everything the member's store holds (see storeactor Hash);
// root only, as in etcd.
func (s *maintenanceServer) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	h, rev, err := s.g.cfg.Store.Hash()
	if err != nil {
		return nil, err
	}
	resp := &pb.HashResponse{Header: &pb.ResponseHeader{Revision: rev}, Hash: h}
	s.g.header(resp.Header)
	return resp, nil
}

// MoveLeader is etcd's: only the leader moves leadership, and only to a
// voting member; it waits until the transferee leads, or answers etcd's
// "leader transfer took too long" at the request timeout.
func (s *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	v := s.g.cfg.RaftView.Load()
	if v.Lead != v.ID {
		return nil, rpctypes.ErrGRPCNotLeader
	}
	target := slices.IndexFunc(s.g.cfg.Members(), func(m *pb.Member) bool { return m.ID == r.TargetID && !m.IsLearner })
	if target < 0 {
		return nil, rpctypes.ErrGRPCBadLeaderTransferee
	}
	if r.TargetID != v.ID {
		s.g.cfg.Root.Send(s.g.cfg.Raft, &raftactor.TransferLeader{Target: r.TargetID})
		cctx, cancel := context.WithTimeout(ctx, s.g.cfg.RequestTimeout)
		defer cancel()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for s.g.cfg.RaftView.Load().Lead != r.TargetID {
			select {
			case <-cctx.Done():
				return nil, errLeaderTransferTimeout
			case <-tick.C:
			}
		}
	}
	resp := &pb.MoveLeaderResponse{Header: &pb.ResponseHeader{}}
	s.g.header(resp.Header)
	return resp, nil
}

// errLeaderTransferTimeout is etcd's ErrTimeoutLeaderTransfer, which has no
// rpctypes counterpart: etcd sends it as codes.Unknown with this text.
var errLeaderTransferTimeout = status.Error(codes.Unknown, "etcdserver: request timed out, leader transfer took too long")

// Downgrade validates as etcd does: the target is major.minor(.patch) and
// must be the minor version just below the cluster's. MetaStore cannot
// become an etcd 3.6 member (its storage is not etcd's), so enabling a
// valid downgrade is refused with a clear error; cancel answers as etcd
// does when no downgrade is in flight.
func (s *maintenanceServer) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	if err := s.g.requireAdmin(ctx); err != nil {
		return nil, err
	}
	cluster := s.g.cfg.ClusterVersion
	resp := &pb.DowngradeResponse{Header: &pb.ResponseHeader{}, Version: cluster}
	s.g.header(resp.Header)
	switch r.Action {
	case pb.DowngradeRequest_CANCEL:
		return resp, nil
	case pb.DowngradeRequest_VALIDATE, pb.DowngradeRequest_ENABLE:
	default:
		return nil, errUnknownMethod
	}
	major, minor, ok := downgradeTarget(r.Version)
	if !ok {
		return nil, rpctypes.ErrGRPCWrongDowngradeVersionFormat
	}
	var cmajor, cminor int
	fmt.Sscanf(cluster, "%d.%d", &cmajor, &cminor)
	if major != cmajor || minor != cminor-1 {
		return nil, rpctypes.ErrGRPCInvalidDowngradeTargetVersion
	}
	if r.Action == pb.DowngradeRequest_ENABLE {
		return nil, status.Error(codes.FailedPrecondition, "metastore: downgrading to etcd "+r.Version+" is not supported (MetaStore's storage is not etcd's)")
	}
	return resp, nil
}

// downgradeVersion is a semantic version, or major.minor (etcd accepts
// both and keeps major.minor).
var downgradeVersion = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)?$`)

func downgradeTarget(v string) (major, minor int, ok bool) {
	m := downgradeVersion.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

// errUnknownMethod is etcd's answer to an unknown downgrade action (not an
// rpctypes error: it reaches clients as Unknown).
var errUnknownMethod = errors.New("etcdserver: unknown method")

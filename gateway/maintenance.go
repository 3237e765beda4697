package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
)

// maintenanceServer implements the parts of etcd's Maintenance service that
// exist so far: Status, Alarm, HashKV and Defragment. The rest answer
// Unimplemented until built.
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
	total, inUse := s.g.cfg.DBSize()
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
		DbSizeQuota:      s.g.cfg.QuotaBytes,
		DowngradeInfo:    &pb.DowngradeInfo{},
	}
	if st.Lead == 0 {
		resp.Errors = append(resp.Errors, rpctypes.ErrNoLeader.Error())
	}
	for _, a := range s.g.cfg.Store.Alarms() {
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

// clusterServer implements etcd's Cluster service as far as a single
// member goes: MemberList. Changing membership comes with multi-member
// clusters and answers Unimplemented until then.
type clusterServer struct {
	pb.UnimplementedClusterServer
	g *Gateway
}

func (s *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.Linearizable {
		if err := s.g.linearizableRead(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.g.requireUser(ctx); err != nil {
		return nil, err
	}
	v := s.g.cfg.RaftView.Load()
	return &pb.MemberListResponse{
		Header:  &pb.ResponseHeader{ClusterId: v.ClusterID, MemberId: v.ID, RaftTerm: v.Term},
		Members: s.g.cfg.Members(),
	}, nil
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
	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, err := snap.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	defer func() {
		pr.Close() // unblocks the writer if the client went away
		<-written
		snap.Close()
	}()
	version := storageVersion(s.g.cfg.Version)
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

// storageVersion is the storage version a snapshot reports: the API
// version's major.minor, as etcd reports its schema version ("3.7.0").
func storageVersion(api string) string {
	parts := strings.SplitN(api, ".", 3)
	if len(parts) < 2 {
		return api
	}
	return parts[0] + "." + parts[1] + ".0"
}

package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/transport"
)

// newTransport makes the raft transport: what it receives goes to the raft
// actor through n.raft (dropped until the actor is bound: raft
// retransmits); snapshots are pebble checkpoints.
func (n *Node) newTransport() *transport.Transport {
	return transport.New(transport.Config{
		ID: n.ident.member, ClusterID: n.ident.cluster, Logger: n.lg.Named("transport"),
		Deliver:        func(m *raftpb.Message) { n.raft.Send(&raftactor.Step{Msg: m}) },
		Unreachable:    func(id uint64) { n.raft.Send(&raftactor.ReportUnreachable{ID: id}) },
		SnapshotStatus: func(id uint64, failure bool) { n.raft.Send(&raftactor.ReportSnapshot{ID: id, Failure: failure}) },
		IsRemoved:      func(id uint64) bool { return n.reader.Members().Removed[id] },
		Removed:        func(uint64) { n.markRemoved() },
		Cut:            n.peerCut,
		TLS:            n.tls.peerClient,
		OpenSnapshot:   func(*raftpb.Message) (io.ReadCloser, error) { return n.snapshots.Open() },
		ReceiveSnapshot: func(m *raftpb.Message, data io.Reader) error {
			return receiveSnapshot(n.lg, n.fs, n.snapDir, n.reader.View().Applied, m, data)
		},
	})
}

// peerHandler is what the peer listeners serve: raft's streams and
// snapshots, the leader's lessor and promotion for followers, the
// membership for joining members, hashes for corruption checks, and
// etcd's /version.
func (n *Node) peerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", n.transport.Handler())
	mux.Handle("/leases/", &leaseHandler{root: n.system.Root, lessor: n.leasePID})
	mux.Handle(pathMembers, &membersHandler{clusterID: n.ident.cluster, members: n.reader.Members})
	mux.Handle(pathPromote, &promoteHandler{promote: func(ctx context.Context, id uint64) ([]*pb.Member, error) {
		if gw := n.gateway(); gw != nil {
			return gw.PromoteMember(ctx, id)
		}
		return nil, rpctypes.ErrGRPCNotLeader
	}})
	mux.Handle(pathHashKV, &hashKVHandler{self: n.ident.member, cluster: n.ident.cluster, reader: n.reader})
	mux.HandleFunc(pathVersion, serveVersion)
	return mux
}

// servePeers listens on --listen-peer-urls (with the socket options,
// sockopts.go) and serves peerHandler.
func (n *Node) servePeers() error {
	n.cfg.logSocketOptions(n.lg)
	h := recoverHTTP(n.lg, actors.PanicPeerHTTP, n.peerHandler())
	for _, raw := range n.cfg.ListenPeerURLs {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("listen-peer-urls %q: %w", raw, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("listen-peer-urls %q: URL scheme must be http or https", raw)
		}
		l, err := n.cfg.listenTCP(u.Host)
		if err != nil {
			return fmt.Errorf("listen-peer-urls %q: %w", raw, err)
		}
		if u.Scheme == "https" {
			l = tls.NewListener(l, n.tls.peerServer)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		n.peerServers = append(n.peerServers, srv)
		n.lg.Info("serving peer traffic", zap.String("address", l.Addr().String()))
		n.serveWG.Add(1)
		go func() {
			defer n.serveWG.Done()
			if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
				n.lg.Error("serving peers", zap.Error(err))
			}
		}()
	}
	return nil
}

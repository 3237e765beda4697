// Package node assembles one MetaStore member: the pebble DB, the actor
// system with its guardian, the store and raft actors under it, and the
// gRPC gateway on the client listeners.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/test/bufconn"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/compactor"
	"github.com/metastore/metastore/corruption"
	"github.com/metastore/metastore/gateway"
	"github.com/metastore/metastore/leaseactor"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/transport"
	"github.com/metastore/metastore/watchactor"
)

// APIVersion is the etcd API version MetaStore implements.
const APIVersion = "3.7.3"

// ClusterVersion is the cluster version etcd reports for APIVersion
// (major.minor), and StorageVersion the storage version of snapshots
// (major.minor.0).
var (
	ClusterVersion = strings.Join(strings.SplitN(APIVersion, ".", 3)[:2], ".")
	StorageVersion = ClusterVersion + ".0"
)

// Config is one member's configuration (the etcd flags it honours).
type Config struct {
	Name                     string
	DataDir                  string
	InMemory                 bool // --storage=memory: pebble on an in-memory FS
	ListenClientURLs         []string
	AdvertiseClientURLs      []string
	ListenPeerURLs           []string // none: no peer listener (a lone in-process member)
	InitialAdvertisePeerURLs []string
	InitialCluster           map[string][]string
	InitialClusterToken      string
	InitialClusterState      string
	SnapshotCount            uint64
	SnapshotCatchUpEntries   uint64 // --snapshot-catchup-entries
	// ClientTLS and PeerTLS are the certificates of the client and peer
	// listeners (and of dialing peers); SelfSignedCertValidity is the
	// years auto TLS certificates are valid.
	ClientTLS, PeerTLS TLSFiles
	// PeerSkipClientSANVerify is --peer-skip-client-san-verification: do
	// not check that a peer's certificate names its address.
	PeerSkipClientSANVerify bool
	SelfSignedCertValidity  uint
	StrictReconfigCheck     bool // --strict-reconfig-check
	MaxLearners             int  // --max-learners
	HeartbeatInterval       time.Duration
	ElectionTimeout         time.Duration
	QuotaBackendBytes       int64
	// DefragRateBytes is --defrag-rate-bytes: how fast a defragmentation
	// writes while clients write (0: unpaced; see storeactor.Defragmenter).
	DefragRateBytes int64
	MaxRequestBytes int
	MaxTxnOps       int
	// WatchProgressNotifyInterval is --watch-progress-notify-interval;
	// like etcd, values below 100ms are raised to 100ms.
	WatchProgressNotifyInterval time.Duration
	BcryptCost                  int                  // --bcrypt-cost for password hashes
	AuthTokenTTL                time.Duration        // --auth-token-ttl for simple tokens
	Audit                       *zap.Logger          // the audit log; default: Logger's "audit"
	JWT                         *authactor.JWTTokens // --auth-token=jwt,...; nil: simple tokens
	// InitialCorruptCheck (--feature-gates=InitialCorruptCheck=true): a
	// member with data checks its store's consistency before serving.
	InitialCorruptCheck bool
	// CorruptCheckTime is --corrupt-check-time: how often the leader
	// compares its hash with the followers' (0: never).
	CorruptCheckTime time.Duration
	Logger           *zap.Logger
	Clock            actors.Clock
	// PeerCut is fault injection for in-process tests: raft messages to
	// and from a peer it reports true for are dropped (a partition).
	PeerCut func(peer uint64) bool

	// AutoCompactionMode and AutoCompactionRetention are etcd's flags, as
	// compactor.ParseRetention reads them; retention 0 turns it off.
	AutoCompactionMode      string
	AutoCompactionRetention time.Duration
}

// minLeaseTTL is etcd's smallest lease TTL in seconds: 1.5 election
// timeouts, rounded up.
func minLeaseTTL(electionTicks int, heartbeat time.Duration) int64 {
	d := time.Duration((3*electionTicks)/2) * heartbeat
	return int64(math.Ceil(d.Seconds()))
}

// minWatchProgressInterval is etcd's floor for --watch-progress-notify-interval.
const minWatchProgressInterval = 100 * time.Millisecond

// Node is a running member.
type Node struct {
	cfg         Config
	lg          *zap.Logger
	db          *pebble.DB
	system      *actor.ActorSystem
	guardian    *actor.PID
	grpc        *grpc.Server
	listeners   []net.Listener
	self        *clientv3.Client // in-process client for the Lock and Election services
	selfGRPC    *grpc.Server     // serves it
	raftView    *raftactor.ViewRef
	transport   *transport.Transport
	peerServers []*http.Server
	tls         tlsSetup
	peerClient  *http.Client  // member-to-member requests besides raft's
	grpcTLS     *grpc.Server  // serves the https client listeners
	quit        chan struct{} // closed by Stop
	removed     chan struct{} // closed when this member is removed from the cluster
	removedOnce sync.Once
	ready       chan struct{}
	fatal       chan error
	stopOnce    sync.Once
	serveWG     sync.WaitGroup
}

// Start opens the data, starts the actors and begins serving clients.
func Start(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = actors.RealClock
	}
	lg := cfg.Logger
	initial, self, err := initialMembers(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.InitialAdvertisePeerURLs) > 0 && !sameURLs(cfg.InitialCluster[cfg.Name], cfg.InitialAdvertisePeerURLs) {
		return nil, fmt.Errorf("--initial-cluster has %s=%s but missing from --initial-advertise-peer-urls=%s",
			cfg.Name, strings.Join(cfg.InitialCluster[cfg.Name], ","), strings.Join(cfg.InitialAdvertisePeerURLs, ","))
	}
	tlsCfg, err := setupTLS(cfg)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "member", "pebble")
	if !cfg.InMemory {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	fs := vfs.Default
	if cfg.InMemory {
		fs = vfs.NewMem()
	}
	pacer := storeactor.NewCompactionPacer()
	db, err := storeactor.OpenPebbleFS(pacer.FS(fs), dir)
	if err != nil {
		return nil, fmt.Errorf("open data dir: %w", err)
	}
	n := &Node{cfg: cfg, lg: lg, db: db, ready: make(chan struct{}), quit: make(chan struct{}), removed: make(chan struct{}), fatal: make(chan error, 1),
		tls: tlsCfg, peerClient: &http.Client{Transport: tlsCfg.peerTransport(), Timeout: 5 * time.Second}}
	// A new cluster bootstraps raft with the --initial-cluster members; a
	// member joining an existing one takes its ids from the running
	// members and bootstraps nothing.
	clusterID, bootstrap := ClusterID(memberIDs(initial)), initial
	var remote []*pb.Member
	if cfg.InitialClusterState == "existing" {
		bootstrap = nil
		if has, err := hasIdentity(db); err != nil || !has {
			if err == nil {
				self, clusterID, remote, err = joinIdentity(cfg, n.peerClient, initial)
			}
			if err != nil {
				db.Close()
				return nil, err
			}
		}
	}
	memberID, clusterID, err := loadOrSaveIdentity(db, self, clusterID)
	if err != nil {
		db.Close()
		return nil, err
	}
	lg.Info("starting member", zap.String("name", cfg.Name), zap.String("member-id", fmt.Sprintf("%x", memberID)),
		zap.String("cluster-id", fmt.Sprintf("%x", clusterID)), zap.String("data-dir", cfg.DataDir), zap.Bool("in-memory", cfg.InMemory))

	n.system = actors.NewSystem(lg)
	onFatal := func(err error) {
		select {
		case n.fatal <- err:
		default:
		}
	}
	g := &actors.Guardian{Logger: lg, OnFatal: onFatal}
	n.guardian = n.system.Root.Spawn(actors.GuardianProps(g))

	fail := func(err error) (*Node, error) {
		if n.self != nil {
			n.self.Close()
		}
		for _, srv := range n.peerServers {
			srv.Close()
		}
		if n.transport != nil {
			n.transport.Stop()
		}
		n.shutdownActors()
		db.Close()
		return nil, err
	}
	reader, err := storeactor.NewReader(db)
	if err != nil {
		return fail(err)
	}
	// The initial corruption check, first half: the store agrees with
	// itself (newest-version entries against versions). The second half,
	// against the peers, runs once the peer listener is up.
	initialCheck := cfg.InitialCorruptCheck && reader.View().Applied > 0
	if initialCheck {
		if err := reader.CheckConsistency(); err != nil {
			lg.Error("checkInitialHashKV failed", zap.Error(err))
			return fail(fmt.Errorf("%x found data inconsistency: %w", memberID, err))
		}
	}
	progress := cfg.WatchProgressNotifyInterval
	if progress > 0 && progress < minWatchProgressInterval {
		lg.Warn("adjusting watch progress notify interval to minimum period",
			zap.Duration("min-watch-progress-notify-interval", minWatchProgressInterval))
		progress = minWatchProgressInterval
	}
	watchPID, err := n.spawn("watch", watchactor.New(watchactor.Config{
		Store: reader, Clock: cfg.Clock, Logger: lg.Named("watch"), ProgressInterval: progress,
	}))
	if err != nil {
		return fail(err)
	}

	// The lessor proposes through the raft actor and asks its view, both of
	// which exist only after the store it feeds: it reaches them through
	// these cells, set below before anything can make it primary.
	ids := raftactor.NewIDGen(memberID, cfg.Clock.Now())
	var raftCell atomic.Pointer[actor.PID]
	var raftViewCell atomic.Pointer[raftactor.ViewRef]
	leasePID, err := n.spawn("lease", leaseactor.New(leaseactor.Config{
		Store: reader, Clock: cfg.Clock, Logger: lg.Named("lease"), Extend: cfg.ElectionTimeout,
		Primary: func() bool {
			ref := raftViewCell.Load()
			if ref == nil {
				return false
			}
			v := ref.Load()
			return v != nil && v.Lead == v.ID && reader.View().AppliedTerm == v.Term
		},
		Propose: func(r *pb.InternalRaftRequest) {
			// The member revokes expired leases as root, as etcd does:
			// with auth on, the store checks every request's user.
			r.Header = &pb.RequestHeader{Username: "root", AuthRevision: reader.Auth().Rev}
			id := ids.Next()
			data, err := raftactor.EncodeProposal(id, r)
			if err != nil {
				lg.Error("encode lease proposal", zap.Error(err))
				return
			}
			n.system.Root.Send(raftCell.Load(), &raftactor.Propose{ID: id, Data: data, Req: r})
		},
	}))
	if err != nil {
		return fail(err)
	}
	tokensProps, tokens := authactor.NewSimpleTokens(authactor.TokensConfig{
		TTL: cfg.AuthTokenTTL, Clock: cfg.Clock, Logger: lg.Named("auth"),
	})
	tokensPID, err := n.spawn("tokens", tokensProps)
	if err != nil {
		return fail(err)
	}
	electionTicks := int(cfg.ElectionTimeout / cfg.HeartbeatInterval)
	requestTimeout := n.requestTimeout()
	storePID, err := n.spawn("store", storeactor.New(storeactor.Config{
		DB: db, Logger: lg.Named("store"), Watch: watchPID, Leases: leasePID, Tokens: tokensPID,
		MinLeaseTTL: minLeaseTTL(electionTicks, cfg.HeartbeatInterval), MaxLearners: cfg.MaxLearners,
	}, reader))
	if err != nil {
		return fail(err)
	}
	// The peer transport delivers to the raft actor, which sends through
	// it: it reaches the actor through raftCell, set once it is spawned
	// (messages arriving before are dropped; raft retransmits).
	toRaft := func(m any) {
		if pid := raftCell.Load(); pid != nil {
			n.system.Root.Send(pid, m)
		}
	}
	snapDir := filepath.Join(cfg.DataDir, "member", "snap")
	snapshots := storeactor.NewSnapshotter(db, fs, snapDir)
	n.transport = transport.New(transport.Config{
		ID: memberID, ClusterID: clusterID, Logger: lg.Named("transport"),
		Deliver:        func(m *raftpb.Message) { toRaft(&raftactor.Step{Msg: m}) },
		Unreachable:    func(id uint64) { toRaft(&raftactor.ReportUnreachable{ID: id}) },
		SnapshotStatus: func(id uint64, failure bool) { toRaft(&raftactor.ReportSnapshot{ID: id, Failure: failure}) },
		IsRemoved:      func(id uint64) bool { return reader.Members().Removed[id] },
		Removed:        func(uint64) { n.markRemoved() },
		Cut:            cfg.PeerCut,
		TLS:            tlsCfg.peerClient,
		OpenSnapshot:   func(*raftpb.Message) (io.ReadCloser, error) { return openCheckpoint(snapshots) },
		ReceiveSnapshot: func(m *raftpb.Message, data io.Reader) error {
			meta := m.GetSnapshot().GetMetadata()
			dir := raftactor.ReceivedSnapshotDir(fs, snapDir, meta.GetIndex(), meta.GetTerm())
			_ = fs.RemoveAll(dir)
			return storeactor.ReceiveCheckpoint(fs, dir, data)
		},
	})
	peers := reader.Members().List
	switch {
	case len(peers) > 0:
	case remote != nil:
		peers = remote // joining: the store learns them from the leader's log
	case bootstrap != nil:
		peers = bootstrap // new: the store learns them from the bootstrap entries
	default: // joined, but restarted before learning the membership
		if _, _, ms, err := joinIdentity(cfg, n.peerClient, initial); err == nil {
			peers = ms
		}
	}
	for _, m := range peers {
		if m.ID != memberID {
			n.transport.AddPeer(m.ID, m.PeerURLs)
		}
	}
	raftProps, raftView := raftactor.New(raftactor.Config{
		DB: db, ID: memberID, ClusterID: clusterID, Peers: bootstrapPeers(bootstrap),
		Store: storePID, StoreView: reader.View, Transport: n.transport, Clock: cfg.Clock, Logger: lg.Named("raft"),
		TickInterval: cfg.HeartbeatInterval, ElectionTicks: electionTicks, SnapshotCount: cfg.SnapshotCount, CatchUp: cfg.SnapshotCatchUpEntries,
		SnapshotFS: fs, SnapshotRoot: snapDir,
		OnConfChange: followConfChange(n.transport, memberID, n.markRemoved),
		OnFatal:      onFatal,
	})
	raftPID, err := n.spawn("raft", raftProps)
	if err != nil {
		return fail(err)
	}
	raftCell.Store(raftPID)
	peerMux := http.NewServeMux()
	peerMux.Handle("/leases/", &leaseHandler{root: n.system.Root, lessor: leasePID})
	peerMux.Handle(pathMembers, &membersHandler{clusterID: clusterID, members: reader.Members})
	var gwCell atomic.Pointer[gateway.Gateway] // set once the gateway exists
	peerMux.Handle(pathPromote, &promoteHandler{promote: func(ctx context.Context, id uint64) ([]*pb.Member, error) {
		if gw := gwCell.Load(); gw != nil {
			return gw.PromoteMember(ctx, id)
		}
		return nil, rpctypes.ErrGRPCNotLeader
	}})
	peerMux.Handle("/", n.transport.Handler())
	peerMux.Handle(pathHashKV, &hashKVHandler{self: memberID, cluster: clusterID, reader: reader})
	if err := n.servePeers(peerMux); err != nil {
		return fail(err)
	}
	hashes := corruption.Hashes{Self: memberID, Local: reader.HashKV,
		Peers: func(ctx context.Context, rev int64) []corruption.PeerHash {
			return peerHashes(ctx, n.peerClient, memberID, reader.Members, rev)
		}}
	if initialCheck {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		err := corruption.InitialCheck(ctx, lg, hashes)
		cancel()
		if err != nil {
			return fail(err)
		}
	}
	if cfg.CorruptCheckTime > 0 {
		if _, err := n.spawn("corruption", corruption.New(corruption.Config{
			Hashes: hashes, Interval: cfg.CorruptCheckTime, Timeout: requestTimeout, Clock: cfg.Clock, Logger: lg,
			Leader: func() bool { v := raftView.Load(); return v.Lead == v.ID },
			LinearizableRead: func(ctx context.Context) error {
				rerr, err := actors.Ask(ctx, n.system.Root, raftPID, func(reply chan<- error) any {
					return &raftactor.ReadIndex{Reply: reply}
				})
				if err == nil {
					err = rerr
				}
				return err
			},
			Alarm: func(id uint64) {
				r := &pb.InternalRaftRequest{Header: &pb.RequestHeader{Username: "root", AuthRevision: reader.Auth().Rev},
					Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_CORRUPT}}
				reqID := ids.Next()
				data, err := raftactor.EncodeProposal(reqID, r)
				if err != nil {
					lg.Error("encode alarm", zap.Error(err))
					return
				}
				n.system.Root.Send(raftPID, &raftactor.Propose{ID: reqID, Data: data, Req: r})
			},
		})); err != nil {
			return fail(err)
		}
	}
	raftViewCell.Store(raftView)
	n.raftView = raftView

	if cfg.AutoCompactionRetention != 0 {
		if err := n.spawnCompactor(reader, raftPID, raftView, ids); err != nil {
			return fail(err)
		}
	}

	// An in-process connection for the member's own client (Lock and
	// Election run etcd's recipes through it, as etcd does).
	selfListener := bufconn.Listen(1 << 20)
	n.self, err = clientv3.New(clientv3.Config{
		Endpoints:          []string{"127.0.0.1:0"}, // never dialled: the dialer below is
		MaxCallSendMsgSize: math.MaxInt32,
		Logger:             lg.Named("self-client").WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return selfListener.DialContext(ctx)
		})},
	})
	if err != nil {
		return fail(err)
	}
	leader := newLeaderPeer(memberID, n.peerClient, raftView, reader.Members)
	gw := gateway.New(gateway.Config{
		Root: n.system.Root, Raft: raftPID, RaftView: raftView, Store: reader, Watch: watchPID, Leases: leasePID,
		Tokens: tokens, JWT: cfg.JWT, IDs: ids, Audit: cfg.Audit, Logger: lg.Named("gateway"),
		MaxRequestBytes: cfg.MaxRequestBytes, MaxTxnOps: cfg.MaxTxnOps,
		RequestTimeout: requestTimeout,
		QuotaBytes:     cfg.QuotaBackendBytes, DBSize: n.dbSize, Version: APIVersion,
		ClusterVersion: ClusterVersion, StorageVersion: StorageVersion,
		Snapshots:    snapshots,
		Defragment:   (&storeactor.Defragmenter{DB: db, Pacer: pacer, Rate: cfg.DefragRateBytes}).Defragment,
		Members:      func() []*pb.Member { return reader.Members().List },
		LeaderLeases: leader, LeaderPromote: leader.promoteAtLeader,
		Peers: n.transport, StrictReconfigCheck: cfg.StrictReconfigCheck,
		ClientCertAuth: cfg.ClientTLS.ClientCertAuth,
		Self:           n.self, BcryptCost: cfg.BcryptCost,
	})
	gwCell.Store(gw)
	n.grpc = gw.NewServer()
	if tlsCfg.client != nil {
		n.grpcTLS = gw.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg.client)))
	}
	var secure []bool
	for _, u := range cfg.ListenClientURLs {
		l, tlsOn, err := listen(u, tlsCfg.client != nil)
		if err != nil {
			n.Stop()
			return nil, err
		}
		n.listeners = append(n.listeners, l)
		secure = append(secure, tlsOn)
	}
	n.selfGRPC = gw.NewInProcessServer()
	serve := func(srv *grpc.Server, l net.Listener) {
		n.serveWG.Add(1)
		go func() {
			defer n.serveWG.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				lg.Error("serving clients", zap.Error(err))
			}
		}()
	}
	serve(n.selfGRPC, selfListener)
	for i, l := range n.listeners {
		if secure[i] {
			serve(n.grpcTLS, l)
		} else {
			serve(n.grpc, l)
		}
	}
	go n.waitReady()
	go n.publish(n.system.Root, raftPID, ids, memberID)
	return n, nil
}

func (n *Node) spawn(name string, props *actor.Props) (*actor.PID, error) {
	res, err := actors.Ask(context.Background(), n.system.Root, n.guardian, func(reply chan<- actors.SpawnResult) any {
		return &actors.SpawnChild{Name: name, Props: props, Reply: reply}
	})
	if err != nil {
		return nil, err
	}
	return res.PID, res.Err
}

// spawnCompactor starts etcd's auto-compaction: it proposes Compaction
// requests to the raft actor like a client's Compact, and compacts only
// while this member leads (etcd pauses it on followers).
func (n *Node) spawnCompactor(reader *storeactor.Reader, raftPID *actor.PID, raftView *raftactor.ViewRef, ids *raftactor.IDGen) error {
	props, err := compactor.New(compactor.Config{
		Mode: n.cfg.AutoCompactionMode, Retention: n.cfg.AutoCompactionRetention,
		Clock: n.cfg.Clock, Logger: n.lg, RequestTimeout: n.requestTimeout(),
		Rev: func() int64 { return reader.View().Rev },
		Leader: func() bool {
			v := raftView.Load()
			return v != nil && v.Lead == v.ID
		},
		Propose: func(r *pb.InternalRaftRequest, reply chan<- actors.Result) {
			id := ids.Next()
			data, err := raftactor.EncodeProposal(id, r)
			if err != nil {
				actors.Reply(reply, actors.Result{Err: err})
				return
			}
			n.system.Root.Send(raftPID, &raftactor.Propose{ID: id, Data: data, Req: r, Reply: reply})
		},
	})
	if err != nil {
		return err
	}
	_, err = n.spawn("compactor", props)
	return err
}

// requestTimeout is etcd's: 5 s plus two election timeouts.
func (n *Node) requestTimeout() time.Duration { return 5*time.Second + 2*n.cfg.ElectionTimeout }

// waitReady closes Ready once raft knows a leader: only then can the
// member answer writes and linearizable reads.
func (n *Node) waitReady() {
	for {
		if v := n.raftView.Load(); v.Lead != 0 {
			for _, l := range n.listeners {
				n.lg.Info("ready to serve client requests")
				n.lg.Warn("serving client traffic insecurely; this is strongly discouraged!", zap.String("address", l.Addr().String()))
			}
			close(n.ready)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ready is closed once the member can serve.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// markRemoved stops the member once it learns it was removed from the
// cluster: from its own removal, applied, or from a peer refusing it.
func (n *Node) markRemoved() {
	n.removedOnce.Do(func() {
		n.lg.Warn("the member has been permanently removed from the cluster")
		close(n.removed)
	})
}

// Removed is closed when this member has been removed from the cluster:
// it should stop.
func (n *Node) Removed() <-chan struct{} { return n.removed }

// Fatal delivers an error when a subsystem actor has stopped for good.
func (n *Node) Fatal() <-chan error { return n.fatal }

// Stop stops serving, stops the actors and closes the DB. In-flight
// requests get a moment to finish.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		close(n.quit)
		// Clients first (requests still waiting, such as a blocked Lock,
		// see the connection close), then the member's own client the
		// Lock and Election handlers were using.
		for _, srv := range []*grpc.Server{n.grpc, n.grpcTLS} {
			if srv == nil {
				continue
			}
			done := make(chan struct{})
			go func() { srv.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				srv.Stop()
			}
		}
		if n.self != nil {
			n.self.Close()
		}
		if n.selfGRPC != nil {
			n.selfGRPC.Stop()
		}
		for _, srv := range n.peerServers {
			srv.Close()
		}
		n.serveWG.Wait()
		if n.transport != nil {
			n.transport.Stop()
		}
		n.shutdownActors()
		// Make everything applied durable before closing.
		if err := n.db.Flush(); err != nil {
			n.lg.Warn("flush on stop", zap.Error(err))
		}
		if err := n.db.Close(); err != nil {
			n.lg.Warn("close db", zap.Error(err))
		}
	})
}

func (n *Node) shutdownActors() {
	if n.guardian != nil {
		ch := make(chan struct{}, 1)
		n.system.Root.Send(n.guardian, &actors.StopChildren{Reply: ch})
		select {
		case <-ch:
		case <-time.After(15 * time.Second):
			n.lg.Warn("actors did not stop in time")
		}
		n.system.Root.StopFuture(n.guardian).Wait()
	}
	n.system.Shutdown()
}

// dbSize is the space the member's DB takes on disk.
func (n *Node) dbSize() int64 { return int64(n.db.Metrics().DiskSpaceUsage()) }

// ClientAddrs are the bound client listener addresses (useful with port 0).
func (n *Node) ClientAddrs() []string {
	out := make([]string, len(n.listeners))
	for i, l := range n.listeners {
		out[i] = l.Addr().String()
	}
	return out
}

// listen opens a client listener: https and unixs ones are served with
// TLS (haveCert: certificates are configured, which setupTLS checked).
func listen(raw string, haveCert bool) (net.Listener, bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, false, fmt.Errorf("listen-client-urls %q: %w", raw, err)
	}
	secure := false
	switch u.Scheme {
	case "http", "unix":
	case "https", "unixs":
		secure = haveCert
	default:
		return nil, false, fmt.Errorf("listen-client-urls %q: URL scheme must be http, https, unix or unixs", raw)
	}
	var l net.Listener
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		l, err = net.Listen("unix", u.Host+u.Path)
	} else {
		l, err = net.Listen("tcp", u.Host)
	}
	return l, secure, err
}

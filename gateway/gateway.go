// Package gateway is MetaStore's front door: gRPC handlers that check an
// etcd request the way etcd does, turn it into a mailbox send (or a read on
// the store's published view) and translate the answer back. Handlers stay
// thin; state lives in the actors.
package gateway

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/featuregate"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	lpb "go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/leaseactor"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/watchactor"
)

// grpcOverheadBytes is the slack etcd allows on top of --max-request-bytes
// at the gRPC layer, so that requests slightly over the limit reach the
// server and get etcd's "request is too large" rather than a transport error.
const grpcOverheadBytes = 512 * 1024

// Config wires the gateway to the node's actors.
type Config struct {
	Root     *actor.RootContext
	Raft     *actor.PID
	RaftView *raftactor.ViewRef
	Store    *storeactor.Reader
	Watch    *actor.PID // the watchactor Hub
	Leases   *actor.PID // the leaseactor Lessor
	// Tokens checks simple tokens; JWT, when set (--auth-token=jwt),
	// issues and checks JWTs instead.
	Tokens *authactor.TokenView
	JWT    *authactor.JWTTokens
	// Self is a client of this member, in process: the Lock and Election
	// services run etcd's concurrency recipes through it.
	Self *clientv3.Client
	// WatchStreamBytes and WatchTotalBytes bound the memory of queued watch
	// events, per stream and over all streams. A stream that hits either
	// stops getting live events and catches up from history once drained.
	WatchStreamBytes, WatchTotalBytes int64
	IDs                               *raftactor.IDGen
	Logger                            *zap.Logger
	MaxRequestBytes                   int
	MaxTxnOps                         int
	RequestTimeout                    time.Duration // etcd: 5s + 2 x election timeout
	DBSize                            func() int64  // bytes the store takes on disk
	// Defragment reclaims space while reads and writes go on (a pebble
	// manual compaction; etcd stops the world for it).
	Defragment func(context.Context) error
	// Snapshots makes the copies Maintenance.Snapshot streams.
	Snapshots *storeactor.Snapshotter
	// Members is the cluster's membership.
	Members func() []*pb.Member
	// LeaderLeases reaches the leader's lessor when this member is a
	// follower: only the leader tracks expiry, so keep-alives and TTL
	// queries go there (as etcd forwards them). Nil: a lone member.
	LeaderLeases LeaderLeases
	// LeaderPromote asks the leader to promote a learner (only the leader
	// knows whether it has caught up), as etcd forwards MemberPromote.
	LeaderPromote func(ctx context.Context, id uint64) ([]*pb.Member, error)
	// Peers tells how long the connections to peers have been up (the
	// raft transport), for the reconfiguration checks.
	Peers PeerHealth
	// ClientCertAuth is --client-cert-auth: with auth on, a request
	// without a token is made as the user its verified client
	// certificate's common name names (etcd's AuthInfoFromTLS).
	ClientCertAuth bool
	// StrictReconfigCheck is --strict-reconfig-check: refuse membership
	// changes that could cost the cluster its quorum.
	StrictReconfigCheck bool
	Version             string // etcd API version reported by Status
	// ClusterVersion (major.minor) is what Downgrade reports; StorageVersion
	// (major.minor.0) is what snapshots carry.
	ClusterVersion, StorageVersion string
	BcryptCost                     int // --bcrypt-cost
	// Audit receives the audit log (see audit.go); default: Logger's "audit".
	Audit *zap.Logger
	// ExtensiveMetrics is --metrics=extensive: the client server also
	// times every RPC (grpc_server_handling_seconds), as etcd does.
	ExtensiveMetrics bool
	// WarningUnaryRequestDuration is --warning-unary-request-duration: a
	// unary RPC slower than this logs etcd's "request stats" at warn
	// (reqstats.go). 0: etcd's 300ms.
	WarningUnaryRequestDuration time.Duration
	// FeatureGate is the member's --feature-gates, reported as
	// etcd_server_feature_enabled (nil: etcd's defaults).
	FeatureGate featuregate.FeatureGate
	// MaxRangeBytesInFlight is --max-range-bytes-in-flight: the bytes of
	// Range and read-only Txn responses built and sent at once
	// (rangebudget.go); 0: no bound.
	MaxRangeBytesInFlight int64
}

// LeaderLeases is the leader's lessor as seen from a follower.
type LeaderLeases interface {
	// Renew renews a lease; rpctypes.ErrGRPCLeaseNotFound when unknown.
	Renew(ctx context.Context, id int64) (ttl int64, err error)
	TimeToLive(ctx context.Context, id int64) (leaseactor.TTLResult, error)
}

// Gateway holds what every handler needs.
type Gateway struct {
	cfg         Config
	timeouts    *requestTimeouts // RequestTimeout for proposals and read indexes
	watchBudget *watchactor.Budget
	// bcryptSlots bounds the password hashes and checks computed at once
	// (half the cores): a flood of logins with wrong passwords costs the
	// attacker waiting time, not everyone else's CPU.
	bcryptSlots chan struct{}
	// serverMetrics are the client server's grpc_server_* (NewCollector).
	serverMetrics *grpcprom.ServerMetrics
	// ranges bounds the bytes of Range responses in flight; sends hands
	// their tickets to the codec (rangesend.go).
	ranges *rangeBudget
	sends  *rangeSends
	// maxSendBytes is the largest message the client servers send
	// (etcd's: math.MaxInt32).
	maxSendBytes int64
	// warnUnary is --warning-unary-request-duration now (reqstats.go).
	warnUnary atomic.Int64
}

func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.WatchStreamBytes <= 0 {
		cfg.WatchStreamBytes = 1 << 20
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.WatchTotalBytes <= 0 {
		cfg.WatchTotalBytes = 256 << 20
	}
	if cfg.Audit == nil {
		cfg.Audit = cfg.Logger.Named("audit")
	}
	g := &Gateway{cfg: cfg, timeouts: newRequestTimeouts(cfg.RequestTimeout), watchBudget: watchactor.NewBudget(cfg.WatchStreamBytes, cfg.WatchTotalBytes),
		bcryptSlots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)), serverMetrics: newServerMetrics(cfg.ExtensiveMetrics),
		ranges: newRangeBudget(cfg.MaxRangeBytesInFlight, cfg.Logger), sends: &rangeSends{}, maxSendBytes: math.MaxInt32}
	g.warnUnary.Store(int64(warnUnaryDuration(cfg.WarningUnaryRequestDuration)))
	return g
}

// NewServer builds the gRPC server for clients with every etcd service
// registered: the built ones and Unimplemented answers for the rest. Its
// RPCs are counted in the metrics (NewCollector and the package's).
func (g *Gateway) NewServer(opts ...grpc.ServerOption) *grpc.Server {
	return g.newServer(g.cfg.MaxRequestBytes+grpcOverheadBytes, true, opts...)
}

// NewInProcessServer builds the server for the member's own client
// (Config.Self). Like etcd's in-process client it has no gRPC size limit:
// requests are held to --max-request-bytes when proposed, as any other.
// It serves only the lock and election recipes' calls: a goroutine per
// stream (no workers) is enough there.
//
// Its RPCs are not counted: they are the recipes' steps, not clients'
// requests (etcd's in-process client bypasses its gRPC server too).
func (g *Gateway) NewInProcessServer() *grpc.Server {
	return g.newServer(math.MaxInt32, false, grpc.NumStreamWorkers(0))
}

// NewJSONServer builds the in-process server of the JSON gateway (and the
// console). etcd's gateway dials etcd's client port, so its requests are
// counted in the metrics and logged in request stats as any client's:
// here too (the remote logged is the HTTP client's: reqstats.go), and
// held to the client servers' size limit (--max-request-bytes and gRPC's
// overhead), which refuses larger requests before they are decoded, with
// gRPC's ResourceExhausted, proposed or not.
func (g *Gateway) NewJSONServer() *grpc.Server {
	return g.newServer(g.cfg.MaxRequestBytes+grpcOverheadBytes, true, grpc.NumStreamWorkers(0))
}

// streamWorkers is how many goroutines serve gRPC streams (when all are
// busy, gRPC starts a goroutine per stream as without workers). A request
// goroutine's stack grows two or three times on a range through pebble;
// workers keep their grown stacks, and with a fresh goroutine per request
// (gRPC's default) stack copying took 30 % of the server's CPU in the
// serializable range benchmark. Puts hold their worker until raft commits,
// so with 1000 clients nearly all of them are in flight at any time: 1024
// workers keep them all on workers (256 left three in four puts on fresh
// goroutines, whose stack growth was 7 % of the put profile). Workers keep
// what they grew only if the GC does not shrink their stacks while they
// wait: the Makefile builds the server with stack shrinking off.
//
// The count follows the requests in flight, not the cores: every worker
// holds its grown stack (~16 KiB) for good, and gRPC hands streams to its
// workers over one channel, which serves the idle workers in turn (the
// longest idle first), so even one client's requests go round all of them
// and each grows its stack, on fresh pages, on its own first stream: a
// new member's first requests, up to the number of workers, pay that.
// (1024 per core held 32 MiB of stacks on two cores, and would hold a GiB
// on 64.)
const streamWorkers = 1024

func (g *Gateway) newServer(maxRecv int, instrument bool, extra ...grpc.ServerOption) *grpc.Server {
	// As etcd's chain: the metrics first, so that every RPC is counted,
	// refusals included; client versions next. Panics are recovered
	// (recover.go) under the metrics, which so count a panicked RPC as
	// Internal, and over everything else. Over them all, as etcd's log
	// interceptor, unary RPCs' request stats (reqstats.go).
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	if instrument {
		unary = append(unary, g.withRequestStats(g.serverMetrics.UnaryServerInterceptor()))
		stream = append(stream, g.serverMetrics.StreamServerInterceptor())
	}
	unary = append(unary, recovery.UnaryServerInterceptor(g.recoveryOption()))
	stream = append(stream, recovery.StreamServerInterceptor(g.recoveryOption()))
	var codec encoding.CodecV2 = rangeCodec{CodecV2: encoding.GetCodecV2("proto"), sends: g.sends}
	if instrument {
		unary = append(unary, countUnary)
		stream = append(stream, countStream)
		codec = countingCodec{codec}
	}
	unary = append(unary, learnerUnary(g), g.auditUnary)
	stream = append(stream, learnerStream(g), g.auditStream)
	s := grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.MaxSendMsgSize(int(g.maxSendBytes)),
		grpc.ForceServerCodecV2(codec),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: false}),
		grpc.NumStreamWorkers(streamWorkers),
		// Fixed flow-control windows turn off gRPC's bandwidth-delay
		// estimator, which otherwise keeps one PING (and a connection
		// window update) in flight per connection for as long as requests
		// flow, each answered and timed by both ends. Racing the two
		// (scripts/abrace.sh, 6 rounds of 50k puts) measured 2.4 % less
		// server CPU and 2.8 % less CPU in etcd's benchmark tool per put.
		// 1 MiB per stream carries a --max-request-bytes request in one or
		// two windows; 16 MiB is the estimator's own ceiling.
		grpc.InitialWindowSize(1 << 20),
		grpc.InitialConnWindowSize(16 << 20),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}, extra...)...)
	pb.RegisterKVServer(s, &kvServer{g: g})
	pb.RegisterMaintenanceServer(s, &maintenanceServer{g: g})
	pb.RegisterWatchServer(s, &watchServer{g: g})
	pb.RegisterLeaseServer(s, &leaseServer{g: g})
	pb.RegisterClusterServer(s, &clusterServer{g: g})
	pb.RegisterAuthServer(s, &authServer{g: g})
	lpb.RegisterLockServer(s, &lockServer{g: g})
	epb.RegisterElectionServer(s, &electionServer{g: g})
	if instrument {
		g.serverMetrics.InitializeMetrics(s) // every method's series from the start, as etcd
	}
	return s
}

// header fills a response header as etcd does: ids and term always, the
// store's current revision when the handler left it zero.
func (g *Gateway) header(h *pb.ResponseHeader) {
	v := g.cfg.RaftView.Load()
	h.ClusterId, h.MemberId, h.RaftTerm = v.ClusterID, v.ID, v.Term
	if h.Revision == 0 {
		h.Revision = g.cfg.Store.View().Rev
	}
}

// maxApplyLag is how far the store may fall behind the raft commit index
// before new proposals are refused with "too many requests" (etcd's
// maxGapBetweenApplyAndCommitIndex): explicit backpressure instead of an
// ever-growing queue.
const maxApplyLag = 5000

// propose replicates r through raft and waits for the store's answer.
// etcd_server_request_duration_seconds times it (success: the store
// answered); proposals_failed_total counts those that got no answer.
func (g *Gateway) propose(ctx context.Context, r *pb.InternalRaftRequest) (actors.Result, error) {
	if g.cfg.RaftView.Load().Committed > g.cfg.Store.View().Applied+maxApplyLag {
		return actors.Result{}, rpctypes.ErrGRPCRequestTooManyRequests
	}
	if err := g.proposalHeader(ctx, r); err != nil {
		return actors.Result{}, err
	}
	answered := false // timed from here, as etcd's processInternalRaftRequestOnce
	defer func(typ int, start time.Time) { observeRequest(typ, answered, start) }(storeactor.RequestType(r), time.Now())
	id := g.cfg.IDs.Next()
	data, err := raftactor.EncodeProposal(id, r)
	if err != nil {
		return actors.Result{}, err
	}
	if raftactor.RequestSize(data) > g.cfg.MaxRequestBytes {
		return actors.Result{}, rpctypes.ErrGRPCRequestTooLarge
	}
	res, err := actors.AskWithin(ctx, g.timeouts.after(), g.cfg.Root, g.cfg.Raft, func(reply chan<- actors.Result) any {
		return &raftactor.Propose{ID: id, Data: data, Req: r, Reply: reply}
	})
	if err != nil {
		// The caller gave up: free its waiter (and request) in the raft
		// actor, as etcd frees its wait registry entry on a timeout.
		g.cfg.Root.Send(g.cfg.Raft, &raftactor.CancelProposal{ID: id})
		proposalsFailed.Inc()
		return res, g.ctxErr(ctx, err)
	}
	if errors.Is(res.Err, rpctypes.ErrGRPCNoLeader) || errors.Is(res.Err, rpctypes.ErrGRPCLeaderChanged) {
		proposalsFailed.Inc() // the raft actor refused it
		return res, res.Err
	}
	answered = true
	if res.Err != nil {
		return res, res.Err
	}
	return res, nil
}

// proposeFor proposes r and returns the store's answer, of type T, with its
// header filled: the whole of most write handlers.
func proposeFor[T interface {
	proto.Message
	GetHeader() *pb.ResponseHeader
}](ctx context.Context, g *Gateway, r *pb.InternalRaftRequest) (T, error) {
	var zero T
	res, err := g.propose(ctx, r)
	if err != nil {
		return zero, err
	}
	resp := res.Resp.(T)
	g.header(resp.GetHeader())
	return resp, nil
}

// linearizableRead waits until the local store has applied everything
// committed when the read arrived (raft ReadIndex).
func (g *Gateway) linearizableRead(ctx context.Context) error {
	// The read joins the raft actor's current batch; only a batch's first
	// read sends it a message (raftactor/readbatch.go).
	b, first := g.cfg.RaftView.JoinRead()
	if first {
		g.cfg.Root.Send(g.cfg.Raft, &raftactor.ReadsWaiting{Batch: b})
	}
	select {
	case <-b.Done():
		return b.Err()
	case <-ctx.Done():
		return g.ctxErr(ctx, ctx.Err())
	case <-g.timeouts.after():
		return g.ctxErr(ctx, context.DeadlineExceeded)
	}
}

// waitCompacted waits until physical compaction has reached rev.
func (g *Gateway) waitCompacted(ctx context.Context, rev int64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for g.cfg.Store.View().CompactDone < rev {
		select {
		case <-ctx.Done():
			return g.ctxErr(ctx, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// ctxErr maps a wait that ended on a context: the client's own cancel or
// deadline, or our request timeout.
func (g *Gateway) ctxErr(clientCtx context.Context, err error) error {
	switch {
	case errors.Is(clientCtx.Err(), context.Canceled):
		return rpctypes.ErrGRPCCanceled
	case errors.Is(clientCtx.Err(), context.DeadlineExceeded):
		return rpctypes.ErrGRPCDeadlineExceeded
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCTimeout
	}
	return err
}

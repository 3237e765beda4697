// Package node assembles one MetaStore member: the pebble DB, the actor
// system with its guardian, the store and raft actors under it, the peer
// listeners, and the gRPC and HTTP front doors on the client listeners.
//
// It wires; it does not decide. Start runs one small constructor per
// subsystem, in dependency order (storage.go, subsystems.go, peers.go,
// clients.go); the rules each subsystem follows live in its own package.
package node

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/discovery"
	"github.com/metastore/metastore/gateway"
	"github.com/metastore/metastore/health"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/raftwal"
	"github.com/metastore/metastore/serving"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/transport"
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
	Name                string
	DataDir             string
	InMemory            bool // --storage=memory: pebble on an in-memory FS
	ListenClientURLs    []string
	AdvertiseClientURLs []string
	// ListenClientHTTPURLs (--listen-client-http-urls) serve the HTTP
	// side only; when set, ListenClientURLs serve gRPC only, as etcd.
	ListenClientHTTPURLs []string
	// ListenMetricsURLs (--listen-metrics-urls) serve /metrics, /health,
	// /livez and /readyz only.
	ListenMetricsURLs []string
	// ExtensiveMetrics is --metrics=extensive: gRPC handling-time
	// histograms too.
	ExtensiveMetrics bool
	// FeatureGate is --feature-gates as etcd parses it (reported by
	// etcd_server_feature_enabled); nil: etcd's defaults.
	FeatureGate featuregate.FeatureGate
	// EnablePprof (--enable-pprof) serves /debug/pprof/* on the client
	// HTTP side; EnableGRPCGateway (--enable-grpc-gateway) the JSON
	// gateway /v3/*.
	EnablePprof, EnableGRPCGateway bool
	// EnableConsole (--enable-console) serves the web console under /ui/
	// on the client HTTP side (console.Path).
	EnableConsole bool
	// CORS (--cors) are the origins the client HTTP side answers with CORS
	// headers, HostWhitelist (--host-whitelist) the Host names a plain
	// HTTP request may name (a guard against DNS rebinding); for both,
	// empty or "*" allows any, as etcd.
	CORS, HostWhitelist      map[string]struct{}
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
	// DisablePreVote is --pre-vote=false (etcd's default is on).
	DisablePreVote bool
	// DisableTickAdvance is --initial-election-tick-advance=false (etcd's
	// default is on: see raftactor/tickadvance.go).
	DisableTickAdvance bool
	ElectionTimeout    time.Duration
	QuotaBackendBytes  int64
	// DefragRateBytes is --defrag-rate-bytes: how fast a defragmentation
	// writes while clients write (0: unpaced; see storeactor.Defragmenter).
	DefragRateBytes int64
	MaxRequestBytes int
	MaxTxnOps       int
	// MaxRangeBytesInFlight is --max-range-bytes-in-flight (0: unbounded;
	// see gateway.Config).
	MaxRangeBytesInFlight int64
	// WatchProgressNotifyInterval is --watch-progress-notify-interval.
	WatchProgressNotifyInterval time.Duration
	// WarningUnaryRequestDuration is --warning-unary-request-duration: a
	// unary client RPC slower than this logs etcd's "request stats" at
	// warn (0: etcd's 300ms).
	WarningUnaryRequestDuration time.Duration
	// WarningApplyDuration is --warning-apply-duration (0: etcd's 100ms).
	WarningApplyDuration time.Duration
	BcryptCost           int                  // --bcrypt-cost for password hashes
	AuthTokenTTL         time.Duration        // --auth-token-ttl for simple tokens
	Audit                *zap.Logger          // the audit log; default: Logger's "audit"
	JWT                  *authactor.JWTTokens // --auth-token=jwt,...; nil: simple tokens
	// InitialCorruptCheck (--feature-gates=InitialCorruptCheck=true): a
	// member with data checks its store's consistency before serving.
	InitialCorruptCheck bool
	// LeaseCheckpointInterval is how often the leader checkpoints each
	// lease's remaining TTL through raft (--feature-gates=LeaseCheckpoint=true,
	// every --lease-checkpoint-interval); 0: never, etcd's default.
	LeaseCheckpointInterval time.Duration
	// Memory sizes pebble's memtables and block cache and the store's
	// newest-version cache (storeactor.SizeMemory; zero: its lean sizes).
	Memory storeactor.MemorySizes
	// CorruptCheckTime is --corrupt-check-time: how often the leader
	// compares its hash with the followers' (0: never).
	CorruptCheckTime time.Duration
	Logger           *zap.Logger
	Clock            actors.Clock
	// ForceNewCluster is --force-new-cluster, etcd's disaster recovery: a
	// member with data restarts as the only voter of its cluster (same
	// cluster id, every key, lease and auth record kept), committing the
	// removal of every other member, so a cluster that lost its quorum for
	// good comes back from one survivor and grows again with MemberAdd
	// (raftactor.ForceNewCluster). Ignored by a member without data, as
	// etcd ignores it without a WAL. Remove it once the cluster is
	// recovered: every restart with it removes the other members again.
	ForceNewCluster bool
	// PeerCut is fault injection for in-process tests: raft messages to
	// and from a peer it reports true for are dropped (a partition).
	PeerCut func(peer uint64) bool
	// FS, for tests and embedders, holds the member's files (the pebble
	// DB and snapshot checkpoints, under DataDir) instead of the OS's
	// disk; it wins over InMemory. The fault suites (faults/) give a
	// member a crashable or error-injecting FS this way.
	FS vfs.FS
	// WALDir (--wal-dir) is the directory pebble writes its WAL to — the
	// first durable copy of every raft log entry and store write — so that
	// it can sit on a disk of its own; empty keeps it inside the data dir.
	// The data dir records where its WAL is, and a start that names
	// another WAL dir, or none, is refused (datadir.go).
	WALDir string
	// UnsafeNoFsync (--unsafe-no-fsync) makes every fsync a no-op: pebble's
	// WAL (so the raft log's syncs), its tables, snapshot files and
	// directories. What was written survives a killed process (the OS
	// holds it) but not an OS crash or a power loss. For test clusters.
	UnsafeNoFsync bool

	// AutoCompactionMode and AutoCompactionRetention are etcd's flags, as
	// compactor.ParseRetention reads them; retention 0 turns it off.
	//
	// These, AuthTokenTTL, QuotaBackendBytes, DefragRateBytes,
	// WarningApplyDuration and CorruptCheckTime are the settings at
	// start: Reconfigure changes them while the member runs (Live).
	AutoCompactionMode      string
	AutoCompactionRetention time.Duration

	// MaxConcurrentStreams is --max-concurrent-streams: how many streams
	// (each RPC, each watch stream) one client connection may have open at
	// once, on the client listeners' gRPC servers and their HTTP/2 servers
	// (gRPC over TLS through net/http), as etcd applies it; a client
	// queues the streams beyond it. 0: etcd's default, math.MaxUint32
	// (unlimited).
	MaxConcurrentStreams uint32
	// GRPCKeepAliveMinTime is --grpc-keepalive-min-time (etcd's default
	// 5s): a client pinging more often than this while it has streams open
	// (or at all while it has none) gets GOAWAY "too_many_pings". 0: no
	// policy of etcd's, gRPC's own (5 minutes), as etcd.
	GRPCKeepAliveMinTime time.Duration
	// GRPCKeepAliveInterval and GRPCKeepAliveTimeout are
	// --grpc-keepalive-interval (etcd's default 2h) and
	// --grpc-keepalive-timeout (20s): the server pings an idle client
	// connection after the interval and closes it when no answer comes
	// within the timeout. Either 0: gRPC's defaults (which are etcd's), as
	// etcd.
	GRPCKeepAliveInterval, GRPCKeepAliveTimeout time.Duration
	// SocketReusePort and SocketReuseAddress are --socket-reuse-port and
	// --socket-reuse-address: SO_REUSEPORT / SO_REUSEADDR on the client,
	// peer and metrics TCP listeners, as etcd sets them. With reuse-port a
	// second process (a new member binary, during a restart) can bind the
	// ports while the old one still holds them. Go already sets
	// SO_REUSEADDR on every TCP listener on Linux and the BSDs.
	SocketReusePort, SocketReuseAddress bool
	// Discovery (--discovery-token, --discovery-endpoints and the other
	// --discovery-* flags; nil: none) gives a member without raft state
	// its initial cluster, and the token that salts the ids, in place of
	// InitialCluster and InitialClusterToken.
	Discovery *discovery.Config
}

// RequestTimeout is etcd's: 5 s plus two election timeouts.
func (cfg *Config) RequestTimeout() time.Duration { return 5*time.Second + 2*cfg.ElectionTimeout }

// electionTicks is the election timeout in heartbeats (raft ticks).
func (cfg *Config) electionTicks() int { return int(cfg.ElectionTimeout / cfg.HeartbeatInterval) }

// Node is a running member.
type Node struct {
	cfg Config
	lg  *zap.Logger
	tls tlsSetup

	// storage.go
	db        *pebble.DB
	wal       *raftwal.WAL // the raft log's
	failedDB  atomic.Bool  // pebble met a failure it cannot go on from (storageFailed)
	fs        vfs.FS
	layout    dataDirLayout
	defrag    *storeactor.Defragmenter // paced by the compaction pacer pebble's files go through
	snapDir   string
	snapshots *storeactor.Snapshotter
	ident     identity

	// subsystems.go
	system     *actor.ActorSystem
	supervisor *actors.Guardian // the guardian's state: restarts and mailboxes, for metrics
	guardian   *actor.PID
	reader     *storeactor.Reader
	ids        *raftactor.IDGen
	raft       *raftactor.Handle
	raftView   *raftactor.ViewRef
	watchPID   *actor.PID
	leasePID   *actor.PID
	tokens     *authactor.TokenView
	tokensPID  *actor.PID
	storePID   *actor.PID
	// the periodic actors startChecks spawns, on or off (reconfigure.go)
	compactorPID, corruptionPID *actor.PID
	// initialCheck: --feature-gates=InitialCorruptCheck on a member with
	// data; its first half ran in startStore, its second waits for peers.
	initialCheck bool

	// peers.go
	transport   *transport.Transport
	peerClient  *http.Client // member-to-member requests besides raft's
	peerServers []*http.Server

	// clients.go
	gw         atomic.Pointer[gateway.Gateway]
	dialSelf   grpc.DialOption  // the in-process connection to selfGRPC
	self       *clientv3.Client // in-process client for the Lock and Election services
	selfGRPC   *grpc.Server     // serves it
	dialJSON   grpc.DialOption  // the in-process connection to jsonGRPC
	jsonGRPC   *grpc.Server     // serves the JSON gateway and the console
	grpc       *grpc.Server     // plain client listeners
	grpcTLS    *grpc.Server     // TLS client listeners
	clients    []clientListener
	servers    *serving.Servers
	registry   *prometheus.Registry
	grpcHealth *health.GRPCStatus
	stopJSON   context.CancelFunc

	// reconfigure.go: the settings that can change while it runs, as it
	// runs with them now.
	liveMu sync.Mutex
	live   Live

	quit        chan struct{} // closed by Stop
	removed     chan struct{} // closed when this member is removed from the cluster
	removedOnce sync.Once
	ready       chan struct{}
	fatal       chan error
	stopOnce    sync.Once
	serveWG     sync.WaitGroup
}

// Start opens the data, starts the actors and begins serving peers and
// clients.
func Start(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = actors.RealClock
	}
	n := &Node{cfg: cfg, lg: cfg.Logger, ready: make(chan struct{}), quit: make(chan struct{}),
		removed: make(chan struct{}), fatal: make(chan error, 1), live: liveOf(cfg)}
	for _, step := range []func() error{
		n.checkConfig,     // what etcd refuses before touching the data dir
		n.checkDataDir,    // an etcd data dir, a newer format, a WAL dir other than the recorded one
		n.setupTLS,        // certificates (auto TLS writes them under the data dir)
		n.openStorage,     // pebble and the snapshot directory
		n.loadIdentity,    // member and cluster ids: saved, --initial-cluster, or a running member's
		n.startSupervisor, // the actor system and the guardian every subsystem runs under
		n.startStore,      // store reader, watch hub, lessor, tokens, store actor
		n.startRaft,       // peer transport and the raft actor
		n.servePeers,      // peer HTTP: raft streams, leases, members, hashes, /version
		n.startChecks,     // corruption checks and auto-compaction
		n.startGateway,    // gRPC handlers and servers, gRPC health, the metrics registry
		n.serveClients,    // gRPC and HTTP on the client, client-HTTP and metrics listeners
	} {
		if err := step(); err != nil {
			n.Stop()
			return nil, err
		}
	}
	go n.waitReady()
	go n.publish()
	return n, nil
}

// checkConfig refuses, as etcd does, an --initial-cluster entry for this
// member that differs from --initial-advertise-peer-urls (with discovery,
// the service gives the initial cluster).
func (n *Node) checkConfig() error {
	if n.cfg.Discovery == nil && len(n.cfg.InitialAdvertisePeerURLs) > 0 && !sameURLs(n.cfg.InitialCluster[n.cfg.Name], n.cfg.InitialAdvertisePeerURLs) {
		return fmt.Errorf("--initial-cluster has %s=%s but missing from --initial-advertise-peer-urls=%s",
			n.cfg.Name, strings.Join(n.cfg.InitialCluster[n.cfg.Name], ","), strings.Join(n.cfg.InitialAdvertisePeerURLs, ","))
	}
	return nil
}

// setupTLS loads (or, with auto TLS, makes) the certificates, and the
// HTTP client members use to reach each other.
func (n *Node) setupTLS() (err error) {
	n.tls, err = setupTLS(n.cfg)
	n.peerClient = &http.Client{Transport: n.tls.peerTransport(), Timeout: 5 * time.Second}
	return err
}

// waitReady closes Ready once raft knows a leader: only then can the
// member answer writes and linearizable reads.
func (n *Node) waitReady() {
	for {
		if v := n.raftView.Load(); v.Lead != 0 {
			for _, c := range n.clients {
				if !c.metricsOnly {
					n.lg.Info("ready to serve client requests")
					c.logServing(n.lg)
				}
			}
			close(n.ready)
			return
		}
		select {
		case <-n.quit:
			return
		case <-time.After(5 * time.Millisecond):
		}
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

// onFatal reports a subsystem that stopped for good (the first one).
func (n *Node) onFatal(err error) {
	select {
	case n.fatal <- err:
	default:
	}
}

// Stop stops serving, stops the actors and closes the DB. In-flight
// requests get a moment to finish. It also undoes a Start that failed
// part way: each part is stopped only if it was started.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		close(n.quit)
		// Clients first (requests still waiting, such as a blocked Lock,
		// see the connection close), then the member's own client the
		// Lock and Election handlers were using.
		if n.grpcHealth != nil {
			n.grpcHealth.Stop()
		}
		if n.servers != nil {
			n.servers.Stop()
		}
		if n.stopJSON != nil {
			n.stopJSON()
		}
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
		for _, srv := range []*grpc.Server{n.selfGRPC, n.jsonGRPC} {
			if srv != nil {
				srv.Stop()
			}
		}
		if n.servers != nil {
			n.servers.Wait()
		}
		// With clients gone and peers still connected, a leader hands
		// leadership on (as etcd's graceful stop), so the cluster does not
		// wait out an election timeout for this member's absence.
		n.handOffLeadership()
		for _, srv := range n.peerServers {
			srv.Close()
		}
		n.serveWG.Wait()
		if n.transport != nil {
			n.transport.Stop()
		}
		n.shutdownActors()
		if n.db == nil {
			return
		}
		n.flushOnStop()
		if err := n.db.Close(); err != nil {
			n.lg.Warn("close db", zap.Error(err))
		}
		if n.wal != nil {
			if err := n.wal.Close(); err != nil {
				n.lg.Warn("close raft log", zap.Error(err))
			}
		}
	})
}

// handOffLeadership transfers leadership away from this member if it
// leads, logging as etcd does.
func (n *Node) handOffLeadership() {
	if n.raft == nil {
		return
	}
	// etcd waits up to its request timeout; raft itself abandons a
	// transfer not done within an election timeout, so waiting longer
	// than two only delays the stop (e.g. when the transferee was just
	// stopped too and its connection not yet seen closed).
	ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ElectionTimeout)
	defer cancel()
	start := time.Now()
	id := fmt.Sprintf("%x", n.ident.member)
	var connected func(uint64) bool
	if n.transport != nil {
		connected = func(id uint64) bool { return !n.transport.ActiveSince(id).IsZero() }
	}
	target, skipped, err := n.raft.HandOffLeadership(ctx, connected)
	switch {
	case err != nil:
		n.lg.Warn("leadership transfer failed", zap.String("local-member-id", id), zap.Error(err))
	case skipped != "":
		n.lg.Info(skipped, zap.String("local-member-id", id))
	default:
		n.lg.Info("leadership transfer finished", zap.String("local-member-id", id),
			zap.String("old-leader-member-id", id), zap.String("new-leader-member-id", fmt.Sprintf("%x", target)),
			zap.Duration("took", time.Since(start)))
	}
}

func (n *Node) shutdownActors() {
	if n.system == nil {
		return
	}
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

// ClientAddrs are the bound client listener addresses (useful with port 0).
func (n *Node) ClientAddrs() []string {
	var out []string
	for _, c := range n.clients {
		if c.traffic != serving.HTTPOnly && !c.metricsOnly {
			out = append(out, c.l.Addr().String())
		}
	}
	return out
}

// members is the membership the store last applied.
func (n *Node) members() []*pb.Member { return n.reader.Members().List }

package node

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/authactor"
	"github.com/metastore/metastore/compactor"
	"github.com/metastore/metastore/corruption"
	"github.com/metastore/metastore/leaseactor"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/watchactor"
)

// startSupervisor starts the actor system and the guardian: every
// subsystem actor is its child, restarted on a panic; one that keeps
// failing stops the member (Fatal).
func (n *Node) startSupervisor() error {
	n.system = actors.NewSystem(n.lg)
	n.supervisor = &actors.Guardian{Logger: n.lg, OnFatal: n.onFatal}
	n.guardian = n.system.Root.Spawn(actors.GuardianProps(n.supervisor))
	n.ids = raftactor.NewIDGen(n.ident.member, n.cfg.Clock.Now())
	n.raft = raftactor.NewHandle(n.system.Root, n.ids)
	return nil
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

// startStore starts the store and what it feeds: the watch hub, the lessor
// and the simple-token table, then the store actor itself.
func (n *Node) startStore() (err error) {
	if n.reader, err = storeactor.NewReader(n.db); err != nil {
		return err
	}
	n.reader.SetLogger(n.lg.Named("store"), n.cfg.Clock)
	// The initial corruption check, first half: the store agrees with
	// itself (newest-version entries against versions). The second half,
	// against the peers, runs once the peer listener is up.
	n.initialCheck = n.cfg.InitialCorruptCheck && n.reader.View().Applied > 0
	if n.initialCheck {
		if err := n.reader.CheckConsistency(); err != nil {
			n.lg.Error("checkInitialHashKV failed", zap.Error(err))
			return fmt.Errorf("%x found data inconsistency: %w", n.ident.member, err)
		}
	}
	if n.watchPID, err = n.spawn("watch", watchactor.New(watchactor.Config{
		Store: n.reader, Clock: n.cfg.Clock, Logger: n.lg.Named("watch"), ProgressInterval: n.cfg.WatchProgressNotifyInterval,
	})); err != nil {
		return err
	}
	// The lessor is primary only once the raft actor, bound to n.raft in
	// startRaft, publishes a view that says so; it confirms leadership for
	// keep-alives through the raft actor's batched ReadIndex, and hears of
	// leader changes from it (OnLeaderChange).
	if n.leasePID, err = n.spawn("lease", leaseactor.New(leaseactor.Config{
		ID: n.ident.member, Store: n.reader, Clock: n.cfg.Clock, Logger: n.lg.Named("lease"), Extend: n.cfg.ElectionTimeout,
		Primary: func() (uint64, bool) {
			v := n.raft.View()
			if v == nil {
				return 0, false
			}
			return v.Term, v.LeadsApplied(n.reader.View().AppliedTerm)
		},
		ReadIndex: func(reply chan<- error) { n.raft.Send(&raftactor.ReadIndex{Reply: reply}) },
		Propose: func(r *pb.InternalRaftRequest, reply chan<- actors.Result) {
			r.Header = n.reader.RootHeader()
			n.raft.Propose(r, reply)
		},
		CheckpointInterval: n.cfg.LeaseCheckpointInterval,
	})); err != nil {
		return err
	}
	tokensProps, tokens := authactor.NewSimpleTokens(authactor.TokensConfig{
		TTL: n.cfg.AuthTokenTTL, Clock: n.cfg.Clock, Logger: n.lg.Named("auth"),
	})
	n.tokens = tokens
	if n.tokensPID, err = n.spawn("tokens", tokensProps); err != nil {
		return err
	}
	n.storePID, err = n.spawn("store", storeactor.New(storeactor.Config{
		DB: n.db, Logger: n.lg.Named("store"), Watch: n.watchPID, Leases: n.leasePID, Tokens: n.tokensPID,
		MinLeaseTTL: leaseactor.MinTTL(n.cfg.electionTicks(), n.cfg.HeartbeatInterval), MaxLearners: n.cfg.MaxLearners,
		Raft: n.raft, WarnApplyDuration: n.cfg.WarningApplyDuration, QuotaBytes: n.cfg.QuotaBackendBytes,
		LatestHalf: n.cfg.Memory.LatestHalf, KeyFilter: n.cfg.Memory.KeyFilter,
		CountMirror: n.cfg.Memory.CountMirror,
	}, n.reader))
	return err
}

// startRaft starts the peer transport and the raft actor over the store
// (with --force-new-cluster, on the log raftactor.ForceNewCluster
// rewrote first).
func (n *Node) startRaft() error {
	if n.cfg.ForceNewCluster {
		if err := raftactor.ForceNewCluster(n.db, n.wal, n.ident.member, n.ident.cluster, n.reader.View().Applied, n.lg.Named("raft")); err != nil {
			return err
		}
	}
	n.transport = n.newTransport()
	for _, m := range n.startPeers() {
		if m.ID != n.ident.member {
			n.transport.AddPeer(m.ID, m.PeerURLs)
		}
	}
	props, view := raftactor.New(raftactor.Config{
		DB: n.db, WAL: n.wal, ID: n.ident.member, ClusterID: n.ident.cluster, Peers: bootstrapPeers(n.ident.bootstrap),
		Store: n.storePID, StoreView: n.reader.View, Transport: n.transport, Clock: n.cfg.Clock, Logger: n.lg.Named("raft"),
		TickInterval: n.cfg.HeartbeatInterval, ElectionTicks: n.cfg.electionTicks(), DisablePreVote: n.cfg.DisablePreVote,
		ActivePeers: n.transport.ActivePeers, DisableTickAdvance: n.cfg.DisableTickAdvance,
		SnapshotCount: n.cfg.SnapshotCount, CatchUp: n.cfg.SnapshotCatchUpEntries, LogBytes: n.cfg.Memory.RaftLog,
		SnapshotFS: n.fs, SnapshotRoot: n.snapDir,
		OnConfChange: followConfChange(n.transport, n.ident.member, n.markRemoved),
		OnLeaderChange: func(lead, term uint64, campaigning bool) {
			n.system.Root.Send(n.leasePID, &leaseactor.LeaderChanged{Lead: lead, Term: term, Campaigning: campaigning})
		},
		OnFatal: n.raftFailed,
	})
	n.raftView = view
	pid, err := n.spawn("raft", props)
	if err != nil {
		return err
	}
	n.raft.Bind(pid, view)
	return nil
}

// startChecks runs the initial corruption check against the peers (its
// first half ran in startStore), then starts the periodic corruption
// checker and auto-compaction: idle when their flags turn them off, so
// that Reconfigure can turn them on.
func (n *Node) startChecks() error {
	hashes := corruption.Hashes{Self: n.ident.member, Local: n.reader.HashKV,
		Peers: func(ctx context.Context, rev int64) []corruption.PeerHash {
			return peerHashes(ctx, n.peerClient, n.ident.member, n.reader.Members, rev)
		}}
	timeout := n.cfg.RequestTimeout()
	if n.initialCheck {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := corruption.InitialCheck(ctx, n.lg, hashes)
		cancel()
		if err != nil {
			return err
		}
	}
	leads := func() bool { return n.raft.View().Leads() }
	var err error
	if n.corruptionPID, err = n.spawn("corruption", corruption.New(corruption.Config{
		Hashes: hashes, Interval: n.cfg.CorruptCheckTime, Timeout: timeout, Clock: n.cfg.Clock, Logger: n.lg,
		Leader: leads, LinearizableRead: n.raft.ReadIndex,
		Alarm: func(id uint64) {
			n.raft.Propose(&pb.InternalRaftRequest{Header: n.reader.RootHeader(),
				Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_CORRUPT}}, nil)
		},
	})); err != nil {
		return err
	}
	// etcd's auto-compaction: Compaction requests proposed like a
	// client's Compact, only while this member leads (etcd pauses it on
	// followers).
	props, err := compactor.New(compactor.Config{
		Mode: n.cfg.AutoCompactionMode, Retention: n.cfg.AutoCompactionRetention,
		Clock: n.cfg.Clock, Logger: n.lg, RequestTimeout: timeout,
		Rev:     func() int64 { return n.reader.View().Rev },
		Leader:  leads,
		Propose: n.raft.Propose,
	})
	if err != nil {
		return err
	}
	n.compactorPID, err = n.spawn("compactor", props)
	return err
}

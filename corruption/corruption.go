// Package corruption detects members whose data disagree, as etcd does:
// members that applied the same log must hash their key-value history
// alike (storeactor.Reader.HashKV).
//
//   - InitialCheck (feature gate InitialCorruptCheck): before a member
//     with data serves, it compares its hash with each reachable peer's at
//     the same revision; a different hash under the same compaction point
//     stops it ("found data inconsistency with peers").
//   - Checker (--corrupt-check-time): the leader, every interval, hashes
//     its store, asks the peers for theirs at that revision, and raises
//     the CORRUPT alarm (through raft, so every member refuses what etcd
//     refuses under it) for a member whose hash differs under the same
//     compaction point or that is ahead of the leader.
//
// Peers unreachable, behind (future revision) or compacted past the
// revision are skipped, as etcd skips them.
package corruption

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// PeerHash is a peer's answer to a hash request: Resp, or Err.
type PeerHash struct {
	ID   uint64
	Resp *pb.HashKVResponse
	Err  error
}

// Hashes is how a member reaches the hashes it compares.
type Hashes struct {
	Self uint64
	// Local hashes this member's store at rev (0: current).
	Local func(rev int64) (storeactor.KVHash, error)
	// Peers asks every other member for its hash at rev.
	Peers func(ctx context.Context, rev int64) []PeerHash
}

// InitialCheck is etcd's initial corruption check.
func InitialCheck(ctx context.Context, lg *zap.Logger, h Hashes) error {
	lg.Info("starting initial corruption check", zap.String("local-member-id", fmt.Sprintf("%x", h.Self)))
	local, err := h.Local(0)
	if err != nil {
		return fmt.Errorf("%x failed to fetch hash (%w)", h.Self, err)
	}
	mismatch := 0
	for _, p := range h.Peers(ctx, local.Revision) {
		fields := []zap.Field{
			zap.String("local-member-id", fmt.Sprintf("%x", h.Self)),
			zap.Int64("local-member-revision", local.Revision),
			zap.Int64("local-member-compact-revision", local.CompactRevision),
			zap.Uint32("local-member-hash", local.Hash),
			zap.String("remote-peer-id", fmt.Sprintf("%x", p.ID)),
		}
		switch {
		case p.Resp != nil && p.Resp.Hash != local.Hash && p.Resp.CompactRevision == local.CompactRevision:
			lg.Warn("found different hash values from remote peer", append(fields, zap.Uint32("remote-peer-hash", p.Resp.Hash))...)
			mismatch++
		case p.Resp != nil && p.Resp.Hash != local.Hash:
			lg.Warn("found different compact revision values from remote peer", append(fields, zap.Int64("remote-peer-compact-revision", p.Resp.CompactRevision))...)
		case errors.Is(p.Err, rpctypes.ErrGRPCFutureRev):
			lg.Warn("cannot fetch hash from slow remote peer", append(fields, zap.Error(p.Err))...)
		case errors.Is(p.Err, rpctypes.ErrGRPCCompacted):
			lg.Warn("cannot fetch hash from remote peer; local member is behind", append(fields, zap.Error(p.Err))...)
		case p.Err != nil:
			lg.Warn("cannot fetch hash from remote peer", append(fields, zap.Error(p.Err))...)
		}
	}
	if mismatch > 0 {
		return fmt.Errorf("%x found data inconsistency with peers", h.Self)
	}
	lg.Info("initial corruption checking passed; no corruption", zap.String("local-member-id", fmt.Sprintf("%x", h.Self)))
	return nil
}

// corrupted is etcd's PeriodicCheck decision: first is the leader's hash
// before asking the peers, second after a linearizable read; it returns
// the member to raise the alarm for (0: none) — the first found, as etcd
// raises one alarm per check.
func corrupted(lg *zap.Logger, self uint64, first, second storeactor.KVHash, peers []PeerHash) uint64 {
	if second.Hash != first.Hash && second.Revision == first.Revision && second.CompactRevision == first.CompactRevision {
		lg.Warn("found hash mismatch", zap.Int64("revision-1", first.Revision), zap.Uint32("hash-1", first.Hash),
			zap.Int64("revision-2", second.Revision), zap.Uint32("hash-2", second.Hash))
		return self
	}
	for _, p := range peers {
		if p.Resp == nil {
			continue
		}
		id := fmt.Sprintf("%x", p.ID)
		switch {
		case p.Resp.Header.GetRevision() > second.CurrentRevision:
			lg.Warn("revision from follower must be less than or equal to leader's",
				zap.Int64("leader-revision", second.CurrentRevision), zap.Int64("follower-revision", p.Resp.Header.GetRevision()), zap.String("follower-peer-id", id))
		case p.Resp.CompactRevision > second.CompactRevision:
			lg.Warn("compact revision from follower must be less than or equal to leader's",
				zap.Int64("leader-compact-revision", second.CompactRevision), zap.Int64("follower-compact-revision", p.Resp.CompactRevision), zap.String("follower-peer-id", id))
		case p.Resp.CompactRevision == first.CompactRevision && p.Resp.Hash != first.Hash:
			lg.Warn("same compact revision then hashes must match",
				zap.Uint32("leader-hash", first.Hash), zap.Uint32("follower-hash", p.Resp.Hash), zap.String("follower-peer-id", id))
		default:
			continue
		}
		return p.ID
	}
	return 0
}

// Config is what a Checker needs.
type Config struct {
	Hashes
	Interval time.Duration // --corrupt-check-time at start (0: off); SetInterval changes it
	Timeout  time.Duration // per check (etcd: the request timeout)
	// Leader reports whether this member leads: only the leader checks.
	Leader func() bool
	// LinearizableRead waits until this member has applied everything
	// committed now.
	LinearizableRead func(ctx context.Context) error
	// Alarm raises CORRUPT for a member (a proposal through raft).
	Alarm  func(id uint64)
	Clock  actors.Clock
	Logger *zap.Logger
}

// Checker is the periodic check's actor: a tick starts a check on its own
// goroutine (it waits on peers), whose end comes back as a message; ticks
// during a check are dropped. That goroutine is outside the actor's
// supervision: a panic there is recovered, logged and counted
// (metastore_recovered_panics_total{where="corruption"}), and ends the
// check like any failure, so the next tick checks again. With an
// interval of 0 it ticks never, until a SetInterval (interval.go).
type Checker struct {
	cfg      Config
	interval *atomic.Int64 // the interval now (0: off); outlives restarts
	stop     func()        // stops the ticks; nil while off
	running  bool
}

type tick struct{}

type checked struct{}

// New returns the Checker's props.
func New(cfg Config) *actor.Props {
	if cfg.Clock == nil {
		cfg.Clock = actors.RealClock
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	interval := new(atomic.Int64)
	interval.Store(int64(cfg.Interval))
	return actor.PropsFromProducer(func() actor.Actor { return &Checker{cfg: cfg, interval: interval} }, actors.KeepStopped())
}

func (c *Checker) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.startTicks(ctx)
	case *actor.Stopping, *actor.Restarting:
		c.stopTicks()
	case *SetInterval:
		actors.Reply(m.Reply, c.setInterval(ctx, m))
	case tick:
		if c.running || !c.cfg.Leader() {
			return
		}
		c.running = true
		self, root := ctx.Self(), ctx.ActorSystem().Root
		go func() {
			defer root.Send(self, checked{})
			defer actors.Recover(c.cfg.Logger, actors.PanicCorruption)
			if err := c.check(); err != nil {
				c.cfg.Logger.Warn("failed to check hash KV", zap.Error(err))
			}
		}()
	case checked:
		c.running = false
	}
}

// check is etcd's PeriodicCheck.
func (c *Checker) check() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	first, err := c.cfg.Local(0)
	if err != nil {
		return err
	}
	peers := c.cfg.Peers(ctx, first.Revision)
	if err := c.cfg.LinearizableRead(ctx); err != nil {
		return err
	}
	second, err := c.cfg.Local(0)
	if err != nil {
		return err
	}
	if id := corrupted(c.cfg.Logger, c.cfg.Self, first, second, peers); id != 0 {
		c.cfg.Alarm(id)
	}
	checkedPeers := 0
	for _, p := range peers {
		if p.Resp != nil {
			checkedPeers++
		}
	}
	c.cfg.Logger.Info("finished peer corruption check", zap.Int("number-of-peers-checked", checkedPeers))
	return nil
}

// Package compactor is etcd's auto-compaction (--auto-compaction-mode,
// --auto-compaction-retention) as an actor: it watches the store's current
// revision and, on its own schedule, proposes a Compaction through raft,
// exactly as a client's Compact would, so every member applies the same
// compaction at the same log position.
//
// Two modes, as etcd v3.7:
//
//   - periodic: keep the history of the last Retention of wall time. The
//     current revision is sampled every min(Retention, 1h)/10 into a
//     sliding window of Retention/interval+1 samples, whose oldest is "the
//     revision Retention ago". No compaction during the first Retention;
//     after that one at most every min(Retention, 1h), at the window's
//     oldest sample, unless that revision was already compacted by us.
//   - revision: every 5 minutes, compact at current revision − Retention
//     (when positive and not the revision compacted last time).
//
// A compaction that fails is tried again at the next check; one answered
// "required revision has been compacted" counts as done (someone else got
// there first). Only the raft leader compacts (etcd pauses its compactor
// on followers); a paused periodic compactor keeps sampling.
//
// A retention of 0 turns it off: the actor then waits, idle, for a
// SetPolicy (policy.go) that turns it on, changes it, or off again.
//
// The actor has no goroutines of its own beyond the injected Clock's
// callbacks and one short-lived waiter per proposal, both of which only
// Send it a message; all state is touched in Receive. Nothing is durable:
// after a restart (of the actor or the process) it starts sampling afresh,
// as etcd does after a restart, so it never compacts more than asked.
package compactor

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
)

// The values of --auto-compaction-mode.
const (
	ModePeriodic = "periodic"
	ModeRevision = "revision"
)

// RevisionInterval is how often revision mode checks (etcd's revInterval).
const RevisionInterval = 5 * time.Minute

// Periodic-mode constants, as etcd: the window is sampled retryDivisor
// times per retention (capped at an hour), and compactions are at least
// maxCompactInterval apart once the first retention has passed.
const (
	retryDivisor       = 10
	maxCompactInterval = time.Hour
	// minSampleInterval floors the sampling interval. etcd has no floor: a
	// retention under 10ns divides by zero there, and a negative one spins.
	minSampleInterval = time.Millisecond
)

// Config is what a Compactor needs.
type Config struct {
	// Mode is ModePeriodic or ModeRevision ("" too when Retention is 0).
	Mode string
	// Retention is, as in etcd's server config, a time.Duration either way:
	// the time to keep in periodic mode, the number of revisions to keep
	// (as a plain integer) in revision mode; 0: off. See ParseRetention.
	// Mode and Retention are the policy at start; SetPolicy changes it.
	Retention time.Duration
	// Rev is the store's current revision.
	Rev func() int64
	// Leader reports whether this member leads raft; when false the
	// compactor is paused. Nil means always.
	Leader func() bool
	// Propose sends the request through raft; reply gets the applied
	// result (or a proposal error) once. It must not block.
	Propose func(r *pb.InternalRaftRequest, reply chan<- actors.Result)
	Clock   actors.Clock
	Logger  *zap.Logger
	// RequestTimeout bounds the wait for a proposal's result, after which
	// it counts as failed (etcd's request timeout: 5s + 2 election
	// timeouts). Default 7s.
	RequestTimeout time.Duration
	// RevisionInterval overrides RevisionInterval (tests).
	RevisionInterval time.Duration
}

// ValidateMode checks --auto-compaction-mode as etcd's config validation
// does (whatever the retention, even 0).
func ValidateMode(mode string) error {
	switch mode {
	case ModePeriodic, ModeRevision:
		return nil
	case "":
		return errors.New("undefined auto-compaction-mode")
	default:
		return fmt.Errorf("unknown auto-compaction-mode %q", mode)
	}
}

// ParseRetention reads --auto-compaction-retention as etcd does: "" is
// "0" (off); a non-negative integer is hours in periodic mode and
// revisions in revision mode; anything else must be a Go duration ("5m",
// "2s"), taken as is in either mode.
func ParseRetention(mode, retention string) (time.Duration, error) {
	if retention == "" {
		retention = "0"
	}
	if n, err := strconv.Atoi(retention); err == nil && n >= 0 {
		switch mode {
		case ModeRevision:
			return time.Duration(n), nil
		case ModePeriodic:
			return time.Duration(n) * time.Hour, nil
		case "":
			return 0, errors.New("--auto-compaction-mode is undefined")
		}
		return 0, nil // an unknown mode is refused by ValidateMode first
	}
	d, err := time.ParseDuration(retention)
	if err != nil {
		return 0, fmt.Errorf("error parsing CompactionRetention: %w", err)
	}
	return d, nil
}

// Compactor is the auto-compaction actor.
//
// Invariants: at most one of timer and flight is set while running — the
// compactor either waits for its next check or for one compaction's
// result, never both, so compactions never overlap (etcd's loop blocks
// on each); neither is set while off. Messages from a timer or proposal
// that is no longer current (stopped, timed out, from before a restart or
// a policy change) are ignored. A periodic compaction is proposed only at
// a sample taken at least a retention ago.
type Compactor struct {
	cfg    Config
	policy *atomic.Pointer[policy] // the policy now; outlives restarts
	self   *actor.PID
	root   *actor.RootContext
	mode   string // the running policy's mode; "" while off

	timer  *timer  // the armed wait for the next check
	flight *flight // the compaction proposed and not yet answered

	// periodic mode
	period      time.Duration // the retention
	sample      time.Duration // sampling (and retry) interval
	compactIvl  time.Duration // least time between compactions after the first
	window      int           // samples kept: revs[0] is the revision `period` ago
	revs        []int64
	lastRev     int64     // last revision compacted (or found compacted)
	lastSuccess time.Time // when; the start time before the first
	wait        time.Duration

	// revision mode
	keep int64 // revisions to keep
	prev int64 // last revision compacted (or found compacted)
}

type timer struct{ stop func() bool }

// tick: the timer t has fired.
type tick struct{ t *timer }

type flight struct {
	rev         int64
	start       time.Time
	cancel      chan struct{} // closed when the result is no longer wanted
	stopTimeout func() bool
}

// proposed carries a proposal's result from its waiter to the actor.
type proposed struct {
	f   *flight
	res actors.Result
}

// timedOut: the proposal f got no result within RequestTimeout.
type timedOut struct{ f *flight }

// New returns the compactor's props, or an error for an unknown mode or
// a negative retention.
func New(cfg Config) (*actor.Props, error) {
	if err := validate(cfg.Mode, cfg.Retention); err != nil {
		return nil, err
	}
	if cfg.Rev == nil || cfg.Propose == nil {
		return nil, errors.New("compactor: Rev and Propose are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = actors.RealClock
	}
	if cfg.Leader == nil {
		cfg.Leader = func() bool { return true }
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 7 * time.Second
	}
	if cfg.RevisionInterval <= 0 {
		cfg.RevisionInterval = RevisionInterval
	}
	cell := new(atomic.Pointer[policy])
	cell.Store(&policy{mode: cfg.Mode, retention: cfg.Retention})
	return actor.PropsFromProducer(func() actor.Actor { return &Compactor{cfg: cfg, policy: cell} }, actors.KeepStopped()), nil
}

// Intervals returns periodic mode's sampling interval, least time between
// compactions, and window length in samples for a retention, as etcd's
// getRetryInterval, getCompactInterval and getRetentions compute them.
func Intervals(retention time.Duration) (sample, compact time.Duration, window int) {
	compact = min(retention, maxCompactInterval)
	sample = max(compact/retryDivisor, minSampleInterval)
	return sample, compact, max(int(retention/sample)+1, 1)
}

func (c *Compactor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.start(ctx)
	case *actor.Stopping, *actor.Restarting:
		c.stopAll()
	case *tick:
		if m.t == c.timer {
			c.timer = nil
			c.check()
		}
	case *proposed:
		if m.f == c.flight {
			m.f.stopTimeout()
			c.flight = nil
			c.finish(m.f, m.res.Err)
		}
	case *timedOut:
		if m.f == c.flight {
			close(m.f.cancel)
			c.flight = nil
			c.finish(m.f, rpctypes.ErrGRPCTimeout)
		}
	case *SetPolicy:
		actors.Reply(m.Reply, c.setPolicy(m))
	}
}

// start begins from scratch with the policy now: a restarted compactor,
// like a restarted etcd, waits a full retention before its first
// periodic compaction.
func (c *Compactor) start(ctx actor.Context) {
	c.self, c.root = ctx.Self(), ctx.ActorSystem().Root
	c.begin()
}

// begin starts the policy now afresh (nothing armed while it is off).
func (c *Compactor) begin() {
	c.timer, c.flight = nil, nil
	p := c.policy.Load()
	c.mode = p.mode
	if p.retention == 0 {
		c.mode = ""
	}
	switch c.mode {
	case ModePeriodic:
		c.period = p.retention
		c.sample, c.compactIvl, c.window = Intervals(c.period)
		c.revs = make([]int64, 0, c.window+1)
		c.lastRev, c.lastSuccess, c.wait = 0, c.cfg.Clock.Now(), c.period
		c.takeSample()
		c.arm(c.sample)
	case ModeRevision:
		c.keep, c.prev = int64(p.retention), 0
		c.arm(c.cfg.RevisionInterval)
	}
}

func (c *Compactor) stopAll() {
	if c.timer != nil {
		c.timer.stop()
		c.timer = nil
	}
	if c.flight != nil {
		c.flight.stopTimeout()
		close(c.flight.cancel)
		c.flight = nil
	}
}

func (c *Compactor) arm(d time.Duration) {
	t := &timer{}
	self, root := c.self, c.root
	t.stop = c.cfg.Clock.AfterFunc(d, func() { root.Send(self, &tick{t: t}) })
	c.timer = t
}

// takeSample appends the current revision to the window, dropping the
// oldest once it holds more than `window` samples, so revs[0] is the
// revision of (about) one retention ago.
func (c *Compactor) takeSample() {
	c.revs = append(c.revs, c.cfg.Rev())
	if len(c.revs) > c.window {
		c.revs = append(c.revs[:0], c.revs[1:]...)
	}
}

func (c *Compactor) check() {
	if c.mode == ModeRevision {
		c.checkRevision()
	} else {
		c.checkPeriodic()
	}
}

func (c *Compactor) checkPeriodic() {
	rev := c.revs[0]
	// The window spans a retention once it holds window-1 samples (the
	// newest taken a sampling interval ago): always so by the time the
	// first compaction is due, but not for a while after the retention
	// was raised (SetPolicy).
	spans := len(c.revs) >= c.window-1
	if !c.cfg.Leader() || c.cfg.Clock.Now().Sub(c.lastSuccess) < c.wait || rev == c.lastRev || !spans {
		c.takeSample()
		c.arm(c.sample)
		return
	}
	// The first compaction waits a whole retention; later ones at most
	// compactIvl (an hour for longer retentions).
	c.wait = c.compactIvl
	c.cfg.Logger.Info("starting auto periodic compaction",
		zap.Int64("revision", rev), zap.Duration("compact-period", c.period))
	c.propose(rev)
}

func (c *Compactor) checkRevision() {
	rev := c.cfg.Rev() - c.keep
	if !c.cfg.Leader() || rev <= 0 || rev == c.prev {
		c.arm(c.cfg.RevisionInterval)
		return
	}
	c.cfg.Logger.Info("starting auto revision compaction",
		zap.Int64("revision", rev), zap.Int64("revision-compaction-retention", c.keep))
	c.propose(rev)
}

// propose sends the compaction through raft and waits for its result off
// the mailbox: a waiter goroutine forwards the reply as a message, and a
// clock timeout gives up on it, as etcd's request timeout does.
func (c *Compactor) propose(rev int64) {
	reply := make(chan actors.Result, 1)
	f := &flight{rev: rev, start: c.cfg.Clock.Now(), cancel: make(chan struct{})}
	self, root := c.self, c.root
	f.stopTimeout = c.cfg.Clock.AfterFunc(c.cfg.RequestTimeout, func() { root.Send(self, &timedOut{f: f}) })
	c.flight = f
	go func() {
		select {
		case res := <-reply:
			root.Send(self, &proposed{f: f, res: res})
		case <-f.cancel:
		}
	}()
	c.cfg.Propose(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}}, reply)
}

// finish records a compaction's outcome and arms the next check. As in
// etcd, "already compacted" is success: the point we wanted is reached.
func (c *Compactor) finish(f *flight, err error) {
	ok := err == nil || IsCompacted(err)
	took := c.cfg.Clock.Now().Sub(f.start)
	if c.mode == ModeRevision {
		if ok {
			c.prev = f.rev
			c.cfg.Logger.Info("completed auto revision compaction",
				zap.Int64("revision", f.rev), zap.Int64("revision-compaction-retention", c.keep), zap.Duration("took", took))
		} else {
			c.cfg.Logger.Warn("failed auto revision compaction",
				zap.Int64("revision", f.rev), zap.Int64("revision-compaction-retention", c.keep),
				zap.Duration("retry-interval", c.cfg.RevisionInterval), zap.Error(err))
		}
		c.arm(c.cfg.RevisionInterval)
		return
	}
	if ok {
		c.cfg.Logger.Info("completed auto periodic compaction",
			zap.Int64("revision", f.rev), zap.Duration("compact-period", c.period), zap.Duration("took", took))
		c.lastRev, c.lastSuccess = f.rev, c.cfg.Clock.Now()
	} else {
		c.cfg.Logger.Warn("failed auto periodic compaction",
			zap.Int64("revision", f.rev), zap.Duration("compact-period", c.period),
			zap.Duration("retry-interval", c.sample), zap.Error(err))
	}
	c.takeSample()
	c.arm(c.sample)
}

// IsCompacted reports whether err is etcd's "mvcc: required revision has
// been compacted", as the store answers it (a gRPC status) or as a plain
// etcd error.
func IsCompacted(err error) bool {
	return errors.Is(err, rpctypes.ErrGRPCCompacted) || errors.Is(rpctypes.Error(err), rpctypes.ErrCompacted)
}

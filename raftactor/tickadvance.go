package raftactor

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
)

// Initial election tick advance (etcd's --initial-election-tick-advance,
// on by default): a member that starts in a cluster whose leader it can
// reach would otherwise wait a whole randomized election timeout before
// it may campaign; one that starts where there is no leader (a whole
// cluster restarting) would too. As etcd, once its connections to the
// other members are up it fast-forwards its election clock to two ticks
// short of the timeout: a leader's heartbeat still resets it first, and
// without a leader an election starts within a few ticks. It is done
// once per process start, within tickAdvanceWait, or not at all (no
// connections: advancing would only make this member campaign alone).
// A lone voter needs none of this: it campaigns at once (campaignIfAlone).

// tickAdvanceWait is how long a starting member waits for its peer
// connections (etcd: rafthttp's read timeout), checking every
// tickAdvanceEvery.
const (
	tickAdvanceWait  = 5 * time.Second
	tickAdvanceEvery = 50 * time.Millisecond
)

// tickAdvanceCheck asks the actor to look at its peer connections again.
type tickAdvanceCheck struct{}

// startTickAdvance begins the wait for peer connections, once per process
// (clients outlive actor restarts; a restarted actor must not advance a
// clock the member has been running on).
func (n *Node) startTickAdvance(ctx actor.Context) {
	// raft's own view of the voters: a new member's bootstrap conf
	// changes are in it before the store has applied them.
	voters := len(n.core.rn.Status().Config.Voters.IDs())
	if n.clients.tickAdvanceStarted || voters < 2 || n.cfg.ActivePeers == nil {
		return
	}
	n.clients.tickAdvanceStarted = true
	if n.cfg.DisableTickAdvance {
		n.cfg.Logger.Info("skipping initial election tick advance", zap.Int("election-ticks", n.cfg.ElectionTicks))
		return
	}
	n.cfg.Logger.Info("starting initial election tick advance", zap.Int("election-ticks", n.cfg.ElectionTicks))
	self, root := ctx.Self(), ctx.ActorSystem().Root
	n.tickAdvanceChecks = 0
	n.stopTickAdvance = n.cfg.Clock.Every(tickAdvanceEvery, func() { root.Send(self, tickAdvanceCheck{}) })
}

// checkTickAdvance advances the election clock once more than one peer
// connection is up (etcd's condition), or gives up after the wait.
func (n *Node) checkTickAdvance() {
	if n.stopTickAdvance == nil {
		return
	}
	n.tickAdvanceChecks++
	active := n.cfg.ActivePeers()
	if active > 1 {
		ticks := n.cfg.ElectionTicks - 2
		n.core.advanceTicks(ticks)
		n.cfg.Logger.Info("initialized peer connections; fast-forwarding election ticks",
			zap.String("local-member-id", fmt.Sprintf("%x", n.cfg.ID)),
			zap.Int("forward-ticks", ticks),
			zap.String("forward-duration", (time.Duration(ticks)*n.cfg.TickInterval).String()),
			zap.Int("election-ticks", n.cfg.ElectionTicks),
			zap.String("election-timeout", (time.Duration(n.cfg.ElectionTicks)*n.cfg.TickInterval).String()),
			zap.Int("active-remote-members", active))
	}
	if active > 1 || time.Duration(n.tickAdvanceChecks)*tickAdvanceEvery >= tickAdvanceWait {
		n.stopTickAdvance()
		n.stopTickAdvance = nil
	}
}

// advanceTicks moves raft's election and heartbeat clocks on by ticks.
func (c *core) advanceTicks(ticks int) {
	for range ticks {
		c.rn.Tick()
	}
}

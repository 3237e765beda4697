package leaseactor

import (
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/actors"
)

// ErrNotPrimary refuses a keep-alive that arrived while this member was
// primary but whose leadership could not be confirmed: etcd's
// lease.ErrNotPrimary as its API layer sends it (the error is not in
// togRPCError's map, so it goes out as codes.Unknown with its text).
// clientv3's keep-alive loop ends the stream on it and opens a new one,
// which its balancer sends to another endpoint.
var ErrNotPrimary = status.Error(codes.Unknown, "not a primary lessor")

// confirmations batch keep-alives onto leadership confirmation rounds, as
// the raft actor batches linearizable reads: one round in flight, and the
// renewals that arrive meanwhile wait for the next. So every renewal is
// acknowledged only after a quorum round begun after it arrived, and a
// burst of keep-alives costs one round, not one each.
//
// Invariant: renewals wait (in waiting, in round or in clears) only while
// the Lessor is primary; demotion refuses them all.
//
// Revoking expired leases waits for a round too (etcd's revokeExpiredLeases
// calls ensureLeadership first): a leader paused past an election timeout
// (SIGSTOP, a long GC or disk stall) wakes up still believing it leads,
// with every lease's expiry in its past; without a round it would propose
// their revokes, and a proposal it forwards once it learns of the new
// leader commits. A round fails there instead. So do checkpoints (etcd's
// checkpointer calls ensureLeadership too).
type confirmations struct {
	waiting        []*Renew // arrived after the round in flight began
	wantRevoke     bool     // expired leases wait for the next round
	wantCheckpoint bool     // due checkpoints wait for the next round
	round          *round   // in flight; nil when none
	// clears are confirmed renewals waiting for the clear of their
	// lease's checkpoint to be applied (checkpoint.go), by seq.
	clears map[uint64]*clearing
	seq    uint64 // numbers rounds and clears, so a late answer to an abandoned one is ignored
}

type round struct {
	seq, term  uint64 // term: the Lessor's primary term when the round began
	renewals   []*Renew
	revoke     bool          // revoke the expired leases once confirmed
	checkpoint bool          // propose the due checkpoints once confirmed
	abandon    chan struct{} // closed when nobody waits for the answer any more
}

// confirmed is a round's answer, sent to the Lessor by the goroutine that
// waited for it.
type confirmed struct {
	seq uint64
	err error
}

// renew queues a keep-alive for the next confirmation round; a member that
// is not primary answers "not leader", and the gateway asks the leader.
func (l *Lessor) renew(m *Renew) {
	l.checkPrimary()
	if !l.primary {
		actors.Reply(m.Reply, RenewResult{Err: rpctypes.ErrGRPCNotLeader})
		return
	}
	l.confirm.waiting = append(l.confirm.waiting, m)
	l.startRound()
}

// startRound asks raft for a quorum round on behalf of the renewals
// waiting, unless a round is in flight (they wait for its answer first).
func (l *Lessor) startRound() {
	c := &l.confirm
	if c.round != nil || (len(c.waiting) == 0 && !c.wantRevoke && !c.wantCheckpoint) {
		return
	}
	c.seq++
	r := &round{seq: c.seq, term: l.term, renewals: c.waiting, revoke: c.wantRevoke, checkpoint: c.wantCheckpoint,
		abandon: make(chan struct{})}
	c.round, c.waiting, c.wantRevoke, c.wantCheckpoint = r, nil, false, false
	reply := make(chan error, 1)
	l.cfg.ReadIndex(reply)
	select {
	case err := <-reply: // answered at once (a refusal; or a test's raft)
		l.confirmed(confirmed{seq: r.seq, err: err})
		return
	default:
	}
	self, root := l.self, l.root
	go func() {
		select {
		case err := <-reply:
			root.Send(self, confirmed{seq: r.seq, err: err})
		case <-r.abandon:
		}
	}()
}

// confirmed renews the round's leases if the quorum confirmed this
// member's leadership and it is still primary in the term the round began
// in; otherwise it refuses them. Then the next round starts.
func (l *Lessor) confirmed(m confirmed) {
	r := l.confirm.round
	if r == nil || r.seq != m.seq {
		return // abandoned: its renewals were refused already
	}
	l.confirm.round = nil
	l.checkPrimary() // a demotion here refuses the renewals waiting
	err := m.err
	if err == nil && (!l.primary || l.term != r.term) {
		err = fmt.Errorf("leadership of term %d lost during the round", r.term)
	}
	if err != nil {
		l.refuse(r.renewals, err.Error())
		if r.checkpoint {
			l.cfg.Logger.Warn("Ignore the checkpoint request because current member isn't a leader",
				zap.String("local-member-id", fmt.Sprintf("%x", l.cfg.ID)), zap.Error(err))
		}
	} else {
		for _, rn := range r.renewals {
			if !l.clearFirst(rn) {
				actors.Reply(rn.Reply, l.extend(rn.ID))
			}
		}
		if r.revoke {
			l.revokeConfirmed()
		}
		if r.checkpoint {
			l.checkpointConfirmed()
		}
	}
	l.startRound()
}

// refuseRenewals refuses every renewal waiting for a confirmation: this
// member stopped being primary, or the actor is stopping.
func (l *Lessor) refuseRenewals(why string) {
	c := &l.confirm
	if r := c.round; r != nil {
		close(r.abandon)
		l.refuse(r.renewals, why)
	}
	l.refuse(c.waiting, why)
	var clearing []*Renew
	for _, cl := range c.clears {
		close(cl.abandon)
		clearing = append(clearing, cl.renew)
	}
	l.refuse(clearing, why)
	c.round, c.waiting, c.wantRevoke, c.wantCheckpoint, c.clears = nil, nil, false, false, nil
}

func (l *Lessor) refuse(renewals []*Renew, why string) {
	if len(renewals) == 0 {
		return
	}
	l.cfg.Logger.Warn("Failed to check current member's leadership",
		zap.String("reason", why), zap.Uint64("term", l.term), zap.Int("refused-keepalives", len(renewals)))
	leaseRenewUnconfirmed.Add(float64(len(renewals)))
	for _, rn := range renewals {
		actors.Reply(rn.Reply, RenewResult{Err: ErrNotPrimary})
	}
}

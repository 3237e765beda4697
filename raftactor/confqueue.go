package raftactor

import (
	"go.etcd.io/raft/v3/raftpb"
)

// Conf change proposals wait on the leader while another is in flight.
//
// raft allows one membership change at a time: a leader that is handed a
// conf change while an earlier one is not yet applied (raft's
// pendingConfIndex is above its applied index) turns the new one into an
// empty entry, and its client — here, or on the follower that forwarded
// it — waits for an answer that never comes, until its timeout. That
// happens whenever a client's next change arrives before the leader has
// applied its previous one: a client on a follower is answered when the
// follower applies, which can be before the leader does.
//
// So the leader holds such proposals (its own and those forwarded to it)
// in confQueue and steps them, in arrival order, once raft would accept
// them. Invariant: while this member leads, pendingConf is at least
// raft's pendingConfIndex (set from the log's last index when it became
// leader, from each conf change it appends), and confStepped is true from
// stepping a conf change until its entry is appended; so confBusy is true
// whenever raft would refuse a conf change.

// confProposal is a conf change waiting for the leader to take it: a
// client's here, or a follower's forwarded MsgProp.
type confProposal struct {
	local   *ProposeConfChange
	forward *raftpb.Message
}

// confBusy reports whether raft, on this leader, would refuse a conf
// change now.
func (c *core) confBusy() bool {
	if c.lead != c.id {
		return false
	}
	return c.confStepped || c.rn.BasicStatus().Applied < c.pendingConf
}

// step hands a peer's message to raft, except a forwarded conf change
// this leader cannot take yet, which waits.
func (c *core) step(m *raftpb.Message) error {
	if m.GetType() == raftpb.MsgProp && hasConfChange(m) && c.confBusy() {
		c.confQueue = append(c.confQueue, confProposal{forward: m})
		return nil
	}
	return c.stepNow(m)
}

func (c *core) stepNow(m *raftpb.Message) error {
	if m.GetType() == raftpb.MsgProp && hasConfChange(m) && c.lead == c.id {
		c.confStepped = true
	}
	return c.rn.Step(m)
}

func hasConfChange(m *raftpb.Message) bool {
	for _, e := range m.GetEntries() {
		if e.GetType() != raftpb.EntryNormal {
			return true
		}
	}
	return false
}

// confAppended follows raft's pendingConfIndex through the entries a
// Ready appends: a conf change appended by this leader is pending until
// applied.
func (c *core) confAppended(ents []*raftpb.Entry) {
	if c.lead != c.id {
		return
	}
	for _, e := range ents {
		if e.GetType() != raftpb.EntryNormal {
			c.pendingConf = max(c.pendingConf, e.GetIndex())
			c.confStepped = false
		}
	}
}

// becameLeader starts pendingConf where raft starts its pendingConfIndex:
// at the log's last index (whatever conf changes it holds must be applied
// before another is taken).
func (c *core) becameLeader() {
	last, _ := c.ms.LastIndex()
	c.pendingConf = last
	c.confStepped = false
}

// flushConfQueue steps the waiting conf changes raft can take now: one at
// a time while this member leads (each makes raft busy again), all of
// them once it does not (raft forwards them to the new leader, or refuses
// them with no leader).
func (c *core) flushConfQueue() {
	for len(c.confQueue) > 0 && !c.confBusy() {
		p := c.confQueue[0]
		c.confQueue = c.confQueue[1:]
		if p.local != nil {
			c.proposeConfChange(p.local)
		} else if err := c.stepNow(p.forward); err != nil {
			c.logger.Debug("raft step of a waiting conf change: " + err.Error())
		}
		c.fx.again = true
	}
}

// cancelConf forgets a client's conf change still waiting in the queue.
func (c *core) cancelConf(id uint64) bool {
	for i, p := range c.confQueue {
		if p.local != nil && p.local.CC.GetId() == id {
			c.confQueue = append(c.confQueue[:i], c.confQueue[i+1:]...)
			return true
		}
	}
	return false
}

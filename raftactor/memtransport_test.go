package raftactor_test

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/raftactor"
)

// memNet connects raft actors of one actor system: a message a node sends
// is delivered to the addressee's raft actor as a Step, unless the link
// between them is cut. Messages are copied, as a wire would.
type memNet struct {
	root *actor.RootContext

	mu   sync.Mutex
	pids map[uint64]*actor.PID
	down map[[2]uint64]bool // from, to

	delivered, dropped atomic.Int64
}

func newMemNet(root *actor.RootContext) *memNet {
	return &memNet{root: root, pids: map[uint64]*actor.PID{}, down: map[[2]uint64]bool{}}
}

// register makes id reachable at pid (its raft actor).
func (n *memNet) register(id uint64, pid *actor.PID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pids[id] = pid
}

// transport is node from's raftactor.Transport.
func (n *memNet) transport(from uint64) raftactor.Transport { return &memTransport{net: n, from: from} }

// cut drops every message between a and b, both ways.
func (n *memNet) cut(a, b uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down[[2]uint64{a, b}] = true
	n.down[[2]uint64{b, a}] = true
}

// isolate cuts id from every other node of ids.
func (n *memNet) isolate(id uint64, ids ...uint64) {
	for _, o := range ids {
		if o != id {
			n.cut(id, o)
		}
	}
}

// heal restores every link.
func (n *memNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = map[[2]uint64]bool{}
}

func (n *memNet) route(from, to uint64) *actor.PID {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down[[2]uint64{from, to}] {
		return nil
	}
	return n.pids[to]
}

type memTransport struct {
	net  *memNet
	from uint64
}

func (t *memTransport) Send(msgs []*raftpb.Message) {
	for _, m := range msgs {
		pid := t.net.route(t.from, m.GetTo())
		if pid == nil {
			t.net.dropped.Add(1)
			continue
		}
		t.net.delivered.Add(1)
		t.net.root.Send(pid, &raftactor.Step{Msg: proto.Clone(m).(*raftpb.Message)})
	}
}

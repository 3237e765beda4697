package raftactor_test

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
)

// memNet connects raft actors of one actor system: a message a node sends
// is delivered to the addressee's raft actor as a Step, unless the link
// between them is cut. Messages are copied, as a wire would.
type memNet struct {
	root *actor.RootContext

	mu   sync.Mutex
	pids map[uint64]*actor.PID
	dbs  map[uint64]dbOnFS  // for snapshots, when registered with one
	down map[[2]uint64]bool // from, to

	delivered, dropped, snapshots atomic.Int64
}

func newMemNet(root *actor.RootContext) *memNet {
	return &memNet{root: root, pids: map[uint64]*actor.PID{}, dbs: map[uint64]dbOnFS{}, down: map[[2]uint64]bool{}}
}

// register makes id reachable at pid (its raft actor).
func (n *memNet) register(id uint64, pid *actor.PID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pids[id] = pid
}

// dbOnFS is a node's DB and the (in-memory) filesystem it lives on.
type dbOnFS struct {
	db *pebble.DB
	fs vfs.FS
}

// registerDB lets id send and receive snapshots: a MsgSnap to it carries a
// checkpoint of the sender's DB, unpacked where its raft actor looks
// (raftactor.ReceivedSnapshotDir under snapRoot), as the peer transport
// does over HTTP.
func (n *memNet) registerDB(id uint64, db *pebble.DB, fs vfs.FS) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dbs[id] = dbOnFS{db, fs}
}

const snapRoot = "/snap"

// sendSnapshot moves a checkpoint of from's DB to to's filesystem before
// the MsgSnap, and reports the outcome to from's raft actor.
func (n *memNet) sendSnapshot(from uint64, m *raftpb.Message) error {
	n.mu.Lock()
	src, dst, fromPID := n.dbs[from], n.dbs[m.GetTo()], n.pids[from]
	n.mu.Unlock()
	snap, err := storeactor.NewSnapshotter(src.db, src.fs, "/checkpoints").Take()
	if err == nil {
		pr, pw := io.Pipe()
		go func() { _, err := snap.WriteTo(pw); pw.CloseWithError(err) }()
		meta := m.GetSnapshot().GetMetadata()
		err = storeactor.ReceiveCheckpoint(dst.fs, raftactor.ReceivedSnapshotDir(dst.fs, snapRoot, meta.GetIndex(), meta.GetTerm()), pr)
		snap.Close()
	}
	n.root.Send(fromPID, &raftactor.ReportSnapshot{ID: m.GetTo(), Failure: err != nil})
	if err == nil {
		n.snapshots.Add(1)
	}
	return err
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
		if m.GetType() == raftpb.MsgSnap {
			if err := t.net.sendSnapshot(t.from, m); err != nil {
				t.net.dropped.Add(1)
				continue
			}
		}
		t.net.delivered.Add(1)
		t.net.root.Send(pid, &raftactor.Step{Msg: proto.Clone(m).(*raftpb.Message)})
	}
}

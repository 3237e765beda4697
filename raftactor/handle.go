package raftactor

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/actors"
)

// Handle is how the member's other parts reach the raft actor: the peer
// transport, the lessor and the compactor are built before it (the raft
// actor needs the store, which needs them), so they hold a Handle that is
// bound once the actor is spawned. Until then messages are dropped (raft
// retransmits) and proposals fail.
type Handle struct {
	root *actor.RootContext
	ids  *IDGen
	pid  atomic.Pointer[actor.PID]
	view atomic.Pointer[ViewRef]
}

// errNotStarted answers a proposal made before the raft actor exists.
var errNotStarted = errors.New("raft actor not started")

// NewHandle makes an unbound handle; ids numbers its proposals.
func NewHandle(root *actor.RootContext, ids *IDGen) *Handle {
	return &Handle{root: root, ids: ids}
}

// Bind points the handle at the spawned raft actor and the view it
// publishes.
func (h *Handle) Bind(pid *actor.PID, view *ViewRef) {
	h.view.Store(view)
	h.pid.Store(pid)
}

// View is the raft actor's published view; nil before Bind (View's
// methods take a nil View as "no leader").
func (h *Handle) View() *View {
	if ref := h.view.Load(); ref != nil {
		return ref.Load()
	}
	return nil
}

// PID is the raft actor, nil before Bind.
func (h *Handle) PID() *actor.PID { return h.pid.Load() }

// Send delivers m to the raft actor, or drops it before Bind.
func (h *Handle) Send(m any) {
	if pid := h.pid.Load(); pid != nil {
		h.root.Send(pid, m)
	}
}

// Propose replicates r under a fresh request id. reply (may be nil) gets
// the store's answer, or the error that kept r from being proposed.
func (h *Handle) Propose(r *pb.InternalRaftRequest, reply chan<- actors.Result) {
	h.propose(r, reply)
}

// propose is Propose, returning the proposal's id (0 when not proposed).
func (h *Handle) propose(r *pb.InternalRaftRequest, reply chan<- actors.Result) uint64 {
	pid := h.pid.Load()
	if pid == nil {
		actors.Reply(reply, actors.Result{Err: errNotStarted})
		return 0
	}
	id := h.ids.Next()
	data, err := EncodeProposal(id, r)
	if err != nil {
		actors.Reply(reply, actors.Result{Err: err})
		return 0
	}
	h.root.Send(pid, &Propose{ID: id, Data: data, Req: r, Reply: reply})
	return id
}

// ProposeWait proposes r and waits for the store's answer or ctx; a
// caller that gives up frees its waiter in the raft actor.
func (h *Handle) ProposeWait(ctx context.Context, r *pb.InternalRaftRequest) (actors.Result, error) {
	reply := make(chan actors.Result, 1)
	id := h.propose(r, reply)
	select {
	case res := <-reply:
		return res, res.Err
	case <-ctx.Done():
		if id != 0 {
			h.Send(&CancelProposal{ID: id})
		}
		return actors.Result{}, ctx.Err()
	}
}

// ReadIndex waits until the local store has applied everything committed
// when it was called (a linearizable read's barrier), or ctx ends.
func (h *Handle) ReadIndex(ctx context.Context) error {
	pid := h.pid.Load()
	if pid == nil {
		return errNotStarted
	}
	rerr, err := actors.Ask(ctx, h.root, pid, func(reply chan<- error) any {
		return &ReadIndex{Reply: reply}
	})
	if err != nil {
		return err
	}
	return rerr
}

// HandOffLeadership moves leadership away from this member before it
// stops, as etcd's graceful shutdown does: when it leads a cluster with
// other voters, it asks the raft actor to transfer leadership to the most
// up-to-date reachable voter and waits (up to ctx) until that voter leads.
// It returns the transferee (0: no transfer was needed) and a line for the
// log when skipped.
// connected (may be nil) says which members the transport reaches.
func (h *Handle) HandOffLeadership(ctx context.Context, connected func(id uint64) bool) (target uint64, skipped string, err error) {
	pid := h.pid.Load()
	if pid == nil {
		return 0, "skipped leadership transfer; raft is not started", nil
	}
	ho, err := actors.Ask(ctx, h.root, pid, func(reply chan<- HandOff) any {
		return &HandOffLeadership{Connected: connected, Reply: reply}
	})
	if err != nil {
		return 0, "", err
	}
	if ho.Target == 0 {
		return 0, ho.Skipped, ho.Err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for h.View().Lead != ho.Target {
		select {
		case <-ctx.Done():
			return ho.Target, "", errTransferTimeout
		case <-tick.C:
		}
	}
	return ho.Target, "", nil
}

// errTransferTimeout is etcd's ErrTimeoutLeaderTransfer.
var errTransferTimeout = errors.New("etcdserver: request timed out, leader transfer took too long")

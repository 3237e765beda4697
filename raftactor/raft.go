// Package raftactor drives a go.etcd.io/raft RawNode from an actor. It owns
// the raft log in pebble, persists every Ready in one batch (synced when
// raft says so) before anything in it is acted on, and hands committed
// entries to the store actor in batches.
//
// Group commit falls out of the mailbox: proposals that arrive while a
// Ready is being persisted queue up and all go into the next Ready, which
// is persisted with one fsync. A client is answered by the store only after
// its entry is committed, and an entry is committed only after the fsync
// that covers it.
package raftactor

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/metastore/metastore/actors"
)

// Propose asks raft to replicate a request. Data is the encoded proposal
// (see EncodeProposal); Req is the same request, handed to the local store
// so it need not decode it again. The store answers on Reply once the entry
// is applied.
type Propose struct {
	ID    uint64
	Data  []byte
	Req   *pb.InternalRaftRequest
	Reply chan<- actors.Result
}

// ProposeConfChange asks raft to change the membership. CC.Id must be a
// fresh request id (it finds the waiting client) and CC.Context the member
// (storeactor.EncodeMemberContext). Reply gets the store's answer: a
// MemberListResponse with the membership after the change, or etcd's
// error when the store refused it.
type ProposeConfChange struct {
	CC    *raftpb.ConfChange
	Reply chan<- actors.Result
}

// CancelProposal tells the raft actor that the client of proposal ID gave
// up waiting (its deadline passed): its waiter is freed. The proposal may
// still commit.
type CancelProposal struct{ ID uint64 }

// ReadIndex asks for a linearizable read point: Reply gets nil once the
// local store has applied everything committed when the request was
// confirmed by a quorum, or an error.
type ReadIndex struct{ Reply chan<- error }

// Status asks for raft's view of the node.
type Status struct{ Reply chan<- StatusInfo }

// StatusInfo is raft's view of this member.
type StatusInfo struct {
	ID        uint64
	Lead      uint64
	Term      uint64
	Committed uint64
	Applied   uint64 // applied by the store
	// Reported is what the store last reported applied to raft: entries
	// handed to it beyond are sent again if it stays behind.
	Reported  uint64
	IsLearner bool
	// Match is, on the leader, each member's last log index known to be
	// replicated to it (raft's progress); nil on followers.
	Match map[uint64]uint64
}

// Step delivers a raft message from a peer (through a Transport).
type Step struct{ Msg *raftpb.Message }

// TransferLeader asks the leader to hand leadership to Target (raft's
// leadership transfer: Target is caught up, then told to campaign). The
// caller watches View.Lead for the outcome.
type TransferLeader struct{ Target uint64 }

// HandOffLeadership asks a leader that is about to stop to move leadership
// to the most up-to-date voter it hears from (etcd's transfer on
// shutdown), so the cluster does not wait out an election timeout. Reply
// gets the transferee, or why there is none; the caller watches View.Lead.
//
// Connected, when set, tells whether the transport has a live connection
// to a member: raft's own view (a member heard from within an election
// timeout) still counts a member that has just gone.
type HandOffLeadership struct {
	Connected func(id uint64) bool
	Reply     chan<- HandOff
}

// HandOff is the answer to HandOffLeadership: Target is the transferee,
// 0 when Skipped says why no transfer was started (not the leader, the
// only voter) or Err why none could be (no voter is reachable).
type HandOff struct {
	Target  uint64
	Skipped string
	Err     error
}

// ReportUnreachable tells raft a message to peer ID could not be sent, so
// the leader stops pipelining to it and probes instead.
type ReportUnreachable struct{ ID uint64 }

// ReportSnapshot tells raft how sending a snapshot to peer ID ended.
type ReportSnapshot struct {
	ID      uint64
	Failure bool
}

type tick struct{}

type processReady struct{}

// Transport sends raft messages to peers. A single-member node has no peers;
// multi-member transport comes with cluster membership.
type Transport interface {
	Send(msgs []*raftpb.Message)
}

// NoPeers is the transport of a single-member cluster: there is no one to
// send to, and raft never addresses anyone.
type NoPeers struct{}

func (NoPeers) Send([]*raftpb.Message) {}

// View is the raft state the gateway reads for response headers and status
// without a mailbox round trip. Published after every Ready that changes it.
type View struct {
	ID        uint64
	ClusterID uint64
	Lead      uint64
	Term      uint64
	Committed uint64
	IsLearner bool // this member is a learner in raft's configuration
}

// Leads reports whether this member is the leader.
func (v *View) Leads() bool { return v != nil && v.Lead != 0 && v.Lead == v.ID }

// LeadsApplied reports whether this member leads and its store has applied
// an entry of the current term (appliedTerm): only then has it applied
// every write of earlier terms, so it may act on the whole state (the
// lessor's "primary").
func (v *View) LeadsApplied(appliedTerm uint64) bool { return v.Leads() && appliedTerm == v.Term }

// ViewRef is the cell a raft actor publishes its View through, and the
// batch of linearizable reads a read joins (readbatch.go).
type ViewRef struct {
	atomic.Pointer[View]
	reads readCell
}

// JoinRead returns the batch of linearizable reads a read starting now
// belongs to, and whether it is the batch's first read: the caller then
// sends ReadsWaiting{Batch} to the raft actor. The read may go ahead once
// the batch's Done is closed and its Err is nil.
func (r *ViewRef) JoinRead() (*ReadBatch, bool) { return r.reads.join() }

// IDGen hands out request ids unique to this member and across its
// restarts: member id bits, then start time, then a counter (as etcd's
// idutil does).
type IDGen struct{ next atomic.Uint64 }

func NewIDGen(memberID uint64, now time.Time) *IDGen {
	g := &IDGen{}
	prefix := (memberID & 0xFFFF) << 48
	ms := uint64(now.UnixMilli()) & (1<<40 - 1)
	g.next.Store(prefix | ms<<8)
	return g
}

func (g *IDGen) Next() uint64 { return g.next.Add(1) }

// EncodeProposal builds a Propose's Data: the request id, then the request.
// It sets r.Header.ID. Callers check the request size on the result.
func EncodeProposal(id uint64, r *pb.InternalRaftRequest) ([]byte, error) {
	if r.Header == nil {
		r.Header = &pb.RequestHeader{}
	}
	r.Header.ID = id
	return encodeProposal(id, r)
}

// RequestSize is the size etcd limits with --max-request-bytes: the encoded
// request without our id prefix.
func RequestSize(data []byte) int { return len(data) - 8 }

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

package storeactor

import (
	"cmp"
	"crypto/sha1"
	"encoding/binary"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Cluster membership lives in the store's key space, so that it is applied
// in log order with everything else, survives restarts and travels with
// snapshots:
//
//	'c' 'm' id(8)    -> pb.Member (name, peer and client URLs, learner flag)
//	'c' 'x' id(8)    -> (empty) the member was removed; its id is never reused
//	'c' 'v' index(8) -> raftpb.ConfChange as applied to raft (see ConfApplied)
//
// Conf changes are decided here, not in the raft actor: the store checks a
// conf change entry against the membership as of the entry before it (etcd's
// ValidateConfigurationChange) and the raft actor applies to raft what the
// store decided — the change itself, or a no-op (node id 0) when refused.
// The verdict is recorded by index, so that a conf change the store applied
// before a restart is reported again when raft hands it back: raft must see
// every conf change after its last snapshot, whatever the store skips.

const prefixCluster = 'c'

func memberKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixCluster, 'm'}, id)
}
func removedKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixCluster, 'x'}, id)
}
func verdictKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixCluster, 'v'}, index)
}

// MemberID is etcd's member id: the first 8 bytes of sha1(sorted peer
// URLs, joined, + salt). The salt is the cluster token for the members of
// a new cluster, and the time (unix seconds, decimal) for an added one.
// Same flags give the same ids as etcd, so tools show the ids users expect.
func MemberID(peerURLs []string, salt string) uint64 {
	urls := slices.Clone(peerURLs)
	slices.Sort(urls)
	h := sha1.Sum([]byte(strings.Join(urls, "") + salt))
	return binary.BigEndian.Uint64(h[:8])
}

// Members is the membership as of the store's published View.
type Members struct {
	List    []*pb.Member // ordered by id; shared, read-only
	Removed map[uint64]bool
}

// Get returns the member with id, or nil.
func (ms *Members) Get(id uint64) *pb.Member {
	for _, m := range ms.List {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// ConfApplied reports the conf change the store decided for the entry at
// Index: CC is the entry's change, with NodeId 0 when it was refused (raft
// must still be told, with a change that does nothing).
type ConfApplied struct {
	Index uint64
	CC    *raftpb.ConfChange
}

func loadMembers(r pebble.Reader) *Members {
	ms := &Members{Removed: map[uint64]bool{}}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixCluster, 'm'}, UpperBound: []byte{prefixCluster, 'm' + 1}})
	must(err)
	for ok := it.First(); ok; ok = it.Next() {
		m := new(pb.Member)
		must(proto.Unmarshal(it.Value(), m))
		ms.List = append(ms.List, m)
	}
	must(it.Error())
	must(it.Close())
	it, err = r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixCluster, 'x'}, UpperBound: []byte{prefixCluster, 'x' + 1}})
	must(err)
	for ok := it.First(); ok; ok = it.Next() {
		ms.Removed[binary.BigEndian.Uint64(it.Key()[2:])] = true
	}
	must(it.Error())
	must(it.Close())
	return ms
}

// Members returns the membership the store last published.
func (r *Reader) Members() *Members { return r.members.Load() }

type membersRef = atomic.Pointer[Members]

// EncodeMemberContext is a conf change's Context: the member it adds or
// updates.
func EncodeMemberContext(m *pb.Member) []byte {
	b, err := proto.Marshal(m)
	must(err)
	return b
}

// validateConfChange is etcd's ValidateConfigurationChange against ms.
func validateConfChange(ms *Members, cc *raftpb.ConfChange, m *pb.Member, maxLearners int) error {
	id := cc.GetNodeId()
	if ms.Removed[id] {
		return rpctypes.ErrGRPCMemberNotFound
	}
	cur := ms.Get(id)
	urlTaken := func() bool {
		for _, o := range ms.List {
			if o.ID == id {
				continue
			}
			for _, u := range o.PeerURLs {
				if slices.Contains(m.GetPeerURLs(), u) {
					return true
				}
			}
		}
		return false
	}
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if isPromotion(cc) {
			if cur == nil {
				return rpctypes.ErrGRPCMemberNotFound
			}
			if !cur.IsLearner {
				return rpctypes.ErrGRPCMemberNotLearner
			}
			return nil
		}
		if cur != nil {
			return rpctypes.ErrGRPCMemberExist
		}
		if urlTaken() {
			return rpctypes.ErrGRPCPeerURLExist
		}
		if cc.GetType() == raftpb.ConfChangeAddLearnerNode {
			learners := 0
			for _, o := range ms.List {
				if o.IsLearner {
					learners++
				}
			}
			if learners+1 > maxLearners {
				return rpctypes.ErrGRPCTooManyLearners
			}
		}
	case raftpb.ConfChangeRemoveNode:
		if cur == nil {
			return rpctypes.ErrGRPCMemberNotFound
		}
	case raftpb.ConfChangeUpdateNode:
		if cur == nil {
			return rpctypes.ErrGRPCMemberNotFound
		}
		if urlTaken() {
			return rpctypes.ErrGRPCPeerURLExist
		}
	}
	return nil
}

// PromoteContext is the Context of an AddNode that promotes a learner
// (etcd marks it IsPromote); any other conf change's Context is the member
// it adds or updates (EncodeMemberContext), or empty.
var PromoteContext = []byte("promote")

func isPromotion(cc *raftpb.ConfChange) bool {
	return cc.GetType() == raftpb.ConfChangeAddNode && string(cc.GetContext()) == string(PromoteContext)
}

// applyConfChange decides and applies the conf change of the entry at
// index, recording the verdict. ms is the membership before it; the
// result is the membership after it (ms itself is never modified: it may be
// published).
//
// A bootstrap entry (raft writes them at term 1, the only entries of that
// term) is never refused: raft put its members in its configuration when
// it bootstrapped, and the membership must say the same.
func applyConfChange(b *pebble.Batch, ms *Members, index, term uint64, cc *raftpb.ConfChange, maxLearners int) (*Members, ConfApplied, error) {
	m := new(pb.Member)
	if len(cc.GetContext()) > 0 && !isPromotion(cc) {
		must(proto.Unmarshal(cc.GetContext(), m))
	}
	m.ID = cc.GetNodeId()
	verdict := ConfApplied{Index: index, CC: cc}
	var err error
	if term != 1 {
		err = validateConfChange(ms, cc, m, maxLearners)
	}
	if err != nil {
		verdict.CC = &raftpb.ConfChange{Type: cc.Type, NodeId: proto.Uint64(0), Id: cc.Id}
		must(b.Set(verdictKey(index), mustMarshal(verdict.CC), nil))
		return ms, verdict, err
	}
	next := &Members{List: slices.Clone(ms.List), Removed: ms.Removed}
	put := func(m *pb.Member) {
		next.List = slices.DeleteFunc(next.List, func(o *pb.Member) bool { return o.ID == m.ID })
		next.List = append(next.List, m)
		slices.SortFunc(next.List, func(a, b *pb.Member) int { return cmp.Compare(a.ID, b.ID) })
		must(b.Set(memberKey(m.ID), mustMarshal(m), nil))
	}
	cur := ms.Get(m.ID)
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode:
		if isPromotion(cc) {
			p := proto.Clone(cur).(*pb.Member)
			p.IsLearner = false
			put(p)
		} else {
			m.IsLearner = false
			put(m)
		}
	case raftpb.ConfChangeAddLearnerNode:
		m.IsLearner = true
		put(m)
	case raftpb.ConfChangeRemoveNode:
		next.List = slices.DeleteFunc(next.List, func(o *pb.Member) bool { return o.ID == m.ID })
		next.Removed = make(map[uint64]bool, len(ms.Removed)+1)
		for id := range ms.Removed {
			next.Removed[id] = true
		}
		next.Removed[m.ID] = true
		must(b.Delete(memberKey(m.ID), nil))
		must(b.Set(removedKey(m.ID), nil, nil))
	case raftpb.ConfChangeUpdateNode:
		u := proto.Clone(cur).(*pb.Member)
		u.PeerURLs = m.PeerURLs
		put(u)
	}
	must(b.Set(verdictKey(index), mustMarshal(cc), nil))
	return next, verdict, nil
}

// recordedVerdict is the verdict recorded for the conf change at index
// (applied before a restart), or nil.
func recordedVerdict(r pebble.Reader, index uint64) *raftpb.ConfChange {
	cc := new(raftpb.ConfChange)
	if !getProto(r, verdictKey(index), cc) {
		return nil
	}
	return cc
}

// applyMemberAttrSet records a member's name and client URLs (etcd's
// publish, sent by each member after it starts). Unknown or removed
// members are ignored, as etcd does.
func applyMemberAttrSet(b *pebble.Batch, ms *Members, r *membershippb.ClusterMemberAttrSetRequest) *Members {
	cur := ms.Get(r.GetMember_ID())
	if cur == nil {
		return ms
	}
	u := proto.Clone(cur).(*pb.Member)
	u.Name = r.GetMemberAttributes().GetName()
	u.ClientURLs = r.GetMemberAttributes().GetClientUrls()
	next := &Members{List: slices.Clone(ms.List), Removed: ms.Removed}
	for i, m := range next.List {
		if m.ID == u.ID {
			next.List[i] = u
		}
	}
	must(b.Set(memberKey(u.ID), mustMarshal(u), nil))
	return next
}

// WriteMembers replaces, in b, the membership of a DB restored from a
// snapshot with the members of the new cluster (removed ids and recorded
// verdicts belong to the old cluster's log and are dropped too).
func WriteMembers(b *pebble.Batch, members []*pb.Member) error {
	if err := b.DeleteRange([]byte{prefixCluster}, []byte{prefixCluster + 1}, nil); err != nil {
		return err
	}
	for _, m := range members {
		if err := b.Set(memberKey(m.ID), mustMarshal(m), nil); err != nil {
			return err
		}
	}
	return nil
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	must(err)
	return b
}

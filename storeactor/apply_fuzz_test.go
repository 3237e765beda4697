package storeactor_test

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/storeactor"
)

// FuzzApply applies raft entries whose data is the fuzz input (each entry
// a uvarint length, then an InternalRaftRequest) to a Store, as a follower
// does: decoding included, in one batch. These are requests no gateway
// checked — another member, another version, a corrupt proposer — and a
// store that fails on one fails on every member, so:
//
//   - the store must not panic (the request would be a poison entry that
//     stops the cluster);
//   - every entry is answered with a response, etcd's error, or
//     Unimplemented for what MetaStore does not support;
//   - the state it leaves is consistent, is what a restarted store loads,
//     and is not changed by the same entries handed over again.
func FuzzApply(f *testing.F) {
	seq := func(reqs ...*pb.InternalRaftRequest) []byte {
		var data []byte
		for _, r := range reqs {
			b, err := proto.Marshal(r)
			if err != nil {
				f.Fatal(err)
			}
			data = append(binary.AppendUvarint(data, uint64(len(b))), b...)
		}
		return data
	}
	f.Add(seq(putReq("a", "1"), putReq("b", "2"), delReq("a", ""), compactReq(2, true), putReq("a", "3")))
	f.Add(seq(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 1}},
		putOpt(&pb.PutRequest{Key: []byte("l"), Lease: 7}), &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 7}}))
	f.Add(seq(txnReq(&pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VERSION, Result: pb.Compare_LESS, TargetUnion: &pb.Compare_Version{Version: 1}}},
		Success: []*pb.RequestOp{opPut("a", "1"), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("b", "\x00"), opGet("a", "", 0)}})},
		Failure: []*pb.RequestOp{{}, opPut("a", "x"), opPut("a", "y")}})))
	f.Add(seq(&pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}},
		&pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: &authpb.Permission{Key: []byte("k")}}},
		&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: "aGFzaA=="}},
		&pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		&pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}},
		&pb.InternalRaftRequest{Header: &pb.RequestHeader{Username: "root", AuthRevision: 4}, Put: &pb.PutRequest{Key: []byte("k")}}))
	f.Add(seq(&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}},
		putReq("refused", ""), &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}}))
	f.Add(seq(&pb.InternalRaftRequest{Put: &pb.PutRequest{}, Range: &pb.RangeRequest{Limit: -1, SortTarget: 9}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var entries []storeactor.Entry
		for len(data) > 0 {
			n, k := binary.Uvarint(data)
			if k <= 0 || n > uint64(len(data)-k) {
				break
			}
			b := data[k : k+int(n)]
			data = data[k+int(n):]
			if len(b) == 0 || proto.Unmarshal(b, new(pb.InternalRaftRequest)) != nil {
				// Empty data is raft's empty entry, which no client waits
				// on; undecodable data stops the member on purpose (a
				// poison entry).
				continue
			}
			entries = append(entries, storeactor.Entry{Index: uint64(len(entries) + 1), Term: 2, Data: b})
		}
		if len(entries) == 0 {
			return
		}
		h := newHarness(t)
		failed := make(chan *actor.SupervisorEvent, 1)
		sub := h.kit.System().EventStream.Subscribe(func(evt any) {
			if ev, ok := evt.(*actor.SupervisorEvent); ok {
				select {
				case failed <- ev:
				default:
				}
			}
		})
		t.Cleanup(func() { h.kit.System().EventStream.Unsubscribe(sub) })
		replies := make([]chan actors.Result, len(entries))
		for i := range entries {
			replies[i] = make(chan actors.Result, 1)
			entries[i].Reply = replies[i]
		}
		h.applyRaw(entries...)
		for i, ch := range replies {
			select {
			case res := <-ch:
				if res.Err != nil && !storeError(res.Err) {
					t.Fatalf("entry %d (%s): %v is not an etcd error", i+1, prototext.Format(decode(entries[i].Data)), res.Err)
				}
				if res.Err == nil && res.Resp == nil {
					t.Fatalf("entry %d (%s): no response", i+1, prototext.Format(decode(entries[i].Data)))
				}
			case ev := <-failed:
				t.Fatalf("the store failed (%v) on %s", ev.Reason, describe(entries))
			case <-time.After(wait):
				t.Fatalf("no answer to entry %d", i+1)
			}
		}
		if got := expectApplied(t, h); got != uint64(len(entries)) {
			t.Fatalf("Applied %d, want %d", got, len(entries))
		}
		if err := h.reader.CheckConsistency(); err != nil {
			t.Fatal(err)
		}
		// Physical compaction runs in steps after the batch; what it
		// removes leaves LiveBytes, so compare once it is done.
		eventually(t, "physical compaction", func() bool { v := h.reader.View(); return v.CompactDone >= v.CompactRev })
		before := *h.reader.View()
		hash := h.hashKV(before.Rev)

		// The same entries again (a replay after a restart) change nothing;
		// an empty entry after them shows they were handled.
		for i := range entries {
			entries[i].Reply = nil
		}
		h.applyRaw(append(entries, storeactor.Entry{Index: uint64(len(entries) + 1), Term: 2})...)
		if got := expectApplied(t, h); got != uint64(len(entries)+1) {
			t.Fatalf("Applied %d after the replay, want %d", got, len(entries)+1)
		}
		h.restart()
		// Another empty entry: the restarted store has started (and
		// published what it loaded) when it answers.
		h.applyRaw(storeactor.Entry{Index: uint64(len(entries) + 2), Term: 2})
		expectApplied(t, h)
		if after := *h.reader.View(); after.Rev != before.Rev || after.CompactRev != before.CompactRev ||
			after.Applied != before.Applied+2 || after.LiveBytes != before.LiveBytes || after.Keys != before.Keys || h.hashKV(before.Rev) != hash {
			t.Fatalf("view %+v after a replay and a restart, %+v before", after, before)
		}
		select {
		case ev := <-failed:
			t.Fatalf("the store failed (%v) on a replay of %s", ev.Reason, describe(entries))
		default:
		}
	})
}

func decode(b []byte) *pb.InternalRaftRequest {
	r := new(pb.InternalRaftRequest)
	_ = proto.Unmarshal(b, r)
	return r
}

func describe(entries []storeactor.Entry) string {
	s := ""
	for _, e := range entries {
		s += prototext.Format(decode(e.Data)) + "; "
	}
	return s
}

// storeError reports whether err is an answer the store may give: an
// rpctypes error, or Unimplemented for a request type it does not apply.
func storeError(err error) bool {
	if status.Code(err) == codes.Unimplemented {
		return true
	}
	var ee rpctypes.EtcdError
	if errors.As(rpctypes.Error(err), &ee) {
		return status.Code(err) == ee.Code()
	}
	return errors.Is(err, rpctypes.ErrGRPCPermissionNotGiven)
}

// hashKV is the store's HashKV at rev: every version visible at or after
// the compaction point, up to rev.
func (h *harness) hashKV(rev int64) storeactor.KVHash {
	h.t.Helper()
	sum, err := h.reader.HashKV(rev)
	if err != nil {
		h.t.Fatal(err)
	}
	return sum
}

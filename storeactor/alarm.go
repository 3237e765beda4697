package storeactor

import (
	"encoding/binary"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Alarms are replicated state like the keys: ACTIVATE and DEACTIVATE are
// raft entries applied here ('x' type(4) member(8) -> empty), so every
// member agrees on them and they survive restarts. While one is active the
// store refuses what etcd refuses: with NOSPACE, writes (Put, Txn with
// writes, LeaseGrant) get "database space exceeded"; with CORRUPT,
// everything applied through raft but alarms and auth gets "corrupt
// cluster". View.NoSpace and View.Corrupt mirror them.

func alarmKey(t pb.AlarmType, member uint64) []byte {
	k := binary.BigEndian.AppendUint32([]byte{prefixAlarm}, uint32(t))
	return binary.BigEndian.AppendUint64(k, member)
}

// alarms lists the active alarms of type t (all of them for NONE), in
// member then type order.
func alarms(r pebble.Reader, t pb.AlarmType) ([]*pb.AlarmMember, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixAlarm}, UpperBound: []byte{prefixAlarm + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*pb.AlarmMember
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 13 {
			return nil, errCorruptRecord
		}
		at := pb.AlarmType(binary.BigEndian.Uint32(k[1:5]))
		if t == pb.AlarmType_NONE || at == t {
			out = append(out, &pb.AlarmMember{Alarm: at, MemberID: binary.BigEndian.Uint64(k[5:13])})
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].MemberID < out[j].MemberID })
	return out, nil
}

func alarmActive(r pebble.Reader, t pb.AlarmType) (bool, error) {
	as, err := alarms(r, t)
	return len(as) > 0, err
}

// applyAlarm applies an AlarmRequest as etcd does: GET lists, ACTIVATE and
// DEACTIVATE answer with the alarm they set or cleared (nothing when there
// was nothing to do), and next's alarm flags follow.
func applyAlarm(b *pebble.Batch, r *pb.AlarmRequest, next *View) *pb.AlarmResponse {
	resp := &pb.AlarmResponse{Header: &pb.ResponseHeader{}}
	m := &pb.AlarmMember{MemberID: r.MemberID, Alarm: r.Alarm}
	switch r.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = mustRead(alarms(b, r.Alarm))
	case pb.AlarmRequest_ACTIVATE:
		if r.Alarm == pb.AlarmType_NONE {
			break
		}
		must(b.Set(alarmKey(r.Alarm, r.MemberID), nil, nil))
		resp.Alarms = []*pb.AlarmMember{m}
	case pb.AlarmRequest_DEACTIVATE:
		_, active, err := getValue(b, alarmKey(r.Alarm, r.MemberID))
		must(err)
		if !active {
			break
		}
		must(b.Delete(alarmKey(r.Alarm, r.MemberID), nil))
		resp.Alarms = []*pb.AlarmMember{m}
	}
	next.NoSpace = mustRead(alarmActive(b, pb.AlarmType_NOSPACE))
	next.Corrupt = mustRead(alarmActive(b, pb.AlarmType_CORRUPT))
	return resp
}

// refusedByAlarm is the error an active alarm makes r fail with, if any.
func refusedByAlarm(v *View, r *pb.InternalRaftRequest) error {
	if v.Corrupt && (r.Put != nil || r.Range != nil || r.DeleteRange != nil || r.Txn != nil ||
		r.Compaction != nil || r.LeaseGrant != nil || r.LeaseRevoke != nil) {
		return rpctypes.ErrGRPCCorrupt
	}
	if v.NoSpace && (r.Put != nil || r.LeaseGrant != nil || (r.Txn != nil && !IsTxnReadOnly(r.Txn))) {
		return rpctypes.ErrGRPCNoSpace
	}
	return nil
}

// Alarms lists the active alarms (Maintenance.Status and the health
// checks report them), or why they could not be read.
func (r *Reader) Alarms() ([]*pb.AlarmMember, error) {
	as, err := alarms(r.db, pb.AlarmType_NONE)
	return as, r.readError("alarms", err)
}

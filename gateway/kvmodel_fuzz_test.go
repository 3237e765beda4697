package gateway

import (
	"bytes"
	"maps"
	"math"
	"slices"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// kvModel is the oracle the KV fuzz targets compare MetaStore with: the key
// space at every revision, kept as plain maps, and etcd v3.7.3's rules for
// Range, Put, DeleteRange and Txn (server/etcdserver/txn) written out
// directly over them. It is slow and obviously right for the few keys and
// revisions of a fuzz world.
type kvModel struct {
	states  []map[string]*mvccpb.KeyValue // states[rev]: the live keys at rev; states[0] is unused
	events  [][]*mvccpb.Event             // events[rev]: the changes that made rev, in order
	compact int64                         // the compaction revision (-1: none)
	leases  map[int64]bool
}

func newKVModel() *kvModel {
	return &kvModel{states: []map[string]*mvccpb.KeyValue{nil, {}}, events: make([][]*mvccpb.Event, 2), compact: -1, leases: map[int64]bool{}}
}

func (m *kvModel) rev() int64 { return int64(len(m.states) - 1) }

// span is a request's key range as etcd reads it: end empty is key alone,
// "\x00" every key from key on.
type span struct{ key, end []byte }

func (s span) holds(k string) bool {
	switch {
	case len(s.end) == 0:
		return k == string(s.key)
	case len(s.end) == 1 && s.end[0] == 0:
		return k >= string(s.key)
	}
	return k >= string(s.key) && k < string(s.end)
}

// in returns the KeyValues of state in s, in key order, as copies.
func in(state map[string]*mvccpb.KeyValue, s span) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	for _, k := range slices.Sorted(maps.Keys(state)) {
		if s.holds(k) {
			out = append(out, proto.Clone(state[k]).(*mvccpb.KeyValue))
		}
	}
	return out
}

// txnState is a write in progress: the revision it started at, the state
// it has made so far and how many changes it made (etcd's txnWrite).
type txnState struct {
	m       *kvModel
	begin   int64
	state   map[string]*mvccpb.KeyValue
	changes int
	events  []*mvccpb.Event
}

func (m *kvModel) begin() *txnState {
	return &txnState{m: m, begin: m.rev(), state: maps.Clone(m.states[m.rev()])}
}

// rev is what the txn's reads see: its own writes are at begin+1.
func (t *txnState) rev() int64 {
	if t.changes > 0 {
		return t.begin + 1
	}
	return t.begin
}

// commit makes the txn's writes the next revision, if it made any.
func (t *txnState) commit() {
	if t.changes > 0 {
		t.m.states = append(t.m.states, t.state)
		t.m.events = append(t.m.events, t.events)
	}
}

// view is the state at rev as the txn sees it.
func (t *txnState) view(rev int64) map[string]*mvccpb.KeyValue {
	if rev == t.rev() {
		return t.state
	}
	return t.m.states[rev]
}

// rangeAt is etcd's executeRange (txn/range.go) at the txn's revision.
func (t *txnState) rangeAt(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	cur := t.rev()
	rev := r.Revision
	switch {
	case rev > cur:
		return nil, rpctypes.ErrGRPCFutureRev
	case rev <= 0:
		rev = cur
	case rev < t.m.compact:
		return nil, rpctypes.ErrGRPCCompacted
	}
	kvs := in(t.view(rev), span{r.Key, r.RangeEnd})
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: cur}, Count: int64(len(kvs))}
	if r.CountOnly {
		return resp, nil
	}
	if limit := etcdRangeLimit(r); limit > 0 && int64(len(kvs)) > limit {
		kvs = kvs[:limit] // read before filtering and sorting, as etcd's index does
	}
	if r.KeysOnly && r.SortTarget != pb.RangeRequest_VALUE {
		for _, kv := range kvs { // etcd's fast keys-only read: from its index, no lease either
			kv.Value, kv.Lease = nil, 0
		}
	}
	kvs = slices.DeleteFunc(kvs, func(kv *mvccpb.KeyValue) bool {
		return (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
			(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
			(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
			(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision)
	})
	sortLikeEtcd(kvs, r)
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs, resp.More = kvs[:r.Limit], true
	}
	for _, kv := range kvs {
		if r.KeysOnly {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

// etcdRangeLimit is etcd's rangeLimit: how many keys its index reads. A
// sort target with order NONE counts as the default ordering there, so the
// keys are cut to limit+1 in key order before they are sorted (as etcd).
func etcdRangeLimit(r *pb.RangeRequest) int64 {
	limit := r.Limit
	defaultOrder := r.SortOrder == pb.RangeRequest_NONE || (r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND)
	if !defaultOrder || r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		limit = 0
	}
	if limit > 0 && limit < math.MaxInt64 {
		limit++
	}
	return limit
}

// sortLikeEtcd is etcd's sortRangeResults: sort.Sort over the key-ordered
// KVs with the same comparisons, so that ties land where etcd's land.
func sortLikeEtcd(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) {
	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if order == pb.RangeRequest_NONE || (r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND) {
		return
	}
	var less func(a, b *mvccpb.KeyValue) bool
	switch r.SortTarget {
	case pb.RangeRequest_KEY:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
	case pb.RangeRequest_VERSION:
		less = func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }
	case pb.RangeRequest_CREATE:
		less = func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
	case pb.RangeRequest_MOD:
		less = func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }
	case pb.RangeRequest_VALUE:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	}
	s := kvLess{kvs, less}
	switch order {
	case pb.RangeRequest_ASCEND:
		sort.Sort(s)
	case pb.RangeRequest_DESCEND:
		sort.Sort(sort.Reverse(s))
	}
}

type kvLess struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (s kvLess) Len() int           { return len(s.kvs) }
func (s kvLess) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s kvLess) Less(i, j int) bool { return s.less(s.kvs[i], s.kvs[j]) }

// checkPut is etcd's checkPut against the state before the txn: the lease
// must exist, and ignore_value/ignore_lease need a key to take them from.
func (t *txnState) checkPut(p *pb.PutRequest) error {
	if p.Lease != 0 && !t.m.leases[p.Lease] {
		return rpctypes.ErrGRPCLeaseNotFound
	}
	if (p.IgnoreValue || p.IgnoreLease) && t.m.states[t.begin][string(p.Key)] == nil {
		return rpctypes.ErrGRPCKeyNotFound
	}
	return nil
}

func (t *txnState) put(p *pb.PutRequest) *pb.PutResponse {
	prev := t.state[string(p.Key)]
	kv := &mvccpb.KeyValue{Key: p.Key, Value: p.Value, Lease: p.Lease, ModRevision: t.begin + 1, CreateRevision: t.begin + 1, Version: 1}
	if prev != nil {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
		if p.IgnoreValue {
			kv.Value = prev.Value
		}
		if p.IgnoreLease {
			kv.Lease = prev.Lease
		}
	}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: t.begin + 1}}
	if p.PrevKv && prev != nil {
		resp.PrevKv = proto.Clone(prev).(*mvccpb.KeyValue)
	}
	t.state[string(p.Key)] = kv
	t.changes++
	t.events = append(t.events, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: proto.Clone(kv).(*mvccpb.KeyValue)})
	return resp
}

func (t *txnState) deleteRange(d *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	kvs := in(t.state, span{d.Key, d.RangeEnd})
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}, Deleted: int64(len(kvs))}
	if d.PrevKv {
		resp.PrevKvs = kvs
	}
	for _, kv := range kvs {
		delete(t.state, string(kv.Key))
		t.events = append(t.events, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: t.begin + 1}})
	}
	t.changes += len(kvs)
	resp.Header.Revision = t.rev()
	return resp
}

// Range, Put and DeleteRange as single requests.

func (m *kvModel) rangeReq(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	return m.begin().rangeAt(r)
}

func (m *kvModel) putReq(p *pb.PutRequest) (*pb.PutResponse, error) {
	t := m.begin()
	if err := t.checkPut(p); err != nil {
		return nil, err
	}
	resp := t.put(p)
	t.commit()
	return resp, nil
}

func (m *kvModel) deleteReq(d *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	t := m.begin()
	resp := t.deleteRange(d)
	t.commit()
	return resp
}

// revokeReq is etcd's lease revoke: every key attached is deleted, in
// one revision, and the lease is gone.
func (m *kvModel) revokeReq(id int64) (*pb.LeaseRevokeResponse, error) {
	if !m.leases[id] {
		return nil, rpctypes.ErrGRPCLeaseNotFound
	}
	t := m.begin()
	for _, kv := range in(t.state, span{[]byte{0}, []byte{0}}) {
		if kv.Lease == id {
			t.deleteRange(&pb.DeleteRangeRequest{Key: kv.Key})
		}
	}
	delete(m.leases, id)
	t.commit()
	return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: m.rev()}}, nil
}

// attached lists the keys attached to lease id, in key order.
func (m *kvModel) attached(id int64) [][]byte {
	var keys [][]byte
	for _, kv := range in(m.states[m.rev()], span{[]byte{0}, []byte{0}}) {
		if kv.Lease == id {
			keys = append(keys, kv.Key)
		}
	}
	return keys
}

// txnReq is etcd's Txn (txn/txn.go): the compares choose a path through
// the nested txns, the ops on it are checked against the state before the
// txn, then run in order, each seeing the writes before it.
func (m *kvModel) txnReq(rt *pb.TxnRequest) (*pb.TxnResponse, error) {
	t := m.begin()
	path := t.compareToPath(rt)
	if _, err := t.checkTxn(rt, path); err != nil {
		return nil, err
	}
	resp, _ := t.execTxn(rt, path)
	resp.Header = &pb.ResponseHeader{Revision: t.rev()}
	t.commit()
	return resp, nil
}

func (t *txnState) compareToPath(rt *pb.TxnRequest) []bool {
	ok := true
	for _, c := range rt.Compare {
		if !t.compare(c) {
			ok = false
			break
		}
	}
	path := []bool{ok}
	for _, op := range branch(rt, ok) {
		if nt := op.GetRequestTxn(); nt != nil {
			path = append(path, t.compareToPath(nt)...)
		}
	}
	return path
}

func branch(rt *pb.TxnRequest, succeeded bool) []*pb.RequestOp {
	if succeeded {
		return rt.Success
	}
	return rt.Failure
}

// compare is etcd's applyCompare: every key in the range must satisfy it;
// no key compares as a zero KeyValue, except that a value compare fails.
func (t *txnState) compare(c *pb.Compare) bool {
	kvs := in(t.state, span{c.Key, c.RangeEnd})
	if len(kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		kvs = []*mvccpb.KeyValue{{}}
	}
	for _, kv := range kvs {
		var r int
		switch c.Target {
		case pb.Compare_VALUE:
			r = bytes.Compare(kv.Value, c.GetValue())
		case pb.Compare_CREATE:
			r = cmpInt(kv.CreateRevision, c.GetCreateRevision())
		case pb.Compare_MOD:
			r = cmpInt(kv.ModRevision, c.GetModRevision())
		case pb.Compare_VERSION:
			r = cmpInt(kv.Version, c.GetVersion())
		case pb.Compare_LEASE:
			r = cmpInt(kv.Lease, c.GetLease())
		}
		holds := true
		switch c.Result {
		case pb.Compare_EQUAL:
			holds = r == 0
		case pb.Compare_NOT_EQUAL:
			holds = r != 0
		case pb.Compare_GREATER:
			holds = r > 0
		case pb.Compare_LESS:
			holds = r < 0
		}
		if !holds {
			return false
		}
	}
	return true
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkTxn is etcd's checkTxn over the ops on the path; it returns how
// many path entries (nested txns) it consumed. One deliberate difference,
// MetaStore's: a put with ignore_value or ignore_lease of a key that a
// delete earlier on the path removes fails with "key not found" (etcd
// crashes on it).
func (t *txnState) checkTxn(rt *pb.TxnRequest, path []bool) (int, error) {
	dels := new([]span)
	return t.checkOps(rt, path, dels)
}

func (t *txnState) checkOps(rt *pb.TxnRequest, path []bool, dels *[]span) (int, error) {
	n := 0
	for _, op := range branch(rt, path[0]) {
		var err error
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			switch r := v.RequestRange; {
			case r.Revision == 0:
			case r.Revision > t.begin:
				err = rpctypes.ErrGRPCFutureRev
			case r.Revision < t.m.compact:
				err = rpctypes.ErrGRPCCompacted
			}
		case *pb.RequestOp_RequestPut:
			p := v.RequestPut
			err = t.checkPut(p)
			if err == nil && (p.IgnoreValue || p.IgnoreLease) && slices.ContainsFunc(*dels, func(s span) bool { return s.holds(string(p.Key)) }) {
				err = rpctypes.ErrGRPCKeyNotFound
			}
		case *pb.RequestOp_RequestDeleteRange:
			*dels = append(*dels, span{v.RequestDeleteRange.Key, v.RequestDeleteRange.RangeEnd})
		case *pb.RequestOp_RequestTxn:
			var sub int
			sub, err = t.checkOps(v.RequestTxn, path[1:], dels)
			n += sub + 1
			path = path[sub+1:]
		}
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// execTxn runs the ops on the path; a nested txn's response has an empty
// header, as etcd's.
func (t *txnState) execTxn(rt *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	ops := branch(rt, path[0])
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: path[0], Responses: make([]*pb.ResponseOp, len(ops))}
	n := 0
	for i, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			r, err := t.rangeAt(v.RequestRange)
			if err != nil {
				panic(err) // checkTxn let it through
			}
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: r}}
		case *pb.RequestOp_RequestPut:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: t.put(v.RequestPut)}}
		case *pb.RequestOp_RequestDeleteRange:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: t.deleteRange(v.RequestDeleteRange)}}
		case *pb.RequestOp_RequestTxn:
			sub, subN := t.execTxn(v.RequestTxn, path[1:])
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
			n += subN + 1
			path = path[subN+1:]
		}
	}
	return resp, n
}

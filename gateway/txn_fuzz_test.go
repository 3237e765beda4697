package gateway

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/pkg/v3/adt"
	"google.golang.org/protobuf/proto"
)

// validTxn is etcd's v3rpc check of a txn: op counts and every op at every
// level (checkTxnRequest), then the duplicate-key rule, with etcd's own
// interval tree (etcdIntervals).
func validTxn(r *pb.TxnRequest, maxTxnOps int) error {
	if err := validTxnOps(r, maxTxnOps); err != nil {
		return err
	}
	if _, _, err := etcdIntervals(r.Success); err != nil {
		return err
	}
	_, _, err := etcdIntervals(r.Failure)
	return err
}

func validTxnOps(r *pb.TxnRequest, maxTxnOps int) error {
	opc := max(len(r.Compare), len(r.Success), len(r.Failure))
	if opc > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, u := range ops {
			var err error
			switch v := u.Request.(type) {
			case *pb.RequestOp_RequestRange:
				err = validRange(v.RequestRange)
			case *pb.RequestOp_RequestPut:
				err = validPut(v.RequestPut)
			case *pb.RequestOp_RequestDeleteRange:
				err = validDelete(v.RequestDeleteRange)
			case *pb.RequestOp_RequestTxn:
				err = validTxnOps(v.RequestTxn, maxTxnOps-opc)
			default:
				err = rpctypes.ErrGRPCKeyNotFound
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// etcdIntervals is etcd's checkIntervals (v3rpc/key.go) on its adt
// interval tree: no key put twice, or put and deleted, on a path that can
// run together.
func etcdIntervals(reqs []*pb.RequestOp) (map[string]struct{}, adt.IntervalTree, error) {
	dels := adt.NewIntervalTree()
	for _, req := range reqs {
		d := req.GetRequestDeleteRange()
		if d == nil {
			continue
		}
		iv := adt.NewStringAffinePoint(string(d.Key))
		if len(d.RangeEnd) != 0 {
			iv = adt.NewStringAffineInterval(string(d.Key), string(d.RangeEnd))
		}
		dels.Insert(iv, struct{}{})
	}
	puts := map[string]struct{}{}
	for _, req := range reqs {
		t := req.GetRequestTxn()
		if t == nil {
			continue
		}
		putsThen, delsThen, err := etcdIntervals(t.Success)
		if err != nil {
			return nil, dels, err
		}
		putsElse, delsElse, err := etcdIntervals(t.Failure)
		if err != nil {
			return nil, dels, err
		}
		for k := range putsThen {
			if _, ok := puts[k]; ok || dels.Intersects(adt.NewStringAffinePoint(k)) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, ok := puts[k]; ok {
				if _, then := putsThen[k]; !then {
					return nil, dels, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if dels.Intersects(adt.NewStringAffinePoint(k)) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels.Union(delsThen, adt.NewStringAffineInterval("\x00", ""))
		dels.Union(delsElse, adt.NewStringAffineInterval("\x00", ""))
	}
	for _, req := range reqs {
		p := req.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, ok := puts[k]; ok || dels.Intersects(adt.NewStringAffinePoint(k)) {
			return nil, dels, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}

// Txn op builders for the seeds.

func opRange(k, end string, rev int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k), RangeEnd: bytesOrNil(end), Revision: rev}}}
}

func opPut(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func opDel(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: bytesOrNil(end), PrevKv: true}}}
}

func opTxn(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func cmpMod(k string, r pb.Compare_CompareResult, rev int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_MOD, Result: r, TargetUnion: &pb.Compare_ModRevision{ModRevision: rev}}
}

func FuzzTxn(f *testing.F) {
	ignoreValue := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("c/1"), IgnoreValue: true}}}
	for _, r := range []*pb.TxnRequest{
		// read-only, both branches
		{Compare: []*pb.Compare{cmpMod("a", pb.Compare_EQUAL, 4)}, Success: []*pb.RequestOp{opRange("a", "z", 0)}, Failure: []*pb.RequestOp{opRange("a", "", 3)}},
		// writes that read their own writes
		{Success: []*pb.RequestOp{opPut("x", "1"), opRange("x", "", 0), opDel("a", ""), opRange("\x00", "\x00", 0)}},
		// nested txns choosing different branches; then/else may put the same key
		{Compare: []*pb.Compare{{Key: []byte("c/1"), Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Value{Value: []byte("z")}}},
			Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{
				Compare: []*pb.Compare{{Key: []byte("a"), RangeEnd: []byte("c"), Target: pb.Compare_VERSION, Result: pb.Compare_GREATER}},
				Success: []*pb.RequestOp{opPut("n", "then")}, Failure: []*pb.RequestOp{opPut("n", "else")}}),
				opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("b", "c")}})}},
		// a from-key delete then ignore_value of a key it removed
		{Success: []*pb.RequestOp{opDel("c", "\x00"), ignoreValue}},
		// compares on absent keys, lease and create targets
		{Compare: []*pb.Compare{{Key: []byte("nope"), Target: pb.Compare_LEASE}, {Key: []byte("c/1"), Target: pb.Compare_CREATE, Result: pb.Compare_LESS, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 13}}},
			Success: []*pb.RequestOp{opRange("b", "", 9)}, Failure: []*pb.RequestOp{opPut("f", "")}},
		// refused: duplicate put, put inside a deleted range, future and compacted revisions, empty op
		{Success: []*pb.RequestOp{opPut("a", "1"), opPut("a", "2")}},
		{Success: []*pb.RequestOp{opDel("a", "c"), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("b", "1")}})}},
		{Success: []*pb.RequestOp{opRange("a", "", 13)}},
		{Failure: []*pb.RequestOp{opRange("a", "", 2)}, Compare: []*pb.Compare{cmpMod("a", pb.Compare_NOT_EQUAL, 4)}},
		{Success: []*pb.RequestOp{{}}},
	} {
		f.Add(mustMarshal(f, r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(pb.TxnRequest)
		if proto.Unmarshal(data, r) != nil {
			return
		}
		w := newWorld(t)
		m := seedKV(w)
		var want *pb.TxnResponse
		wantErr := validTxn(r, fuzzMaxTxnOps)
		if wantErr == nil {
			if want, wantErr = m.txnReq(r); wantErr == nil {
				want.Header = header(m.rev())
			}
		}
		got, err := w.kv().Txn(w.ctx, proto.Clone(r).(*pb.TxnRequest))
		expect(t, r, got, err, want, wantErr)
		w.sameKeySpace(m)
		w.noFailures()
	})
}

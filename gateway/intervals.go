package gateway

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// checkIntervals enforces etcd's duplicate-key rule for a txn branch: no
// key may be put twice, nor put and deleted, on any path that can run
// together. Puts in the then- and else-branches of one nested txn may name
// the same key (only one branch runs). It returns the keys put and the
// ranges deleted so the caller can check siblings.
func checkIntervals(reqs []*pb.RequestOp) (map[string]struct{}, deletes, error) {
	var dels deletes
	for _, req := range reqs {
		if d := req.GetRequestDeleteRange(); d != nil {
			dels = append(dels, interval{begin: d.Key, end: d.RangeEnd})
		}
	}
	puts := map[string]struct{}{}
	for _, req := range reqs {
		t := req.GetRequestTxn()
		if t == nil {
			continue
		}
		putsThen, delsThen, err := checkIntervals(t.Success)
		if err != nil {
			return nil, dels, err
		}
		putsElse, delsElse, err := checkIntervals(t.Failure)
		if err != nil {
			return nil, dels, err
		}
		for k := range putsThen {
			if _, ok := puts[k]; ok || dels.contains([]byte(k)) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, ok := puts[k]; ok {
				if _, isSafe := putsThen[k]; !isSafe {
					return nil, dels, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if dels.contains([]byte(k)) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, req := range reqs {
		p := req.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, ok := puts[k]; ok || dels.contains(p.Key) {
			return nil, dels, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}

// interval is a deleted key range: begin alone when end is empty, else
// [begin, end) compared literally. Like etcd's check, a range_end of "\x00"
// ("every key from begin on") is taken literally here and so conflicts with
// nothing: etcd accepts such txns and so must we.
type interval struct{ begin, end []byte }

type deletes []interval

func (ds deletes) contains(k []byte) bool {
	for _, d := range ds {
		switch {
		case len(d.end) == 0:
			if bytes.Equal(k, d.begin) {
				return true
			}
		default:
			if bytes.Compare(k, d.begin) >= 0 && bytes.Compare(k, d.end) < 0 {
				return true
			}
		}
	}
	return false
}

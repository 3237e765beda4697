package storeactor

import (
	"bytes"
	"cmp"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// applyTxn runs a Txn the way etcd does: evaluate every compare on the
// chosen paths first (the path is fixed before anything is written), check
// the ops on those paths (revisions, ignore_value/ignore_lease targets,
// leases), and only then execute. A check failure fails the whole txn
// and writes nothing.
//
// For the metrics (tw.ops) it is etcd's one read txn (compares and checks)
// then, when it writes, one write txn (its ops); a read-only txn is one.
func (tw *writeTxn) applyTxn(rt *pb.TxnRequest, compactRev int64) (*pb.TxnResponse, error) {
	path, err := tw.compareToPath(rt)
	if err != nil {
		tw.ops.end()
		return nil, tw.readFailed(err)
	}
	if _, err := tw.checkTxn(rt, path, compactRev); err != nil {
		tw.ops.end()
		return nil, err
	}
	if !IsTxnReadOnly(rt) {
		tw.ops.end()
	}
	resp, _ := newTxnResp(rt, path)
	tw.executeTxn(rt, path, resp, compactRev)
	tw.ops.end()
	resp.Header.Revision = tw.rev()
	return resp, tw.readErr
}

// compareToPath evaluates the compares of rt and of the nested txns on
// the path they choose; ops counts each compare evaluated as a range, as
// etcd's txn does. A compare whose read fails fails the txn: taking the
// failure branch instead would answer (or apply) what no member decided.
func (tw *writeTxn) compareToPath(rt *pb.TxnRequest) ([]bool, error) {
	ok, err := tw.applyCompares(rt.Compare)
	if err != nil {
		return nil, err
	}
	path := []bool{ok}
	reqs := rt.Success
	if !ok {
		reqs = rt.Failure
	}
	for _, op := range reqs {
		if t, isTxn := op.Request.(*pb.RequestOp_RequestTxn); isTxn && t.RequestTxn != nil {
			sub, err := tw.compareToPath(t.RequestTxn)
			if err != nil {
				return nil, err
			}
			path = append(path, sub...)
		}
	}
	return path, nil
}

func (tw *writeTxn) applyCompares(cmps []*pb.Compare) (bool, error) {
	for _, c := range cmps {
		tw.ops.rng(1)
		if ok, err := tw.applyCompare(c); !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

// applyCompare holds when every key in the compare's range satisfies it.
// An absent key compares as a zero KeyValue, except for VALUE targets,
// which an absent key never satisfies.
//
// In the apply batch, a single key's compare on anything but its value
// takes the key's newest version from latestMeta (the store's cache, or
// one lookup of its 'l' entry that fills it): Kubernetes writes through
// txns that compare one key's mod revision and then put or delete that
// key, and a full read of the key (its 'l' entry, then its value in 'k')
// followed by the put's own lookup made such a txn cost three times a
// put (BenchmarkTxnApply). Elsewhere (read-only txns, compares over a
// range) a compare reads values only when it needs them.
func (tw *writeTxn) applyCompare(c *pb.Compare) (bool, error) {
	if tw.cache != nil && c.Target != pb.Compare_VALUE && c.RangeEnd == nil {
		m := tw.latestMeta(c.Key)
		kv := &mvccpb.KeyValue{}
		if !m.tombstone {
			kv = &mvccpb.KeyValue{ModRevision: m.main, CreateRevision: m.create, Version: m.version, Lease: m.lease}
		}
		return compareKV(c, kv), nil
	}
	// A keys-only read has no value and no lease.
	keysOnly := c.Target == pb.Compare_MOD || c.Target == pb.Compare_CREATE || c.Target == pb.Compare_VERSION
	rr, err := rangeKeys(tw.r, c.Key, mkGteRange(c.RangeEnd), tw.rev(), 0, false, keysOnly, true, nil)
	if err != nil {
		return false, err
	}
	if len(rr.kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false, nil
		}
		return compareKV(c, &mvccpb.KeyValue{}), nil
	}
	for _, kv := range rr.kvs {
		if !compareKV(c, kv) {
			return false, nil
		}
	}
	return true, nil
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmp.Compare(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmp.Compare(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmp.Compare(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmp.Compare(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

// checkTxn validates the ops on the chosen path against the state before
// the txn; it returns how many nested txns it walked so callers can step
// over their path entries.
func (tw *writeTxn) checkTxn(rt *pb.TxnRequest, path []bool, compactRev int64) (int, error) {
	n := 0
	ops := rt.Success
	if !path[0] {
		ops = rt.Failure
	}
	for _, op := range ops {
		var err error
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			r := v.RequestRange
			err = checkTxnRangeRev(r.Revision, tw.rev(), compactRev)
			tw.pathRevs = append(tw.pathRevs, r.Revision)
		case *pb.RequestOp_RequestDeleteRange:
			d := v.RequestDeleteRange
			tw.pathDels = append(tw.pathDels, keyRange{d.Key, mkGteRange(d.RangeEnd)})
		case *pb.RequestOp_RequestPut:
			if p := v.RequestPut; p.PrevKv || p.IgnoreValue || p.IgnoreLease {
				tw.ops.rng(1) // etcd's check reads the previous version
			}
			err = tw.checkPut(v.RequestPut)
			if p := v.RequestPut; err == nil && (p.IgnoreValue || p.IgnoreLease) && tw.deletedOnPath(p.Key) {
				// etcd's duplicate-key check lets a from-key delete and a
				// later put of a key it removes share a txn; with
				// ignore_value/ignore_lease that put has nothing to keep
				// (etcd itself crashes here). Fail the txn up front instead.
				err = rpctypes.ErrGRPCKeyNotFound
			}
		case *pb.RequestOp_RequestTxn:
			var sub int
			sub, err = tw.checkTxn(v.RequestTxn, path[1:], compactRev)
			n += sub + 1
			path = path[sub+1:]
		}
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// checkTxnRangeRev is etcd's checkRange for a range inside a txn. Unlike a
// plain Range (checkRev), which reads any revision <= 0 at the current one,
// a txn refuses a revision below the compaction point, negative ones
// included: etcd answers "compacted" for -2 on a store never compacted, and
// for any negative revision once one was.
func checkTxnRangeRev(rev, curRev, compactRev int64) error {
	switch {
	case rev == 0:
		return nil
	case rev > curRev:
		return rpctypes.ErrGRPCFutureRev
	case rev < compactRev:
		return rpctypes.ErrGRPCCompacted
	}
	return nil
}

// keyRange is a DeleteRange's span: end nil for one key, empty for every
// key from key on.
type keyRange struct{ key, end []byte }

// deletedOnPath reports whether a delete checked earlier on the txn's path
// covers k.
func (tw *writeTxn) deletedOnPath(k []byte) bool {
	for _, d := range tw.pathDels {
		switch {
		case d.end == nil:
			if bytes.Equal(k, d.key) {
				return true
			}
		case len(d.end) == 0:
			if bytes.Compare(k, d.key) >= 0 {
				return true
			}
		default:
			if bytes.Compare(k, d.key) >= 0 && bytes.Compare(k, d.end) < 0 {
				return true
			}
		}
	}
	return false
}

func (tw *writeTxn) checkPut(p *pb.PutRequest) error {
	if p.Lease != 0 && !leaseExists(tw.r, p.Lease) {
		return rpctypes.ErrGRPCLeaseNotFound
	}
	if p.IgnoreValue || p.IgnoreLease {
		if tw.getPrevKV(p) == nil {
			return rpctypes.ErrGRPCKeyNotFound
		}
	}
	return nil
}

// newTxnResp lays out the response tree for the chosen path before
// execution fills it in.
func newTxnResp(rt *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	ops := rt.Success
	if !path[0] {
		ops = rt.Failure
	}
	n := 0
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: path[0], Responses: make([]*pb.ResponseOp, len(ops))}
	for i, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{}}
		case *pb.RequestOp_RequestPut:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{}}
		case *pb.RequestOp_RequestDeleteRange:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{}}
		case *pb.RequestOp_RequestTxn:
			sub, subN := newTxnResp(v.RequestTxn, path[1:])
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
			path = path[1+subN:]
			n += subN + 1
		}
	}
	return resp, n
}

func (tw *writeTxn) executeTxn(rt *pb.TxnRequest, path []bool, resp *pb.TxnResponse, compactRev int64) int {
	ops := rt.Success
	if !path[0] {
		ops = rt.Failure
	}
	n := 0
	for i, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			tw.ops.rng(1)
			if tw.counts != nil {
				tw.counts.flush() // the range may count from the batch's index
			}
			r, err := tw.executeRange(v.RequestRange, compactRev)
			if err != nil {
				// checkTxn let through only ranges that can run: this is
				// the store failing to read, (a read-only txn overtaken
				// by a compaction) errVersionGone, which Reader.Txn runs
				// again for, or the answer of a read-only txn's charge.
				if tw.readErr == nil {
					tw.readErr = tw.readFailed(err)
				}
				continue
			}
			resp.Responses[i].Response.(*pb.ResponseOp_ResponseRange).ResponseRange = r
		case *pb.RequestOp_RequestPut:
			resp.Responses[i].Response.(*pb.ResponseOp_ResponsePut).ResponsePut = tw.applyPut(v.RequestPut)
		case *pb.RequestOp_RequestDeleteRange:
			resp.Responses[i].Response.(*pb.ResponseOp_ResponseDeleteRange).ResponseDeleteRange = tw.applyDeleteRange(v.RequestDeleteRange)
		case *pb.RequestOp_RequestTxn:
			sub := resp.Responses[i].Response.(*pb.ResponseOp_ResponseTxn).ResponseTxn
			subN := tw.executeTxn(v.RequestTxn, path[1:], sub, compactRev)
			// As in etcd, a nested txn's header stays empty: only the
			// outermost response carries the revision.
			n += subN + 1
			path = path[subN+1:]
		}
	}
	return n
}

// executeRange runs one of the txn's ranges at the txn's revision. A
// read-only txn's charge is told what its ranges have built in all: this
// one's key-values as it reads them (ranges of more than one key), or
// once it has read them (a single key, which executeRange does not
// charge).
func (tw *writeTxn) executeRange(r *pb.RangeRequest, compactRev int64) (*pb.RangeResponse, error) {
	if tw.charge == nil {
		return executeRange(tw.r, nil, r, tw.rev(), compactRev, true, nil)
	}
	var built int64
	resp, err := executeRange(tw.r, nil, r, tw.rev(), compactRev, true, func(n int64) error {
		built = n
		return tw.charge(tw.charged + n)
	})
	if err != nil {
		return nil, err
	}
	if built == 0 {
		for _, kv := range resp.Kvs {
			built += int64(KVFieldSize(kv))
		}
	}
	tw.charged += built
	return resp, tw.charge(tw.charged)
}

package storeactor

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/authactor"
)

// Reader serves reads concurrently on the caller's goroutine. It holds only
// the DB handle and the View cell the Store publishes; any number of
// goroutines may use one Reader.
type Reader struct {
	db      *pebble.DB
	view    *viewRef
	auth    *atomic.Pointer[authactor.State]
	members *membersRef
	reads   *readCache                   // hot keys' newest versions (readcache.go)
	quota   atomic.Int64                 // the space quota now (quota.go); set by New, then by the Store (SetQuota)
	errLog  atomic.Pointer[readErrorLog] // nil: read errors are only counted (SetLogger)
}

// View returns the latest published store state.
func (r *Reader) View() *View { return r.view.Load() }

// Range answers a RangeRequest at the current published revision.
//
// Consistency: the revision is fixed before the read, and reads at a fixed
// revision ignore newer writes. A compaction published while the read runs
// may delete versions it needs; so the compaction point is checked again
// afterwards. A read at an explicit revision that a compaction overtook is
// answered as compacted (as it would be a moment later anyway); a read at
// the current revision is simply done again on the newer view. So is any
// read a snapshot install overlapped (viewRef).
func (r *Reader) Range(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	return r.rangeRead(req, true, nil)
}

// RangeCharged is Range telling charge what it builds as it reads (see
// Charge): the gateway bounds the bytes of responses in flight with it.
func (r *Reader) RangeCharged(req *pb.RangeRequest, charge Charge) (*pb.RangeResponse, error) {
	return r.rangeRead(req, true, charge)
}

// RangeChunk is Range for one chunk of a RangeStream: it reads no further
// than req.Limit keys plus one (so More is exact), and the response's
// Count is how many it read rather than the range's total (etcd's range
// with WithTotalCount off). A stream's chunks so cost what they return:
// memory and time stay bounded by the chunk, however large the range.
func (r *Reader) RangeChunk(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	return r.rangeRead(req, false, nil)
}

func (r *Reader) rangeRead(req *pb.RangeRequest, withTotal bool, charge Charge) (resp *pb.RangeResponse, err error) {
	rangeCounter.Inc()
	defer func(start time.Time) {
		observeRange(err == nil, start)
		r.readError("range", err)
	}(time.Now())
	for {
		seq := r.view.readBegin()
		v := r.view.Load()
		resp, err := executeRange(r.db, r.reads, req, v.Rev, v.CompactRev, withTotal, charge)
		if !r.view.readValid(seq) {
			continue
		}
		if err != nil && !errors.Is(err, errVersionGone) {
			return nil, err
		}
		retry, cerr := r.overtaken(req.Revision, v.Rev)
		switch {
		case cerr != nil:
			return nil, cerr
		case retry:
			continue
		case err != nil:
			return nil, err // a version gone without a compaction: corruption
		}
		return resp, nil
	}
}

// Txn runs a read-only txn (no put, delete or nested writes) without going
// through raft, as etcd does.
func (r *Reader) Txn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	return r.TxnCharged(req, nil)
}

// TxnCharged is Txn telling charge what its ranges build, in all, as it
// reads (see Charge), as RangeCharged does for one range.
func (r *Reader) TxnCharged(req *pb.TxnRequest, charge Charge) (_ *pb.TxnResponse, err error) {
	if !IsTxnReadOnly(req) {
		return nil, errTxnWrites
	}
	defer func() { r.readError("txn", err) }()
	for {
		seq := r.view.readBegin()
		v := r.view.Load()
		tw := &writeTxn{r: r.db, beginRev: v.Rev, charge: charge}
		resp, err := tw.applyTxn(req, v.CompactRev)
		if !r.view.readValid(seq) {
			continue
		}
		if err != nil && !errors.Is(err, errVersionGone) {
			tw.ops.report()
			return nil, err
		}
		retry := false
		// Compares read at the current revision (0); ranges on the path
		// taken read where they ask. Ranges on the other branch never ran.
		for _, rev := range append(tw.pathRevs, 0) {
			again, err := r.overtaken(rev, v.Rev)
			if err != nil {
				return nil, err
			}
			retry = retry || again
		}
		switch {
		case retry:
			continue
		case err != nil:
			return nil, err // a version gone without a compaction: corruption
		}
		tw.ops.report()
		return resp, nil
	}
}

// errTxnWrites: a txn that writes goes through raft, never to Reader.Txn.
var errTxnWrites = errors.New("storeactor: Reader.Txn given a txn that writes")

// readError returns err, the outcome of the read op, after counting
// (metastore_store_read_errors_total) and logging it when the store, not
// the request, is at fault: etcd's answers (compacted, future revision)
// are gRPC statuses, pebble's errors and corrupt records are not.
func (r *Reader) readError(op string, err error) error {
	if _, answer := status.FromError(err); answer {
		return err // nil too
	}
	readErrors.Inc()
	if l := r.errLog.Load(); l != nil {
		l.log(op, err)
	}
	return err
}

// overtaken reports whether a compaction published during a read at reqRev
// (0: the current revision, curRev) may have removed what it read: an
// error for an explicit revision, a retry for a current-revision read.
func (r *Reader) overtaken(reqRev, curRev int64) (retry bool, err error) {
	compact := r.view.Load().CompactRev
	switch {
	case reqRev > 0 && reqRev < compact:
		return false, rpctypes.ErrGRPCCompacted
	case reqRev <= 0 && curRev < compact:
		return true, nil
	}
	return false, nil
}

// IsTxnReadOnly reports whether a txn only reads, on every path.
func IsTxnReadOnly(rt *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{rt.Success, rt.Failure} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

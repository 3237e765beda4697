package console

import (
	"net/http"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
)

// Writes from the console are compare-and-swaps: the UI sends the
// mod_revision of the version the user saw (0: the key must not exist),
// and the write is one Txn that applies only if the key is still at it.
// Otherwise nothing is written and the reply (409) carries the version
// that is there now, so two operators editing one key never overwrite
// each other silently.

type writeRequest struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
	// ModRevision is the mod_revision the user saw (0: no such key).
	ModRevision int64 `json:"modRevision"`
}

type writeResult struct {
	Revision int64 `json:"revision"`
	// Conflict: the key was not at ModRevision; Current is what is there
	// (null: no such key).
	Conflict bool    `json:"conflict,omitempty"`
	Current  *kvJSON `json:"current,omitempty"`
}

// servePut writes a value: an edit keeps the key's lease (etcd's
// ignore_lease), a new key gets none.
func (c *Console) servePut(_ http.ResponseWriter, r *http.Request, s *session) reply {
	return c.casWrite(r, s, "put", func(req *writeRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: req.Key, Value: req.Value, IgnoreLease: req.ModRevision != 0}}}
	})
}

// serveDelete deletes one key.
func (c *Console) serveDelete(_ http.ResponseWriter, r *http.Request, s *session) reply {
	return c.casWrite(r, s, "delete", func(req *writeRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: req.Key}}}
	})
}

func (c *Console) casWrite(r *http.Request, s *session, action string, op func(*writeRequest) *pb.RequestOp) reply {
	var req writeRequest
	if err := decode(r, &req); err != nil {
		return badRequest(err.Error())
	}
	if len(req.Key) == 0 {
		return badRequest("key is empty")
	}
	ctx, cancel := asUser(r, s, rpcTimeout)
	defer cancel()
	resp, err := pb.NewKVClient(c.cfg.Conn).Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: req.Key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_ModRevision{ModRevision: req.ModRevision}}},
		Success: []*pb.RequestOp{op(&req)},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: req.Key}}}},
	})
	var rep reply
	switch {
	case err != nil:
		rep = c.fail(s, err)
	case resp.Succeeded:
		rep = ok(writeResult{Revision: resp.Header.Revision})
	default:
		res := writeResult{Revision: resp.Header.Revision, Conflict: true}
		if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			res.Current = toKV(rr.Kvs[0])
		}
		rep = reply{status: http.StatusConflict, body: res}
	}
	c.logAction(r, s, action, rep, zap.ByteString("key", req.Key), zap.Int64("expected-mod-revision", req.ModRevision))
	return rep
}

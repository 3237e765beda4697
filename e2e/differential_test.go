package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// TestDifferentialKV sends the same random sequence of KV (and lease) requests to
// MetaStore and to the reference etcd and requires identical responses
// (headers' cluster_id, member_id and raft_term aside) and identical errors.
func TestDifferentialKV(t *testing.T) {
	ops, seeds := 300, []int64{1}
	if os.Getenv("METASTORE_LONG") == "1" {
		ops, seeds = 5000, []int64{1, 2, 3}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			runDifferential(t, seed, ops)
		})
	}
}

func runDifferential(t *testing.T, seed int64, n int) {
	ms := StartMetaStore(t)
	ref := StartEtcd(t)
	msKV, refKV := newKVClients(ms.Client(t)), newKVClients(ref.Client(t))

	g := &kvGen{r: rand.New(rand.NewSource(seed)), rev: 1, compacted: 0}
	for i := 0; i < n; i++ {
		req := g.next()
		msResp, msErr := doKV(msKV, req)
		refResp, refErr := doKV(refKV, req)
		if d := diffResult(msResp, msErr, refResp, refErr); d != "" {
			t.Fatalf("seed %d op %d: mismatch: %s\nrequest: %s\netcd:      %s\nmetastore: %s",
				seed, i, d, fmtMsg(req), fmtRes(refResp, refErr), fmtRes(msResp, msErr))
		}
		if os.Getenv("DIFF_TRACE") != "" {
			t.Logf("op %d: %s\n  -> %s", i, fmtMsg(req), fmtRes(refResp, refErr))
		}
		g.observe(req, refResp, refErr)
	}
	t.Logf("seed %d: %d ops, final revision %d, compacted %d", seed, n, g.rev, g.compacted)
}

func fmtMsg(m proto.Message) string {
	return fmt.Sprintf("%T{%s}", m, prototext.MarshalOptions{}.Format(m))
}

func fmtRes(m proto.Message, err error) string {
	if err != nil {
		s := status.Convert(err)
		return fmt.Sprintf("error code=%s msg=%q", s.Code(), s.Message())
	}
	return fmtMsg(m)
}

// diffResult compares two results; it returns "" when they are equal.
// Responses are normalized in place (headers' cluster/member/term zeroed).
func diffResult(a proto.Message, aErr error, b proto.Message, bErr error) string {
	if (aErr != nil) != (bErr != nil) {
		return "one errored, the other did not"
	}
	if aErr != nil {
		as, bs := status.Convert(aErr), status.Convert(bErr)
		if as.Code() != bs.Code() || as.Message() != bs.Message() {
			return "different errors"
		}
		return ""
	}
	normalize(a)
	normalize(b)
	if !proto.Equal(a, b) {
		return "different responses"
	}
	return ""
}

func zeroHeader(h *pb.ResponseHeader) {
	if h != nil {
		h.ClusterId, h.MemberId, h.RaftTerm = 0, 0, 0
	}
}

func normalize(m proto.Message) {
	switch r := m.(type) {
	case *pb.RangeResponse:
		zeroHeader(r.GetHeader())
	case *pb.PutResponse:
		zeroHeader(r.GetHeader())
	case *pb.DeleteRangeResponse:
		zeroHeader(r.GetHeader())
	case *pb.CompactionResponse:
		zeroHeader(r.GetHeader())
	case *pb.LeaseGrantResponse:
		zeroHeader(r.GetHeader())
	case *pb.LeaseRevokeResponse:
		zeroHeader(r.GetHeader())
	case *pb.LeaseTimeToLiveResponse:
		zeroHeader(r.GetHeader())
		if r.TTL > 0 {
			r.TTL = 1 // the seconds left depend on when each server was asked
		}
		// etcd lists a lease's keys in Go map order.
		sort.Slice(r.Keys, func(i, j int) bool { return bytes.Compare(r.Keys[i], r.Keys[j]) < 0 })
	case *pb.TxnResponse:
		zeroHeader(r.GetHeader())
		for _, op := range r.GetResponses() {
			switch {
			case op.GetResponseRange() != nil:
				normalize(op.GetResponseRange())
			case op.GetResponsePut() != nil:
				normalize(op.GetResponsePut())
			case op.GetResponseDeleteRange() != nil:
				normalize(op.GetResponseDeleteRange())
			case op.GetResponseTxn() != nil:
				normalize(op.GetResponseTxn())
			}
		}
	}
}

// kvClients are the services the differential sequences use.
type kvClients struct {
	kv    pb.KVClient
	lease pb.LeaseClient
}

func newKVClients(c *clientv3.Client) kvClients {
	return kvClients{pb.NewKVClient(c.ActiveConnection()), pb.NewLeaseClient(c.ActiveConnection())}
}

func doKV(c kvClients, req proto.Message) (proto.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch r := req.(type) {
	case *pb.RangeRequest:
		return c.kv.Range(ctx, r)
	case *pb.PutRequest:
		return c.kv.Put(ctx, r)
	case *pb.DeleteRangeRequest:
		return c.kv.DeleteRange(ctx, r)
	case *pb.TxnRequest:
		return c.kv.Txn(ctx, r)
	case *pb.CompactionRequest:
		return c.kv.Compact(ctx, r)
	case *pb.LeaseGrantRequest:
		return c.lease.LeaseGrant(ctx, r)
	case *pb.LeaseRevokeRequest:
		return c.lease.LeaseRevoke(ctx, r)
	case *pb.LeaseTimeToLiveRequest:
		return c.lease.LeaseTimeToLive(ctx, r)
	}
	panic(fmt.Sprintf("unknown request %T", req))
}

// kvGen generates random KV requests over a small key space.
type kvGen struct {
	r         *rand.Rand
	inTxn     bool  // generating txn ops: no from-key deletes (see deleteReq)
	rev       int64 // current revision (as reported by etcd)
	compacted int64
}

var diffKeys = func() []string {
	var ks []string
	for i := 0; i < 10; i++ {
		ks = append(ks, fmt.Sprintf("a/%d", i))
	}
	for i := 0; i < 10; i++ {
		ks = append(ks, fmt.Sprintf("b/%d", i))
	}
	return ks
}()

func (g *kvGen) key() []byte { return []byte(diffKeys[g.r.Intn(len(diffKeys))]) }

func (g *kvGen) value() []byte {
	if g.r.Intn(10) == 0 {
		return nil
	}
	return []byte(fmt.Sprintf("v%d", g.r.Intn(5)))
}

// keyRange returns a key and range end: single key, prefix, explicit range
// (possibly inverted/empty), or from-key.
func (g *kvGen) keyRange() ([]byte, []byte) {
	switch g.r.Intn(6) {
	case 0, 1:
		return g.key(), nil
	case 2:
		p := []string{"a/", "b/", "a/1", ""}[g.r.Intn(4)]
		if p == "" {
			return []byte{0}, []byte{0} // everything
		}
		end := []byte(p)
		end[len(end)-1]++
		return []byte(p), end
	case 3, 4:
		return g.key(), g.key()
	default:
		return g.key(), []byte{0}
	}
}

func (g *kvGen) revision() int64 {
	switch g.r.Intn(6) {
	case 0:
		// Not inside txns: MetaStore wrongly rejects a compacted revision in
		// the branch a txn does not take (see TestDifferentialTxnBranches).
		if g.compacted > 0 && !g.inTxn {
			return g.r.Int63n(g.compacted + 1) // compacted (or the compaction revision itself)
		}
		return 0
	case 1:
		return g.rev + 1 + g.r.Int63n(3) // future
	case 2, 3:
		if g.inTxn {
			if g.rev <= g.compacted {
				return 0
			}
			return g.compacted + 1 + g.r.Int63n(g.rev-g.compacted) // past, not compacted
		}
		return 1 + g.r.Int63n(g.rev) // past (maybe compacted)
	default:
		return 0
	}
}

func (g *kvGen) rangeReq() *pb.RangeRequest {
	k, e := g.keyRange()
	req := &pb.RangeRequest{Key: k, RangeEnd: e}
	if g.r.Intn(3) == 0 {
		req.Limit = g.r.Int63n(5)
	}
	if g.r.Intn(3) == 0 {
		req.Revision = g.revision()
	}
	if g.r.Intn(3) == 0 {
		req.SortOrder = pb.RangeRequest_SortOrder(g.r.Intn(3))
		req.SortTarget = pb.RangeRequest_SortTarget(g.r.Intn(5))
	}
	req.Serializable = g.r.Intn(4) == 0
	req.KeysOnly = g.r.Intn(5) == 0
	req.CountOnly = g.r.Intn(6) == 0
	if g.r.Intn(6) == 0 {
		req.MinModRevision = g.r.Int63n(g.rev + 1)
	}
	if g.r.Intn(6) == 0 {
		req.MaxModRevision = g.r.Int63n(g.rev + 1)
	}
	if g.r.Intn(6) == 0 {
		req.MinCreateRevision = g.r.Int63n(g.rev + 1)
	}
	if g.r.Intn(6) == 0 {
		req.MaxCreateRevision = g.r.Int63n(g.rev + 1)
	}
	return req
}

// leaseID picks no lease mostly, else one of a few ids the sequence grants
// and revokes (7 is never granted).
func (g *kvGen) leaseID() int64 {
	if g.r.Intn(4) != 0 {
		return 0
	}
	return 1 + g.r.Int63n(7)
}

// leaseReq grants (long TTLs, so nothing expires during the run: short
// ones are tested in lease_test.go; and a too large one), revokes or asks
// the time-to-live of a lease.
func (g *kvGen) leaseReq() proto.Message {
	id := 1 + g.r.Int63n(7)
	switch g.r.Intn(3) {
	case 0:
		ttl := []int64{600, 600, 600, 3600, 9000000001}[g.r.Intn(5)]
		return &pb.LeaseGrantRequest{ID: id, TTL: ttl}
	case 1:
		return &pb.LeaseRevokeRequest{ID: id}
	}
	return &pb.LeaseTimeToLiveRequest{ID: id, Keys: true}
}

func (g *kvGen) putReq() *pb.PutRequest {
	req := &pb.PutRequest{Key: g.key(), PrevKv: g.r.Intn(2) == 0, Lease: g.leaseID()}
	if req.Lease == 0 && g.r.Intn(10) == 0 {
		req.IgnoreLease = true
	}
	if g.r.Intn(8) == 0 {
		req.IgnoreValue = true
	} else {
		req.Value = g.value()
	}
	return req
}

func (g *kvGen) deleteReq() *pb.DeleteRangeRequest {
	k, e := g.keyRange()
	if g.inTxn && len(e) == 1 && e[0] == 0 {
		// Known etcd v3.7.3 bug, mimicked by MetaStore: a from-key delete
		// ([k, "\x00")) in a txn is not seen as overlapping a put of the
		// same txn, and a later put with ignore_value then panics in the
		// apply loop (etcd: index out of range in txn/put.go:55, process
		// dies; MetaStore: store actor panics and is restarted forever,
		// requests time out). Keep the generator away from it.
		e = nil
	}
	return &pb.DeleteRangeRequest{Key: k, RangeEnd: e, PrevKv: g.r.Intn(2) == 0}
}

func (g *kvGen) compare() *pb.Compare {
	c := &pb.Compare{
		Result: pb.Compare_CompareResult(g.r.Intn(4)),
		Target: pb.Compare_CompareTarget(g.r.Intn(4)), // VERSION, CREATE, MOD, VALUE
		Key:    g.key(),
	}
	if g.r.Intn(6) == 0 {
		k, e := g.keyRange()
		c.Key, c.RangeEnd = k, e
	}
	switch c.Target {
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: g.r.Int63n(4)}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: g.r.Int63n(g.rev + 2)}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: g.r.Int63n(g.rev + 2)}
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: g.value()}
	}
	return c
}

func (g *kvGen) ops(depth int) []*pb.RequestOp {
	n := g.r.Intn(4)
	var ops []*pb.RequestOp
	used := map[string]bool{}
	for i := 0; i < n; i++ {
		switch c := g.r.Intn(10); {
		case c < 3:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: g.rangeReq()}})
		case c < 6:
			p := g.putReq()
			if used[string(p.Key)] && g.r.Intn(4) != 0 {
				continue // mostly avoid duplicate puts (sometimes keep them: an error)
			}
			used[string(p.Key)] = true
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}})
		case c < 8:
			d := g.deleteReq()
			if len(used) > 0 && g.r.Intn(3) != 0 {
				d = &pb.DeleteRangeRequest{Key: []byte(diffKeys[10+g.r.Intn(10)]), PrevKv: d.PrevKv} // b/*: less overlap
				if used[string(d.Key)] {
					continue
				}
			}
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}})
		default:
			if depth < 2 {
				ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: g.txnReq(depth + 1)}})
			}
		}
	}
	return ops
}

func (g *kvGen) txnReq(depth int) *pb.TxnRequest {
	req := &pb.TxnRequest{}
	for i := g.r.Intn(3); i > 0; i-- {
		req.Compare = append(req.Compare, g.compare())
	}
	req.Success = g.ops(depth)
	req.Failure = g.ops(depth)
	return req
}

func (g *kvGen) next() proto.Message {
	switch c := g.r.Intn(100); {
	case c < 30:
		return g.putReq()
	case c < 55:
		return g.rangeReq()
	case c < 65:
		return g.deleteReq()
	case c < 90:
		g.inTxn = true
		defer func() { g.inTxn = false }()
		return g.txnReq(0)
	case c < 97:
		return g.leaseReq()
	default:
		rev := g.compacted + 1 + g.r.Int63n(g.rev-g.compacted+1)
		if g.r.Intn(5) == 0 {
			rev = g.r.Int63n(g.rev + 3) // possibly already compacted or future
		}
		return &pb.CompactionRequest{Revision: rev, Physical: g.r.Intn(2) == 0}
	}
}

func (g *kvGen) observe(req proto.Message, resp proto.Message, err error) {
	if err != nil {
		return
	}
	type headered interface{ GetHeader() *pb.ResponseHeader }
	if h, ok := resp.(headered); ok && h.GetHeader().GetRevision() > g.rev {
		g.rev = h.GetHeader().GetRevision()
	}
	if c, ok := req.(*pb.CompactionRequest); ok && c.Revision > g.compacted {
		g.compacted = c.Revision
	}
}

// TestDifferentialTxnBranches pins down txns whose not-taken branch holds a
// range at a bad revision: etcd checks only the branch it takes.
func TestDifferentialTxnBranches(t *testing.T) {
	ms := StartMetaStore(t)
	ref := StartEtcd(t)
	kvs := []kvClients{newKVClients(ms.Client(t)), newKVClients(ref.Client(t))}
	for _, kv := range kvs {
		for i := 0; i < 5; i++ {
			if _, err := doKV(kv, &pb.PutRequest{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := doKV(kv, &pb.CompactionRequest{Revision: 4}); err != nil {
			t.Fatal(err)
		}
	}
	rangeAt := func(rev int64) []*pb.RequestOp {
		return []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), Revision: rev}}}}
	}
	never := []*pb.Compare{{Target: pb.Compare_VERSION, Key: []byte("k"), TargetUnion: &pb.Compare_Version{Version: 99}}}
	cases := []struct {
		name string
		req  *pb.TxnRequest
		bug  string // a known mismatch: the case is skipped with this reason
	}{
		{"compacted in failure, success taken", &pb.TxnRequest{Failure: rangeAt(2)}, ""},
		{"compacted in success, failure taken", &pb.TxnRequest{Compare: never, Success: rangeAt(2)}, ""},
		{"future in failure, success taken", &pb.TxnRequest{Failure: rangeAt(100)}, ""},
		{"future in success, failure taken", &pb.TxnRequest{Compare: never, Success: rangeAt(100)}, ""},
		{"compacted in taken branch", &pb.TxnRequest{Success: rangeAt(2)}, ""},
		{"future in taken branch", &pb.TxnRequest{Compare: never, Failure: rangeAt(100)}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msResp, msErr := doKV(kvs[0], c.req)
			refResp, refErr := doKV(kvs[1], c.req)
			if d := diffResult(msResp, msErr, refResp, refErr); d != "" {
				msg := fmt.Sprintf("%s\nrequest: %s\netcd:      %s\nmetastore: %s", d, fmtMsg(c.req), fmtRes(refResp, refErr), fmtRes(msResp, msErr))
				if c.bug != "" {
					t.Skip("BUG: " + c.bug + ": " + msg)
				}
				t.Fatal(msg)
			}
		})
	}
}

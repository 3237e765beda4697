package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// TestDifferentialCounts sends MetaStore and the reference etcd the same
// random writes (puts of new and existing keys, deletes of one key and of
// a namespace, txns, compactions) over a few Kubernetes-like prefixes of
// a few thousand keys, and the reads whose count MetaStore takes from its
// count index rather than a walk: count-only ranges, and ranges cut by a
// limit with their total count and More — Kubernetes' paginated list,
// continued page by page at the first page's revision — at the current
// revision and at past ones. Every answer must be identical (headers'
// ids and term aside). METASTORE_LONG=1 runs more keys and operations.
func TestDifferentialCounts(t *testing.T) {
	keys, ops := 3000, 600
	if os.Getenv("METASTORE_LONG") == "1" {
		keys, ops = 40000, 6000
	}
	ms := StartMetaStore(t)
	ref := StartEtcd(t)
	msKV, refKV := newKVClients(ms.Client(t)), newKVClients(ref.Client(t))
	g := &countGen{r: rand.New(rand.NewSource(1)), keys: keys}
	n := 0
	do := func(req proto.Message) proto.Message {
		t.Helper()
		msResp, msErr := doKV(msKV, req)
		refResp, refErr := doKV(refKV, req)
		if d := diffResult(msResp, msErr, refResp, refErr); d != "" {
			t.Fatalf("op %d: mismatch: %s\nrequest: %s\netcd:      %s\nmetastore: %s",
				n, d, fmtShort(req), fmtRes(refResp, refErr), fmtRes(msResp, msErr))
		}
		n++
		g.observe(req, refResp, refErr)
		return refResp
	}
	for _, req := range g.load() {
		do(req)
	}
	for i := 0; i < ops; i++ {
		if g.r.Intn(8) == 0 {
			g.list(do)
			continue
		}
		do(g.next())
	}
	t.Logf("%d requests, revision %d, compacted at %d", n, g.rev, g.compacted)
	// The counts compared came from the index, at the current revision
	// and corrected by history at past ones, not only from walks.
	by := scrapeMetrics(t, ms.ClientURL()+"/metrics").samples("metastore_store_range_counts_total")
	t.Logf("metastore_store_range_counts_total: %v", by)
	if by[`how="index"`] == 0 || by[`how="history"`] == 0 {
		t.Fatalf("counts by index %v, by history %v: the count index was not exercised", by[`how="index"`], by[`how="history"`])
	}
}

// fmtShort is fmtMsg, cut: a load txn or a page of 500 keys is long.
func fmtShort(m proto.Message) string {
	s := fmtMsg(m)
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}

// countGen makes the requests of TestDifferentialCounts.
type countGen struct {
	r         *rand.Rand
	keys      int   // keys per prefix at most
	rev       int64 // current revision, as etcd reports it
	compacted int64
}

var countKinds = []string{"/registry/pods/", "/registry/events/", "/registry/configmaps/"}

// key is /registry/<kind>/ns-<n>/obj-<i>: ten namespaces per kind.
func (g *countGen) key() []byte {
	i := g.r.Intn(g.keys)
	return []byte(fmt.Sprintf("%sns-%d/obj-%06d", countKinds[g.r.Intn(len(countKinds))], i%10, i))
}

// load puts about half of each kind's keys, 100 to a txn.
func (g *countGen) load() []proto.Message {
	var out []proto.Message
	var ops []*pb.RequestOp
	for _, kind := range countKinds {
		for i := 0; i < g.keys; i += 2 {
			k := fmt.Sprintf("%sns-%d/obj-%06d", kind, i%10, i)
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte("v0")}}})
			if len(ops) == 100 {
				out = append(out, &pb.TxnRequest{Success: ops})
				ops = nil
			}
		}
	}
	if len(ops) > 0 {
		out = append(out, &pb.TxnRequest{Success: ops})
	}
	return out
}

func prefixOf(p string) (key, end []byte) {
	end = []byte(p)
	end[len(end)-1]++
	return []byte(p), end
}

// keyRange is a kind, a namespace, everything, from a key on, or between
// two keys.
func (g *countGen) keyRange() (key, end []byte) {
	kind := countKinds[g.r.Intn(len(countKinds))]
	switch g.r.Intn(6) {
	case 0, 1:
		return prefixOf(kind)
	case 2:
		return prefixOf(fmt.Sprintf("%sns-%d/", kind, g.r.Intn(10)))
	case 3:
		return []byte{0}, []byte{0}
	case 4:
		return g.key(), []byte{0}
	}
	return g.key(), g.key()
}

// readRev is the current revision (0) or a past one from the compaction
// point on, mostly recent (as a continued list reads), sometimes a
// compacted one.
func (g *countGen) readRev() int64 {
	switch g.r.Intn(6) {
	case 0, 1, 2:
		return 0
	case 3:
		return max(g.compacted, g.rev-1-g.r.Int63n(20))
	case 4:
		return g.compacted + g.r.Int63n(g.rev-g.compacted+1)
	}
	return g.r.Int63n(g.compacted + 1) // compacted (or the compaction revision)
}

func (g *countGen) next() proto.Message {
	switch r := g.r.Intn(20); {
	case r < 7:
		return &pb.PutRequest{Key: g.key(), Value: []byte(fmt.Sprintf("v%d", g.r.Intn(100)))}
	case r < 10:
		return &pb.DeleteRangeRequest{Key: g.key()}
	case r < 11:
		kind := countKinds[g.r.Intn(len(countKinds))]
		k, e := prefixOf(fmt.Sprintf("%sns-%d/", kind, g.r.Intn(10)))
		return &pb.DeleteRangeRequest{Key: k, RangeEnd: e}
	case r < 13:
		// Kubernetes' update: put if unchanged since a revision, else read.
		k := g.key()
		return &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: k, Target: pb.Compare_MOD, Result: pb.Compare_LESS,
				TargetUnion: &pb.Compare_ModRevision{ModRevision: g.rev - g.r.Int63n(50)}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: []byte("t")}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: k}}}},
		}
	case r < 14 && g.rev > g.compacted+50:
		return &pb.CompactionRequest{Revision: g.compacted + 1 + g.r.Int63n(g.rev-g.compacted-50)}
	}
	k, e := g.keyRange()
	req := &pb.RangeRequest{Key: k, RangeEnd: e, Revision: g.readRev(), KeysOnly: g.r.Intn(4) == 0}
	if g.r.Intn(2) == 0 {
		req.CountOnly = true
	} else {
		req.Limit = []int64{1, 10, 100, 500}[g.r.Intn(4)]
	}
	return req
}

// list is Kubernetes' paginated list of a kind or a namespace: pages of
// 500 keys-only-or-not with the total count, the first at the current
// revision, the next ones from after the last key at the first's
// revision, with writes between the pages now and then.
func (g *countGen) list(do func(proto.Message) proto.Message) {
	kind := countKinds[g.r.Intn(len(countKinds))]
	key, end := prefixOf(kind)
	if g.r.Intn(2) == 0 {
		key, end = prefixOf(fmt.Sprintf("%sns-%d/", kind, g.r.Intn(10)))
	}
	limit := []int64{50, 500}[g.r.Intn(2)]
	rev := int64(0)
	for page := 0; page < 20; page++ {
		resp, ok := do(&pb.RangeRequest{Key: key, RangeEnd: end, Limit: limit, Revision: rev}).(*pb.RangeResponse)
		if !ok || !resp.More || len(resp.Kvs) == 0 {
			return
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		key = append(append([]byte(nil), resp.Kvs[len(resp.Kvs)-1].Key...), 0)
		for g.r.Intn(2) == 0 {
			do(g.next())
		}
	}
}

// observe follows the revision and compaction point from etcd's answers.
func (g *countGen) observe(req, resp proto.Message, err error) {
	if err != nil {
		return
	}
	switch r := resp.(type) {
	case *pb.PutResponse:
		g.rev = r.Header.Revision
	case *pb.DeleteRangeResponse:
		g.rev = r.Header.Revision
	case *pb.TxnResponse:
		g.rev = r.Header.Revision
	case *pb.RangeResponse:
		g.rev = r.Header.Revision
	case *pb.CompactionResponse:
		g.compacted = req.(*pb.CompactionRequest).Revision
	}
}

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
)

// TestHashKV: errors and response fields as etcd's (hash values differ by
// design), and the properties members rely on: a revision's hash does not
// change with later writes, restarts or physical compaction.
func TestHashKV(t *testing.T) {
	ms := StartMetaStore(t)
	ref := StartEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shape := func(s *Server) []string {
		cli := s.Client(t)
		mt := pb.NewMaintenanceClient(cli.ActiveConnection())
		var out []string
		hk := func(what string, rev int64) *pb.HashKVResponse {
			r, err := mt.HashKV(ctx, &pb.HashKVRequest{Revision: rev})
			if err != nil {
				st := status.Convert(err)
				out = append(out, fmt.Sprintf("%s: error %s %q", what, st.Code(), st.Message()))
				return nil
			}
			out = append(out, fmt.Sprintf("%s: header rev %d, hash rev %d, compact rev %d", what, r.Header.Revision, r.HashRevision, r.CompactRevision))
			return r
		}
		hk("fresh", 0)
		for i := 0; i < 5; i++ {
			if _, err := cli.Put(ctx, fmt.Sprint("k", i%2), fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		hk("current", 0)
		hk("at 3", 3)
		hk("future", 100)
		if _, err := cli.Compact(ctx, 4); err != nil {
			t.Fatal(err)
		}
		hk("compacted", 3)
		// (At exactly the compaction revision etcd answers from a hash it
		// stored while compacting, with the previous compaction point as
		// compact_revision; MetaStore answers the same hash as before the
		// compaction too (TestHashKVAtCompactionRevision), with the
		// current one. Not compared; see storeactor.Reader.HashKV.)
		hk("after compaction", 5)
		o, _, err := Etcdctl(t, s.Endpoint(), "endpoint", "hashkv")
		out = append(out, fmt.Sprintf("etcdctl endpoint hashkv ok=%v", err == nil && strings.HasPrefix(o, s.Endpoint()+", ")))
		return out
	}
	if got, want := shape(ms), shape(ref); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("differs from etcd\netcd:\n%s\nmetastore:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}

	// Properties, on MetaStore alone.
	ms2 := StartMetaStore(t)
	cli := ms2.Client(t)
	mt := pb.NewMaintenanceClient(cli.ActiveConnection())
	hash := func(rev int64) uint32 {
		t.Helper()
		r, err := mt.HashKV(ctx, &pb.HashKVRequest{Revision: rev})
		if err != nil {
			t.Fatal(err)
		}
		return r.Hash
	}
	for i := 0; i < 20; i++ {
		if _, err := cli.Put(ctx, fmt.Sprint("p", i%4), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	h10, h21 := hash(10), hash(21)
	if h10 == h21 {
		t.Fatal("revisions 10 and 21 hash alike")
	}
	if _, err := cli.Put(ctx, "later", "x"); err != nil {
		t.Fatal(err)
	}
	if hash(10) != h10 || hash(21) != h21 {
		t.Fatal("a later write changed the hash of earlier revisions")
	}
	ms2.Kill()
	ms2.Restart(t)
	cli = ms2.Client(t)
	mt = pb.NewMaintenanceClient(cli.ActiveConnection())
	if hash(21) != h21 {
		t.Fatal("the hash of revision 21 changed across a restart")
	}
	// Under a compaction, the hash depends on the compaction point only,
	// not on how far physical compaction has got.
	if _, err := cli.Compact(ctx, 15); err != nil {
		t.Fatal(err)
	}
	early := hash(21)
	if _, err := cli.Compact(ctx, 15); err == nil { // already compacted: waits for nothing, errors
		t.Fatal("second compaction at 15 succeeded")
	}
	time.Sleep(300 * time.Millisecond)
	if hash(21) != early {
		t.Fatal("the hash at 21 changed while physical compaction ran")
	}
}

package storeactor_test

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/storeactor"
)

// A store whose revision was bumped while stopped (a restore with
// --bump-revision 1000 --mark-compacted) starts at the bumped revision,
// compacted there: every read or watch below it is refused as compacted,
// reads at it see the data as it was, new writes go on above it, and the
// physical compaction to the new point runs by itself.
func TestBumpRevision(t *testing.T) {
	h := newHarness(t)
	compactFixture(h) // revisions 2..9
	before, err := h.reader.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	h.stop()
	b := h.db.NewBatch()
	v, err := storeactor.BumpRevision(b, *h.reader.View(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if v.Rev != 1009 || v.CompactRev != 1009 {
		t.Fatalf("bumped view %+v, want revision and compaction 1009", v)
	}
	h.start()

	if v := h.reader.View(); v.Rev != 1009 || v.CompactRev != 1009 {
		t.Fatalf("view after start %+v, want revision and compaction 1009", *v)
	}
	for _, rev := range []int64{2, 9, 10, 1008} {
		_, err := h.reader.Range(&pb.RangeRequest{Key: []byte("a"), Revision: rev})
		wantErr(t, fmt.Sprintf("get a --rev %d", rev), err, rpctypes.ErrGRPCCompacted)
	}
	_, _, err = h.reader.History(9, 1009, 100, 1<<20, nil)
	wantErr(t, "watch from the snapshot's revision", err, rpctypes.ErrGRPCCompacted)
	if evs, _, err := h.reader.History(1009, 1009, 100, 1<<20, nil); err != nil || len(evs) != 0 {
		t.Fatalf("watch from the new revision: %v %v, want no events", evs, err)
	}
	want := []string{kvAt("a", "4", 2, 9, 4), kvAt("c", "1", 8, 8, 1)}
	for _, rev := range []int64{1009, 0} {
		if got := kvs(h.rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev}).Kvs); !equal(got, want) {
			t.Fatalf("get --prefix --rev %d = %q, want %q", rev, got, want)
		}
	}
	// No key changed: the hash of the new revision is the old one's.
	if after, err := h.reader.HashKV(0); err != nil || after.Hash != before.Hash || after.Revision != 1009 {
		t.Fatalf("HashKV after the bump %+v %v, want hash %d at 1009", after, err, before.Hash)
	}

	eventually(t, "physical compaction to the new point", func() bool { return h.reader.View().CompactDone == 1009 })
	for k, w := range map[string]string{"a": "[9]", "b": "[]", "c": "[8]"} {
		var mains []int64
		for _, v := range storeactor.StoredVersions(h.db, k) {
			mains = append(mains, v.Main)
		}
		if fmt.Sprint(mains) != w {
			t.Errorf("versions of %s after compaction: %v, want %s", k, mains, w)
		}
	}
	if err := h.reader.CheckConsistency(); err != nil {
		t.Fatal(err)
	}
	if pr := h.put("a", "5"); pr.Header.Revision != 1010 {
		t.Fatalf("first write after the bump at %d, want 1010", pr.Header.Revision)
	}
}

func TestBumpRevisionRefusesNothingOrOverflow(t *testing.T) {
	b := openDB(t).NewBatch()
	defer b.Close()
	for _, c := range []struct{ rev, n int64 }{{5, 0}, {5, -1}, {5, 1<<63 - 5}} {
		if _, err := storeactor.BumpRevision(b, storeactor.View{Rev: c.rev}, c.n); err == nil {
			t.Errorf("bump of %d by %d accepted", c.rev, c.n)
		}
	}
}

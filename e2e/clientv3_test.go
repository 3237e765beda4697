package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestClientV3 uses MetaStore through clientv3 the way an application does.
func TestClientV3(t *testing.T) {
	s := StartMetaStore(t)
	cli := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Put / Get.
	p1, err := cli.Put(ctx, "app/a", "1")
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	rev1 := p1.Header.Revision
	if rev1 < 2 {
		t.Fatalf("first put revision = %d, want >= 2", rev1)
	}
	p2, err := cli.Put(ctx, "app/b", "2")
	if err != nil || p2.Header.Revision != rev1+1 {
		t.Fatalf("put app/b: rev %v err %v, want %d", p2, err, rev1+1)
	}
	p3, err := cli.Put(ctx, "app/a", "1b", clientv3.WithPrevKV())
	if err != nil {
		t.Fatalf("put prev: %v", err)
	}
	if p3.PrevKv == nil || string(p3.PrevKv.Value) != "1" || p3.PrevKv.ModRevision != rev1 {
		t.Fatalf("put WithPrevKV PrevKv = %v, want value 1 at rev %d", p3.PrevKv, rev1)
	}
	if _, err := cli.Put(ctx, "app/c", "3"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "other", "x"); err != nil {
		t.Fatal(err)
	}

	g, err := cli.Get(ctx, "app/a")
	if err != nil || len(g.Kvs) != 1 {
		t.Fatalf("get app/a: %v %v", g, err)
	}
	kv := g.Kvs[0]
	if string(kv.Value) != "1b" || kv.CreateRevision != rev1 || kv.ModRevision != rev1+2 || kv.Version != 2 {
		t.Fatalf("app/a = %+v, want value 1b create %d mod %d version 2", kv, rev1, rev1+2)
	}
	if g.Header.Revision != rev1+4 {
		t.Fatalf("header revision %d, want %d", g.Header.Revision, rev1+4)
	}

	// Prefix, sort, limit, count-only, rev.
	g, err = cli.Get(ctx, "app/", clientv3.WithPrefix())
	if err != nil || len(g.Kvs) != 3 || g.Count != 3 {
		t.Fatalf("prefix get: %v %v", g, err)
	}
	g, err = cli.Get(ctx, "app/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil || len(g.Kvs) != 3 || string(g.Kvs[0].Key) != "app/c" || string(g.Kvs[2].Key) != "app/a" {
		t.Fatalf("sorted desc get: %v %v", g, err)
	}
	g, err = cli.Get(ctx, "app/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend))
	if err != nil || len(g.Kvs) != 3 || string(g.Kvs[0].Key) != "app/b" || string(g.Kvs[2].Key) != "app/c" {
		t.Fatalf("sorted by mod get: %v %v", g, err)
	}
	g, err = cli.Get(ctx, "app/", clientv3.WithPrefix(), clientv3.WithLimit(2))
	if err != nil || len(g.Kvs) != 2 || !g.More || g.Count != 3 {
		t.Fatalf("limit get: kvs=%d more=%v count=%d err=%v", len(g.Kvs), g.More, g.Count, err)
	}
	g, err = cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || len(g.Kvs) != 0 || g.Count != 4 {
		t.Fatalf("count-only get: %v %v", g, err)
	}
	g, err = cli.Get(ctx, "app/a", clientv3.WithRev(rev1))
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "1" {
		t.Fatalf("get at rev %d: %v %v", rev1, g, err)
	}
	g, err = cli.Get(ctx, "app/c", clientv3.WithRev(rev1))
	if err != nil || len(g.Kvs) != 0 {
		t.Fatalf("get app/c before it existed: %v %v", g, err)
	}
	g, err = cli.Get(ctx, "app/a", clientv3.WithSerializable())
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "1b" {
		t.Fatalf("serializable get: %v %v", g, err)
	}
	g, err = cli.Get(ctx, "app/b", clientv3.WithKeysOnly())
	if err != nil || len(g.Kvs) != 1 || len(g.Kvs[0].Value) != 0 {
		t.Fatalf("keys-only get: %v %v", g, err)
	}

	// Future revision.
	_, err = cli.Get(ctx, "app/a", clientv3.WithRev(g.Header.Revision+100))
	if !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("get at future rev: err = %v, want ErrFutureRev", err)
	}

	// Txn.
	tr, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value("app/a"), "=", "1b"),
			clientv3.Compare(clientv3.Version("app/b"), "=", 1),
			clientv3.Compare(clientv3.CreateRevision("missing"), "=", 0)).
		Then(clientv3.OpPut("app/d", "4"), clientv3.OpGet("app/", clientv3.WithPrefix(), clientv3.WithCountOnly())).
		Else(clientv3.OpPut("fail", "1")).
		Commit()
	if err != nil || !tr.Succeeded {
		t.Fatalf("txn 1: %v %v", tr, err)
	}
	if len(tr.Responses) != 2 || tr.Responses[1].GetResponseRange().Count != 4 {
		t.Fatalf("txn 1 responses: %v", tr.Responses)
	}
	txnRev := tr.Header.Revision
	tr, err = cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision("app/a"), ">", txnRev)).
		Then(clientv3.OpPut("never", "1")).
		Else(clientv3.OpGet("app/d"), clientv3.OpDelete("other", clientv3.WithPrevKV())).
		Commit()
	if err != nil || tr.Succeeded {
		t.Fatalf("txn 2: %v %v", tr, err)
	}
	if r := tr.Responses[0].GetResponseRange(); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "4" || r.Kvs[0].ModRevision != txnRev {
		t.Fatalf("txn 2 get: %v", r)
	}
	if d := tr.Responses[1].GetResponseDeleteRange(); d.Deleted != 1 || len(d.PrevKvs) != 1 || string(d.PrevKvs[0].Value) != "x" {
		t.Fatalf("txn 2 delete: %v", d)
	}
	if tr.Header.Revision != txnRev+1 {
		t.Fatalf("txn 2 revision %d, want %d", tr.Header.Revision, txnRev+1)
	}
	// A read-only txn does not bump the revision.
	tr, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("never"), "=", "1")).Then().Else(clientv3.OpGet("x")).Commit()
	if err != nil || tr.Succeeded || tr.Header.Revision != txnRev+1 {
		t.Fatalf("read-only txn: %v %v", tr, err)
	}
	// Duplicate key in a txn is rejected.
	_, err = cli.Txn(ctx).Then(clientv3.OpPut("dup", "1"), clientv3.OpPut("dup", "2")).Commit()
	if !errors.Is(err, rpctypes.ErrDuplicateKey) {
		t.Errorf("txn with duplicate puts: err = %v, want ErrDuplicateKey", err)
	}

	// Delete.
	d, err := cli.Delete(ctx, "app/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	if err != nil || d.Deleted != 4 || len(d.PrevKvs) != 4 {
		t.Fatalf("delete prefix: %v %v", d, err)
	}
	delRev := d.Header.Revision
	d, err = cli.Delete(ctx, "app/a")
	if err != nil || d.Deleted != 0 || d.Header.Revision != delRev {
		t.Fatalf("delete missing: %v %v", d, err)
	}
	g, err = cli.Get(ctx, "app/a", clientv3.WithRev(delRev-1))
	if err != nil || len(g.Kvs) != 1 {
		t.Fatalf("get before delete: %v %v", g, err)
	}

	// Compact.
	if _, err := cli.Compact(ctx, delRev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact %d: %v", delRev, err)
	}
	_, err = cli.Get(ctx, "app/a", clientv3.WithRev(delRev-1))
	if !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("get at compacted rev: err = %v, want ErrCompacted", err)
	}
	if _, err := cli.Compact(ctx, delRev-1); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("compact at an older rev: err = %v, want ErrCompacted", err)
	}
	if _, err := cli.Compact(ctx, delRev+1000); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("compact at a future rev: err = %v, want ErrFutureRev", err)
	}
	g, err = cli.Get(ctx, "app/a", clientv3.WithRev(delRev))
	if err != nil || len(g.Kvs) != 0 {
		t.Fatalf("get at compact rev: %v %v", g, err)
	}

	// 200 concurrent puts from 20 goroutines, each with its own revision.
	before, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	revs := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				key := fmt.Sprintf("conc/%02d/%02d", w, i)
				r, err := cli.Put(ctx, key, key)
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", key, err)
					continue
				}
				mu.Lock()
				if other, dup := revs[r.Header.Revision]; dup {
					errs <- fmt.Errorf("puts %s and %s both acknowledged at revision %d", key, other, r.Header.Revision)
				}
				revs[r.Header.Revision] = key
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(revs) != 200 {
		t.Fatalf("%d distinct revisions, want 200", len(revs))
	}
	for rev := before.Header.Revision + 1; rev <= before.Header.Revision+200; rev++ {
		if _, ok := revs[rev]; !ok {
			t.Errorf("no put acknowledged at revision %d", rev)
		}
	}
	g, err = cli.Get(ctx, "conc/", clientv3.WithPrefix())
	if err != nil || len(g.Kvs) != 200 {
		t.Fatalf("get conc/: %d kvs, %v", len(g.Kvs), err)
	}
	for _, kv := range g.Kvs {
		if revs[kv.ModRevision] != string(kv.Key) || string(kv.Value) != string(kv.Key) {
			t.Errorf("%s: value %q mod %d, acked at that rev: %q", kv.Key, kv.Value, kv.ModRevision, revs[kv.ModRevision])
		}
	}
	g, err = cli.Get(ctx, "conc/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
	if err != nil || g.Count != 200 {
		t.Fatalf("serializable count: %v %v", g, err)
	}
}

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestDefragUnderLoad: defragmenting while 8 writers and 8 readers run
// fails no request and loses nothing, HashKV at a revision is the same
// before and after, and the space of deleted and compacted data comes
// back. Defragment is a pebble manual compaction, not a stop-the-world
// rewrite, so requests are served while it runs.
func TestDefragUnderLoad(t *testing.T) {
	ms := StartMetaStore(t)
	cli := ms.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	mt := pb.NewMaintenanceClient(cli.ActiveConnection())

	// Data to reclaim: 2000 x 4 KiB, overwritten once, half deleted,
	// compacted. The values do not compress: the tables they fill must
	// outweigh the WAL files pebble keeps for reuse (up to five
	// memtables' worth), which a defragmentation leaves as they are.
	rng := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, 3<<10)
	for round := 0; round < 2; round++ {
		for i := 0; i < 2000; i++ {
			for j := range raw {
				raw[j] = byte(rng.Uint32())
			}
			val := base64.StdEncoding.EncodeToString(raw) // 4 KiB, valid UTF-8
			if _, err := cli.Put(ctx, fmt.Sprintf("old/%04d", i), val); err != nil {
				t.Fatal(err)
			}
		}
	}
	del, err := cli.Delete(ctx, "old/1", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	hashAt := del.Header.Revision
	before, err := mt.HashKV(ctx, &pb.HashKVRequest{Revision: hashAt})
	if err != nil {
		t.Fatal(err)
	}
	statusBefore, err := mt.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var failures atomic.Int64
	var wg sync.WaitGroup
	acked := make([][]string, 8)
	for w := 0; w < 8; w++ {
		wg.Add(2)
		go func(w int) { // writer: every acknowledged key must be there afterwards
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				k := fmt.Sprintf("new/%d/%d", w, i)
				if _, err := cli.Put(ctx, k, "x"); err != nil {
					failures.Add(1)
					t.Errorf("put during defrag: %v", err)
					return
				}
				acked[w] = append(acked[w], k)
			}
		}(w)
		go func() { // reader
			defer wg.Done()
			for !stop.Load() {
				if _, err := cli.Get(ctx, "old/0000"); err != nil {
					failures.Add(1)
					t.Errorf("get during defrag: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if _, err := mt.Defragment(ctx, &pb.DefragmentRequest{}); err != nil {
		t.Fatalf("defragment: %v", err)
	}
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d requests failed during defragmentation", failures.Load())
	}
	n := 0
	for _, keys := range acked {
		for _, k := range keys {
			r, err := cli.Get(ctx, k)
			if err != nil || len(r.Kvs) != 1 {
				t.Fatalf("acknowledged %s missing after defrag: %v", k, err)
			}
			n++
		}
	}
	after, err := mt.HashKV(ctx, &pb.HashKVRequest{Revision: hashAt})
	if err != nil {
		t.Fatal(err)
	}
	if after.Hash != before.Hash {
		t.Fatalf("HashKV at %d changed across defrag: %x -> %x", hashAt, before.Hash, after.Hash)
	}
	statusAfter, err := mt.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("defrag took %v with %d puts acknowledged meanwhile; db size %d -> %d, in use %d -> %d",
		took, n, statusBefore.DbSize, statusAfter.DbSize, statusBefore.DbSizeInUse, statusAfter.DbSizeInUse)
	if statusAfter.DbSize >= statusBefore.DbSize {
		t.Fatalf("defrag reclaimed no disk space: %d -> %d", statusBefore.DbSize, statusAfter.DbSize)
	}
}

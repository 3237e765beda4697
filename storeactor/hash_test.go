package storeactor_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/metastore/metastore/storeactor"
)

// The hash of a revision is the same before and after a compaction at it
// (physical, then defragmented), after a restart, and on a member that got
// the compacted data from a snapshot — also when every key was deleted at
// the compaction revision. Members compare these hashes to find
// corruption, so any change would be reported as one.
func TestHashKVAtCompactionRevision(t *testing.T) {
	fs := vfs.NewMem()
	h := newHarness(t, onMemFS(t, fs, "/leader"))
	for i := 0; i < 12; i++ {
		h.put(fmt.Sprint("k", i%3), fmt.Sprint(i))
	}
	h.must(delReq("k", "l")) // every key deleted at rev
	rev := h.rev()
	h.put("k9", "after")
	hash := func(h *harness, at int64) uint32 {
		t.Helper()
		kh, err := h.reader.HashKV(at)
		if err != nil {
			t.Fatalf("HashKV(%d): %v", at, err)
		}
		if kh.Revision != at {
			t.Fatalf("HashKV(%d) hashed revision %d", at, kh.Revision)
		}
		return kh.Hash
	}
	atRev, atCur, atMid := hash(h, rev), hash(h, rev+1), hash(h, 7)
	if atRev == atCur || atRev == atMid {
		t.Fatal("different revisions hash alike")
	}

	h.must(compactReq(rev, true))
	eventually(t, "physical compaction", func() bool { return h.reader.View().CompactDone == rev })
	d := &storeactor.Defragmenter{DB: h.cfg.DB, Pacer: storeactor.NewCompactionPacer()}
	if err := d.Defragment(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := hash(h, rev); got != atRev {
		t.Fatalf("hash at the compaction revision %d: %08x, before the compaction %08x", rev, got, atRev)
	}
	if got := hash(h, rev+1); got != atCur {
		t.Fatalf("hash at %d: %08x after the compaction, %08x before", rev+1, got, atCur)
	}
	if _, err := h.reader.HashKV(rev - 1); err != rpctypes.ErrGRPCCompacted {
		t.Fatalf("HashKV below the compaction point: %v", err)
	}
	h.restart()
	if got := hash(h, rev); got != atRev {
		t.Fatalf("hash at %d after a restart: %08x, want %08x", rev, got, atRev)
	}

	// A member that never held the compacted versions.
	follower := newHarness(t, onMemFS(t, fs, "/follower"))
	shipCheckpoint(t, h.cfg.DB, fs, "/recv/1")
	reply := make(chan error, 1)
	follower.kit.Root().Send(follower.pid, &storeactor.InstallSnapshot{FS: fs, Dir: "/recv/1", Reply: reply})
	if err := <-reply; err != nil {
		t.Fatal(err)
	}
	if got := hash(follower, rev); got != atRev {
		t.Fatalf("follower's hash at %d: %08x, want %08x", rev, got, atRev)
	}
}

// The hash does not depend on how far physical compaction has got: hashed
// between every step of a compaction (one revision per step), it is the
// hash from before the compaction.
func TestHashKVDuringPhysicalCompaction(t *testing.T) {
	h := newHarness(t, func(c *storeactor.Config) { c.CompactChunk = 1 })
	for i := 0; i < 40; i++ {
		h.put(fmt.Sprint("k", i%4), fmt.Sprint(i))
	}
	rev := h.rev() - 3
	before, err := h.reader.HashKV(rev)
	if err != nil {
		t.Fatal(err)
	}
	var steps atomic.Int32
	storeactor.SetAfterCompactStep(func() {
		kh, err := h.reader.HashKV(rev)
		if err != nil || kh.Hash != before.Hash {
			t.Errorf("after step to %d: hash %08x (%v), before the compaction %08x",
				h.reader.View().CompactDone, kh.Hash, err, before.Hash)
		}
		steps.Add(1)
	})
	t.Cleanup(func() { storeactor.SetAfterCompactStep(nil) })
	h.must(compactReq(rev, false))
	// One step per revision with changes: 2..rev.
	eventually(t, "every step hashed", func() bool { return steps.Load() == int32(rev-1) })
}

package raftactor_test

import (
	"go.etcd.io/raft/v3"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// A DB copied from a running member (a checkpoint, as a snapshot holds)
// and given the restored raft state starts a new single-voter cluster with
// another member id: the raft actor begins after the store's applied
// index, the old log is gone, the keys are kept, and a new proposal is
// applied at the next revision and index — also after a restart.
func TestRestoredStateStartsAfterApplied(t *testing.T) {
	fs := vfs.NewMem()
	src, err := storeactor.OpenPebbleFS(fs, "/src")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	old := startNode(t, nodeOpts{db: src, raftConfig: func(c *raftactor.Config) {
		c.SnapshotCount, c.CatchUp = 3, 1 // so that the copy has a truncation point too
	}})
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		old.put(k, "v-"+k)
	}
	oldTerm := old.status().Term
	if err := src.Checkpoint("/copy", pebble.WithFlushedWAL()); err != nil {
		t.Fatal(err)
	}
	old.put("f", "after the copy")

	db, err := storeactor.OpenPebbleFS(fs, "/copy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // registered before the new kit: actors stop first
	if !hasKey(t, db, "rs") {
		t.Fatal("the copy should hold the old truncation point")
	}
	r, err := storeactor.NewReader(db)
	if err != nil {
		t.Fatal(err)
	}
	before := *r.View()
	if before.Applied == 0 || before.AppliedTerm == 0 || before.Rev != 6 {
		t.Fatalf("copied store view %+v", before)
	}

	const newID = 0x1c4d5e6f7a8b9c0d
	b := db.NewBatch()
	if err := raftactor.WriteRestoredState(b, before.Applied, before.AppliedTerm, []uint64{newID}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()

	n := &node{t: t, db: db, clock: testkit.NewFakeClock(epoch), fatal: make(chan error, 1)}
	wal := openWAL(t, vfs.NewMem())
	n.kit = testkit.New(t)
	n.ids = raftactor.NewIDGen(newID, n.clock.Now())
	n.cfg = raftactor.Config{
		DB: db, WAL: wal, ID: newID, ClusterID: 0x5678, Peers: []raft.Peer{{ID: newID}},
		Clock: n.clock, TickInterval: 100 * time.Millisecond, ElectionTicks: 10,
	}
	startAs := func() {
		t.Helper()
		n.startStore(nil)
		n.cfg.Store, n.cfg.StoreView = n.storePID, n.reader.View
		props, view := raftactor.New(n.cfg)
		n.raftView = view
		n.raftPID = n.spawn("raft", props)
		deadline := time.Now().Add(wait)
		for view.Load().Lead != newID {
			if time.Now().After(deadline) {
				t.Fatalf("restored member never led: %+v", *view.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	startAs()

	if st := n.status(); st.Term <= before.AppliedTerm || st.Committed < before.Applied+1 {
		t.Fatalf("restored raft status %+v; store applied %d at term %d (old member at term %d)",
			st, before.Applied, before.AppliedTerm, oldTerm)
	}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if v, _, ok := n.get(k); !ok || v != "v-"+k {
			t.Fatalf("%s = %q, %v after restore", k, v, ok)
		}
	}
	if _, _, ok := n.get("f"); ok {
		t.Fatal("a write made after the copy is in the restored store")
	}
	if rev := n.put("g", "new"); rev != before.Rev+1 {
		t.Fatalf("first write after restore at revision %d, want %d", rev, before.Rev+1)
	}
	// The leader's empty entry at Applied+1, the put at Applied+2.
	if got := n.reader.View().Applied; got != before.Applied+2 {
		t.Fatalf("store applied %d after one put, want %d", got, before.Applied+2)
	}
	if first, _, cnt := raftLogBounds(wal); cnt == 0 || first != before.Applied+1 {
		t.Fatalf("new log starts at %d (%d entries), want %d", first, cnt, before.Applied+1)
	}

	// A restart of the restored member goes on from where it is.
	n.kit.Stop(n.raftPID)
	n.kit.Stop(n.storePID)
	startAs()
	if rev := n.put("h", "after restart"); rev != before.Rev+2 {
		t.Fatalf("write after restart at revision %d, want %d", rev, before.Rev+2)
	}
	if v, _, ok := n.get("g"); !ok || v != "new" {
		t.Fatalf("g = %q, %v after restart", v, ok)
	}
}

// Bad input is refused before anything is written.
func TestWriteRestoredStateRefusesBadInput(t *testing.T) {
	db := openDB(t)
	b := db.NewBatch()
	defer b.Close()
	if err := raftactor.WriteRestoredState(b, 5, 2, nil); err == nil {
		t.Fatal("no voters accepted")
	}
	if err := raftactor.WriteRestoredState(b, 5, 0, []uint64{1}); err == nil {
		t.Fatal("index without term accepted")
	}
	if b.Count() != 0 {
		t.Fatalf("%d operations written on refusal", b.Count())
	}
}

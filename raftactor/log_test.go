package raftactor

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// A raft log of the pebble era (data dir format 1: entries and hard state
// in pebble) loads as it was, from the WAL, and leaves pebble; a crash
// after the WAL took it but before pebble let go moves it again, to the
// same result.
func TestLoadLogMovesPebbleLogToWAL(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	wal := openTestWAL(t, fs)
	saveLog(t, db, []uint64{1, 2, 3}, 5, 7)
	const want = "4@3:put, 5@3:put, 6@3:put, 7@3:put"

	// The crash: the WAL has the log, pebble still has it too.
	if err := moveLogToWAL(db, wal, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	saveLog(t, db, []uint64{1, 2, 3}, 5, 7)

	hs, ents := savedLog(t, db, wal)
	if describeEntries(ents) != want || hs.GetCommit() != 5 || hs.GetTerm() != 3 || hs.GetVote() != 1 {
		t.Fatalf("moved log: %v %s, want commit 5 term 3 vote 1, %s", hs, describeEntries(ents), want)
	}
	for _, k := range [][]byte{keyHardState, entryKey(4), entryKey(7)} {
		if _, ok, err := get(db, k); ok || err != nil {
			t.Fatalf("pebble still holds %q (%v)", k, err)
		}
	}
	if _, ok, _ := get(db, keySnapshot); !ok {
		t.Fatal("the truncation point left pebble")
	}
	// The WAL alone has it after a restart.
	wal.Close()
	hs, ents = savedLog(t, db, openTestWAL(t, fs))
	if describeEntries(ents) != want || hs.GetCommit() != 5 {
		t.Fatalf("after reopening the WAL: %v %s", hs, describeEntries(ents))
	}
}

// A hard state older than the store's applied entry (its commit index
// lost with a power loss the store's batch survived) is raised to it when
// the log holds that entry at the term the store applied it; not when the
// term differs (the store applied something else) or the log lacks it.
func TestLoadLogRaisesCommitToStoreApplied(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		applied, appliedTerm uint64
		wantCommit           uint64
	}{
		{"behind the store", 6, 3, 6},
		{"another term", 6, 2, 5},
		{"past the log", 9, 3, 5},
		{"store behind", 4, 3, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, wal := openTestDB(t)
			saveLog(t, db, []uint64{1, 2, 3}, 5, 7)
			ms, _, _, err := loadLog(db, wal, tc.applied, tc.appliedTerm, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			if hs, _, _ := ms.InitialState(); hs.GetCommit() != tc.wantCommit {
				t.Fatalf("commit %d, want %d", hs.GetCommit(), tc.wantCommit)
			}
		})
	}
}

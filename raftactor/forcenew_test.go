package raftactor

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/raftwal"
)

// saveLog writes a raft state into db as the raft actor keeps it: a
// truncation point at index 3 (term 2) with voters, the hard state,
// and entries 4..last at term 3.
func saveLog(t *testing.T, db *pebble.DB, voters []uint64, commit, last uint64) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	set := func(k []byte, m proto.Message) {
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Set(k, data, nil); err != nil {
			t.Fatal(err)
		}
	}
	set(keySnapshot, &raftpb.SnapshotMetadata{Index: proto.Uint64(3), Term: proto.Uint64(2), ConfState: &raftpb.ConfState{Voters: voters}})
	set(keyHardState, &raftpb.HardState{Term: proto.Uint64(3), Vote: proto.Uint64(1), Commit: proto.Uint64(commit)})
	for i := uint64(4); i <= last; i++ {
		set(entryKey(i), &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(3), Data: []byte("put")})
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// savedLog is the log as the raft actor loads it at start.
func savedLog(t *testing.T, db *pebble.DB, wal *raftwal.WAL) (*raftpb.HardState, []*raftpb.Entry) {
	t.Helper()
	ms, _, _, err := loadLog(db, wal, 0, 0, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	hs, _, _ := ms.InitialState()
	first, _ := ms.FirstIndex()
	last, _ := ms.LastIndex()
	ents, err := ms.Entries(first, last+1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	return hs, ents
}

func describeEntries(ents []*raftpb.Entry) string {
	var out []string
	for _, e := range ents {
		what := string(e.GetData())
		if e.GetType() == raftpb.EntryConfChange {
			cc := new(raftpb.ConfChange)
			if err := proto.Unmarshal(e.GetData(), cc); err != nil {
				what = err.Error()
			} else {
				what = fmt.Sprintf("%v %x", cc.GetType(), cc.GetNodeId())
			}
		}
		out = append(out, fmt.Sprintf("%d@%d:%s", e.GetIndex(), e.GetTerm(), what))
	}
	return strings.Join(out, ", ")
}

// The rewrite is durable, in pebble, where the raft actor's start finds
// it: committed entries kept (up to what the store applied when the
// saved commit is behind), the uncommitted tail gone, the removals
// committed at the hard state's term, and etcd's log lines with the ids.
func TestForceNewClusterRewritesTheSavedLog(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		commit, storeApplied uint64
		want                 string
		wantCommit           uint64
		discarded            uint64
	}{
		{"uncommitted tail dropped", 5, 5,
			"4@3:put, 5@3:put, 6@3:ConfChangeRemoveNode 2, 7@3:ConfChangeRemoveNode 3", 7, 2},
		{"store ahead of the saved commit", 5, 6,
			"4@3:put, 5@3:put, 6@3:put, 7@3:ConfChangeRemoveNode 2, 8@3:ConfChangeRemoveNode 3", 8, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, wal := openTestDB(t)
			saveLog(t, db, []uint64{1, 2, 3}, tc.commit, 7)
			core, logs := observer.New(zap.InfoLevel)
			if err := ForceNewCluster(db, wal, 1, 0xc1, tc.storeApplied, zap.New(core)); err != nil {
				t.Fatal(err)
			}
			hs, ents := savedLog(t, db, wal)
			if got := describeEntries(ents); got != tc.want {
				t.Errorf("log after the rewrite:\n got %s\nwant %s", got, tc.want)
			}
			if hs.GetCommit() != tc.wantCommit || hs.GetTerm() != 3 || hs.GetVote() != 1 {
				t.Errorf("hard state %v, want commit %d, term 3, vote 1", hs, tc.wantCommit)
			}
			forcing := logs.FilterMessage("forcing restart member").All()
			if len(forcing) != 1 {
				t.Fatalf("logged %v", logs.All())
			}
			f := forcing[0].ContextMap()
			if f["cluster-id"] != "c1" || f["local-member-id"] != "1" || f["commit-index"] != tc.wantCommit ||
				fmt.Sprint(f["removed-member-ids"]) != "[2 3]" {
				t.Errorf("forcing restart member logged with %v", f)
			}
			if logs.FilterMessageSnippet("remove it once the cluster is recovered").Len() != 1 {
				t.Errorf("no warning to remove the flag: %v", logs.All())
			}
			if d := logs.FilterMessage("discarding uncommitted WAL entries").All(); len(d) != 1 ||
				d[0].ContextMap()["number-of-discarded-entries"] != tc.discarded {
				t.Errorf("discarding logged as %v, want %d entries", d, tc.discarded)
			}
		})
	}
}

// What the flag cannot act on leaves the saved log as it was: a member
// without raft state starts as configured (etcd ignores the flag without
// a WAL); a removed member, and a store that installed a snapshot the log
// never recorded, are refused with the reason.
func TestForceNewClusterLeavesWhatItCannotActOn(t *testing.T) {
	db, wal := openTestDB(t)
	if err := ForceNewCluster(db, wal, 1, 0xc1, 0, zap.NewNop()); err != nil {
		t.Fatalf("no raft state: %v", err)
	}
	if _, _, exists, err := loadLog(db, wal, 0, 0, zap.NewNop()); err != nil || exists {
		t.Fatalf("no raft state: the flag wrote some (%v)", err)
	}
	for _, tc := range []struct {
		name         string
		self         uint64
		storeApplied uint64
		want         string
	}{
		{"removed member", 9, 5, "member 9 is not in its raft log's configuration"},
		{"store past the log", 1, 8, "the store has applied index 8, beyond the raft log's last index 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, wal := openTestDB(t)
			saveLog(t, db, []uint64{1, 2, 3}, 5, 7)
			hsBefore, before := savedLog(t, db, wal)
			err := ForceNewCluster(db, wal, tc.self, 0xc1, tc.storeApplied, zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			hs, after := savedLog(t, db, wal)
			if !proto.Equal(hs, hsBefore) || describeEntries(after) != describeEntries(before) {
				t.Errorf("the log changed: %v %s, was %v %s", hs, describeEntries(after), hsBefore, describeEntries(before))
			}
		})
	}
}

// openTestDB opens a DB and a WAL in memory.
func openTestDB(t *testing.T) (*pebble.DB, *raftwal.WAL) {
	t.Helper()
	return openTestDBOn(t, vfs.NewMem())
}

// openTestDBOn opens a DB and a WAL on fs.
func openTestDBOn(t *testing.T, fs vfs.FS) (*pebble.DB, *raftwal.WAL) {
	t.Helper()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, openTestWAL(t, fs)
}

func openTestWAL(tb testing.TB, fs vfs.FS) *raftwal.WAL {
	tb.Helper()
	wal, err := raftwal.Open(raftwal.Options{FS: fs, Dir: "/wal"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { wal.Close() })
	return wal
}

// entryKey is where a format 1 data dir kept log entry index in pebble
// (moveLogToWAL reads them from there).
func entryKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), entryPrefix...), index)
}

// A member that learned entry 6 committed (a Ready with only the commit
// index moved: persisted without sync) and was killed before its store's
// apply of 6 reached the disk keeps 6 through --force-new-cluster: the
// unsynced hard state was written, so the WAL's commit index covers it.
// 6 may have been acknowledged to its client.
func TestForceNewClusterAfterAKillKeepsWhatWasKnownCommitted(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db, wal := openTestDBOn(t, fs)
	saveLog(t, db, []uint64{1, 2, 3}, 5, 7)
	if _, _, _, err := loadLog(db, wal, 0, 0, zap.NewNop()); err != nil { // moves the log to the WAL, synced
		t.Fatal(err)
	}
	if err := wal.AppendHardState(&raftpb.HardState{Term: proto.Uint64(3), Vote: proto.Uint64(1), Commit: proto.Uint64(6)}); err != nil {
		t.Fatal(err)
	}
	if err := wal.Commit(false); err != nil {
		t.Fatal(err)
	}
	killed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 1))})
	wal2 := openTestWAL(t, killed)
	if err := ForceNewCluster(db, wal2, 1, 0xc1, 5, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	_, ents := savedLog(t, db, wal2)
	if got, want := describeEntries(ents), "4@3:put, 5@3:put, 6@3:put, 7@3:ConfChangeRemoveNode 2, 8@3:ConfChangeRemoveNode 3"; got != want {
		t.Errorf("log after force-new-cluster:\n got %s\nwant %s", got, want)
	}
}

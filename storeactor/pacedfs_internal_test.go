package storeactor

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/raftwal"
)

// fakePacer is a pacer on a fake clock whose sleeps advance the clock and
// are recorded.
func fakePacer() (*CompactionPacer, *time.Time, *time.Duration) {
	now := time.Unix(1000, 0)
	var slept time.Duration
	p := &CompactionPacer{
		now:   func() time.Time { return now },
		sleep: func(d time.Duration) { slept += d; now = now.Add(d) },
	}
	return p, &now, &slept
}

func TestCompactionPacer(t *testing.T) {
	p, now, slept := fakePacer()
	fs := p.FS(vfs.NewMem())
	wal, err := fs.Create("000001.log", walWriteCategory)
	if err != nil {
		t.Fatal(err)
	}
	sst, err := fs.Create("000002.sst", compactionWriteCategory)
	if err != nil {
		t.Fatal(err)
	}
	flush, err := fs.Create("000003.sst", "pebble-memtable-flush")
	if err != nil {
		t.Fatal(err)
	}
	mib := make([]byte, 1<<20)
	write := func(f vfs.File) time.Duration {
		t.Helper()
		before := *slept
		if _, err := f.Write(mib); err != nil {
			t.Fatal(err)
		}
		return *slept - before
	}

	if d := write(sst); d != 0 {
		t.Fatalf("pacer off: a compaction write slept %v", d)
	}
	restore := p.Limit(1 << 20) // 1 MiB/s
	if d := write(sst); d != 0 {
		t.Fatalf("no client writes: a compaction write slept %v, want full speed", d)
	}
	if err := wal.SyncData(); err != nil {
		t.Fatal(err)
	}
	// The bucket starts full (pacerBurst): 1 MiB waits for what the
	// burst lacks.
	want := time.Second - time.Duration(float64(pacerBurst)/(1<<20)*float64(time.Second))
	if d := write(sst); d != want {
		t.Fatalf("client writing: 1 MiB slept %v, want %v", d, want)
	}
	if d := write(flush); d != 0 {
		t.Fatalf("a flush slept %v: only compactions are paced", d)
	}
	*now = now.Add(foregroundWindow + time.Millisecond)
	if d := write(sst); d != 0 {
		t.Fatalf("%v after the last WAL sync: slept %v, want full speed", foregroundWindow, d)
	}
	if err := wal.Sync(); err != nil {
		t.Fatal(err)
	}
	restore()
	if d := write(sst); d != 0 {
		t.Fatalf("pacer restored to off: slept %v", d)
	}
}

// The raft log's WAL, opened on the pacer's FS, tells it clients are
// writing: its synced appends are what acknowledge writes.
func TestCompactionPacerSeesRaftWALSyncs(t *testing.T) {
	p, _, slept := fakePacer()
	fs := p.FS(vfs.NewMem())
	w, err := raftwal.Open(raftwal.Options{FS: fs, Dir: "raftlog"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sst, err := fs.Create("000002.sst", compactionWriteCategory)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Limit(1 << 20)()
	if err := w.AppendHardState(&raftpb.HardState{Term: proto.Uint64(1)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(true); err != nil {
		t.Fatal(err)
	}
	if _, err := sst.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if *slept == 0 {
		t.Fatal("a compaction write right after a synced raft log append ran at full speed")
	}
}

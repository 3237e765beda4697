package raftwal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func entry(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Data: []byte(data)}
}

func open(t *testing.T, fs vfs.FS, segSize int64) *WAL {
	t.Helper()
	w, err := Open(Options{FS: fs, Dir: "wal", SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustCommit(t *testing.T, w *WAL, ents []*raftpb.Entry, hs *raftpb.HardState) {
	t.Helper()
	if err := w.AppendEntries(ents); err != nil {
		t.Fatal(err)
	}
	if hs != nil {
		if err := w.AppendHardState(hs); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(true); err != nil {
		t.Fatal(err)
	}
}

// readAll returns the data of every entry the WAL holds, by index.
func readAll(t *testing.T, w *WAL) map[uint64]string {
	t.Helper()
	first, last := w.Bounds()
	got := map[uint64]string{}
	if first > last {
		return got
	}
	ents, err := w.ReadEntries(first, last+1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(ents)) != last-first+1 {
		t.Fatalf("read %d entries of %d-%d", len(ents), first, last)
	}
	for _, e := range ents {
		got[e.GetIndex()] = fmt.Sprintf("%d/%s", e.GetTerm(), e.GetData())
	}
	return got
}

func TestReopenOverwriteTruncate(t *testing.T) {
	fs := vfs.NewMem()
	w := open(t, fs, 0)
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, entry(i, 1, fmt.Sprint("a", i)))
	}
	mustCommit(t, w, ents, &raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(5)})
	// A new leader overwrites 6..: 7-10 go.
	mustCommit(t, w, []*raftpb.Entry{entry(6, 2, "b6")}, &raftpb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(3), Commit: proto.Uint64(6)})
	if err := w.AppendTruncate(4); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, w, []*raftpb.Entry{entry(5, 3, "c5")}, nil)
	w.Close()

	w = open(t, fs, 0)
	defer w.Close()
	want := map[uint64]string{1: "1/a1", 2: "1/a2", 3: "1/a3", 4: "1/a4", 5: "3/c5"}
	if got := readAll(t, w); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	hs, err := w.HardState()
	if err != nil || hs.GetTerm() != 2 || hs.GetVote() != 3 || hs.GetCommit() != 6 {
		t.Fatalf("hard state %v %v", hs, err)
	}
	if _, err := w.ReadEntries(6, 7, 0); err == nil {
		t.Fatal("read an entry the WAL does not hold")
	}
}

// Segments roll over, Release removes the oldest, and the hard state
// survives the removal of the segment it was written in.
func TestSegmentsRollAndRelease(t *testing.T) {
	fs := vfs.NewMem()
	w := open(t, fs, 4096)
	mustCommit(t, w, nil, &raftpb.HardState{Term: proto.Uint64(7), Vote: proto.Uint64(1), Commit: proto.Uint64(0)})
	for i := uint64(1); i <= 200; i++ {
		mustCommit(t, w, []*raftpb.Entry{entry(i, 7, string(bytes.Repeat([]byte{'x'}, 100)))}, nil)
	}
	if len(w.segs) < 5 {
		t.Fatalf("%d segments for 200 entries of 100 B in 4 KiB segments", len(w.segs))
	}
	if err := w.Release(150); err != nil {
		t.Fatal(err)
	}
	first, last := w.Bounds()
	if first > 151 || first < 100 || last != 200 {
		t.Fatalf("after release up to 150 the WAL holds %d-%d", first, last)
	}
	w.Close()
	w = open(t, fs, 4096)
	defer w.Close()
	if f2, l2 := w.Bounds(); f2 != first || l2 != last {
		t.Fatalf("reopened WAL holds %d-%d, had %d-%d", f2, l2, first, last)
	}
	if got := readAll(t, w); len(got) != int(last-first+1) {
		t.Fatalf("read %d entries", len(got))
	}
	if hs, _ := w.HardState(); hs.GetTerm() != 7 || hs.GetVote() != 1 {
		t.Fatalf("hard state after release: %v", hs)
	}
	// A record bigger than a segment makes its own segment grow.
	mustCommit(t, w, []*raftpb.Entry{entry(201, 7, string(bytes.Repeat([]byte{'y'}, 10000)))}, nil)
	w.Close()
	w = open(t, fs, 4096)
	defer w.Close()
	if _, l := w.Bounds(); l != 201 {
		t.Fatalf("last %d after a big entry", l)
	}
}

// A segment cut short where it is not the last is corruption, not a torn
// tail: Open refuses it.
func TestCorruptMiddleSegmentRefused(t *testing.T) {
	fs := vfs.NewMem()
	w := open(t, fs, 4096)
	for i := uint64(1); i <= 100; i++ {
		mustCommit(t, w, []*raftpb.Entry{entry(i, 1, string(bytes.Repeat([]byte{'x'}, 100)))}, nil)
	}
	w.Close()
	f, err := fs.OpenReadWrite("wal/"+segmentName(2), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff}, 1000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(Options{FS: fs, Dir: "wal", SegmentSize: 4096}); err == nil {
		t.Fatal("opened a WAL whose second segment is corrupt")
	}
}

// op is one logical change of the model log.
type op struct {
	ents     []*raftpb.Entry
	hs       *raftpb.HardState
	truncate *uint64
}

type model struct {
	ents map[uint64]string
	last uint64
	hs   string
}

func (m *model) apply(o op) {
	if o.truncate != nil {
		for i := *o.truncate + 1; i <= m.last; i++ {
			delete(m.ents, i)
		}
		m.last = min(m.last, *o.truncate)
	}
	for _, e := range o.ents {
		for i := e.GetIndex(); i <= m.last; i++ {
			delete(m.ents, i)
		}
		m.ents[e.GetIndex()] = fmt.Sprintf("%d/%s", e.GetTerm(), e.GetData())
		m.last = e.GetIndex()
	}
	if o.hs != nil {
		m.hs = o.hs.String()
	}
}

// After a power loss at any point, with any part of what was not synced on
// disk, the WAL opens on the state after some prefix of what was written
// that includes everything synced — and keeps working from there.
func TestPowerLossKeepsSyncedPrefix(t *testing.T) {
	for seed := int64(0); seed < 40; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		fs := vfs.NewCrashableMem()
		w := open(t, fs, 2048)
		var ops []op // one per record: entries one at a time
		synced := 0
		last, term := uint64(0), uint64(1)
		released := uint64(0)
		for step := 0; step < 60; step++ {
			switch r := rng.IntN(10); {
			case r < 6:
				n := 1 + rng.IntN(5)
				from := last + 1
				if last > released+3 && rng.IntN(4) == 0 {
					from = last - uint64(rng.IntN(3)) // a new leader rewrites the tail
					term++
				}
				for i := from; i < from+uint64(n); i++ {
					e := entry(i, term, fmt.Sprint(seed, step, i, bytes.Repeat([]byte{'v'}, rng.IntN(300))))
					if err := w.AppendEntries([]*raftpb.Entry{e}); err != nil {
						t.Fatal(err)
					}
					ops = append(ops, op{ents: []*raftpb.Entry{e}})
				}
				last = from + uint64(n) - 1
			case r < 8:
				hs := &raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(uint64(rng.IntN(int(last + 1))))}
				if err := w.AppendHardState(hs); err != nil {
					t.Fatal(err)
				}
				ops = append(ops, op{hs: hs})
			case r < 9 && last > released+5:
				i := last - 2
				if err := w.AppendTruncate(i); err != nil {
					t.Fatal(err)
				}
				ops = append(ops, op{truncate: &i})
				last = i
			default:
				if last > 20 {
					released = last - 15
					if err := w.Release(released); err != nil {
						t.Fatal(err)
					}
				}
			}
			sync := rng.IntN(2) == 0
			if err := w.Commit(sync); err != nil {
				t.Fatal(err)
			}
			if sync {
				synced = len(ops)
			}
		}
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
		w.Close()
		w2, err := Open(Options{FS: crashed, Dir: "wal", SegmentSize: 2048})
		if err != nil {
			t.Fatalf("seed %d: open after power loss: %v", seed, err)
		}
		got := readAll(t, w2)
		hs, _ := w2.HardState()
		gotHS := ""
		if hs != nil {
			gotHS = hs.String()
		}
		first, gotLast := w2.Bounds()
		m := &model{ents: map[uint64]string{}}
		match := -1
		for k := 0; k <= len(ops); k++ {
			if k > 0 {
				m.apply(ops[k-1])
			}
			if k < synced || m.last != gotLast && !(len(got) == 0 && m.last < first) || m.hs != gotHS {
				continue
			}
			same := true
			for i, v := range got {
				if m.ents[i] != v {
					same = false
					break
				}
			}
			if same {
				match = k
			}
		}
		if match < 0 {
			t.Fatalf("seed %d: recovered log (last %d, hs %q) is no prefix of the %d records written (%d synced)", seed, gotLast, gotHS, len(ops), synced)
		}
		// It goes on from there, and opens again.
		mustCommit(t, w2, []*raftpb.Entry{entry(gotLast+1, term+1, "after")}, nil)
		w2.Close()
		w3, err := Open(Options{FS: crashed, Dir: "wal", SegmentSize: 2048})
		if err != nil {
			t.Fatalf("seed %d: second open: %v", seed, err)
		}
		if _, l := w3.Bounds(); l != gotLast+1 {
			t.Fatalf("seed %d: last %d after appending %d", seed, l, gotLast+1)
		}
		w3.Close()
	}
}

// Reading a WAL that was never made (a crash before its dir was created)
// finds it empty, and changes nothing.
func TestOpenForReadingMissingDir(t *testing.T) {
	fs := vfs.NewMem()
	w, err := OpenForReading(Options{FS: fs, Dir: "wal"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.Empty() {
		t.Fatal("a WAL that does not exist is not empty")
	}
	if _, err := fs.Stat("wal"); err == nil {
		t.Fatal("reading created the dir")
	}
	if err := w.AppendHardState(&raftpb.HardState{}); err == nil {
		t.Fatal("a WAL opened for reading took an append")
	}
}

// An unsynced Commit still writes: the hard state reaches the file (a
// kill -9 keeps what write(2) handed the kernel), so the commit index it
// carries outlives the process; see Commit.
func TestUnsyncedHardStateSurvivesAKill(t *testing.T) {
	fs := vfs.NewCrashableMem()
	w := open(t, fs, 1<<20)
	defer w.Close()
	mustCommit(t, w, []*raftpb.Entry{entry(1, 1, "a"), entry(2, 1, "b")}, &raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(0)})
	if err := w.AppendHardState(&raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(2)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(false); err != nil {
		t.Fatal(err)
	}
	killed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 1))})
	w2, err := Open(Options{FS: killed, Dir: "wal"})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	hs, err := w2.HardState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.GetCommit() != 2 {
		t.Fatalf("after a kill the WAL holds commit %d, want 2", hs.GetCommit())
	}
}

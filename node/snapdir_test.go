package node

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
)

// What a crash left under member/snap (checkpoints being sent, snapshots
// received but not installed, the table made from one) is removed when
// the member opens its storage again, and logged; anything else is left.
func TestStartRemovesSnapshotLeftovers(t *testing.T) {
	dataDir := t.TempDir()
	snap := filepath.Join(dataDir, "member", "snap")
	recv := filepath.Base(raftactor.ReceivedSnapshotDir(vfs.Default, snap, 42, 3))
	files := map[string]string{
		"checkpoint-1700000000-1/000005.sst": "sst",
		"checkpoint-1700000000-1/MANIFEST":   "manifest",
		recv + "/000007.sst":                 "sst",
		recv + ".sst":                        "table",
		"operator-notes.txt":                 "not ours",
	}
	for name, data := range files {
		p := filepath.Join(snap, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zap.InfoLevel)
	n := &Node{cfg: Config{DataDir: dataDir}, lg: zap.New(core)}
	if err := n.checkDataDir(); err != nil {
		t.Fatal(err)
	}
	if err := n.openStorage(); err != nil {
		t.Fatal(err)
	}
	defer n.db.Close()

	left, err := os.ReadDir(snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Name() != "operator-notes.txt" {
		t.Fatalf("left under member/snap: %v", left)
	}
	var removed []string
	for _, e := range logs.FilterMessage("removed leftover snapshot data").All() {
		removed = append(removed, filepath.Base(e.ContextMap()["path"].(string)))
	}
	slices.Sort(removed)
	if want := []string{"checkpoint-1700000000-1", recv, recv + ".sst"}; !slices.Equal(removed, want) {
		t.Fatalf("logged removals %v, want %v", removed, want)
	}
}

// A receive that fails half way (the leader went away, the archive is
// damaged) leaves nothing of what it unpacked.
func TestFailedSnapshotReceiveLeavesNothing(t *testing.T) {
	archive := snapshotArchive(t)
	for name, data := range map[string][]byte{
		"cut short": archive[:len(archive)/2],
		"not tar":   bytes.Repeat([]byte("x"), 2048),
	} {
		fs := vfs.NewMem()
		if err := receiveSnapshot(zap.NewNop(), fs, "/snap", 0, msgSnap(10, 2), bytes.NewReader(data)); err == nil {
			t.Fatalf("%s: received", name)
		}
		if names, _ := fs.List("/snap"); len(names) != 0 {
			t.Fatalf("%s: left behind: %v", name, names)
		}
	}
}

// A received snapshot that raft rejects (the member has applied past its
// index) is removed when the next one arrives; one above the applied index
// may still be installed and stays.
func TestStaleReceivedSnapshotRemovedByNextReceive(t *testing.T) {
	archive := snapshotArchive(t)
	fs := vfs.NewMem()
	receive := func(index, applied uint64) {
		t.Helper()
		if err := receiveSnapshot(zap.NewNop(), fs, "/snap", applied, msgSnap(index, 2), bytes.NewReader(archive)); err != nil {
			t.Fatal(err)
		}
	}
	dir := func(index uint64) string { return fs.PathBase(raftactor.ReceivedSnapshotDir(fs, "/snap", index, 2)) }
	receive(5, 0)
	receive(20, 0)
	receive(30, 10) // raft rejected 5 (applied 10 is past it); 20 may be next
	names, _ := fs.List("/snap")
	slices.Sort(names)
	if want := []string{dir(20), dir(30)}; !slices.Equal(names, want) {
		t.Fatalf("received snapshots %v, want %v", names, want)
	}
}

func TestReceivedIndexReadsRaftsName(t *testing.T) {
	name := filepath.Base(raftactor.ReceivedSnapshotDir(vfs.Default, "/snap", 0x1234, 7))
	if index, ok := receivedIndex(name); !ok || index != 0x1234 {
		t.Fatalf("receivedIndex(%q) = %d, %v", name, index, ok)
	}
	for _, other := range []string{name + ".sst", "recv-x", "checkpoint-1-2"} {
		if _, ok := receivedIndex(other); ok {
			t.Fatalf("receivedIndex(%q) took it for a received snapshot", other)
		}
	}
}

// snapshotArchive is the archive of a fresh DB's snapshot.
func snapshotArchive(t *testing.T) []byte {
	t.Helper()
	fs := vfs.NewMem()
	db, err := storeactor.OpenPebbleFS(fs, "/db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	data, err := storeactor.NewSnapshotter(db, fs, "/checkpoints").Open()
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	b, err := io.ReadAll(data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func msgSnap(index, term uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), Snapshot: &raftpb.Snapshot{
		Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term)},
	}}
}

package node_test

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
)

const (
	loneDir    = "/data/lone"
	loneRecord = loneDir + "/member/metastore.json"
)

// An etcd data dir — either half of etcd's layout is enough — is refused
// with a message that says how to bring its data over, and nothing is
// written beside etcd's files.
func TestStartRefusesEtcdDataDir(t *testing.T) {
	for _, etcdFile := range []string{"member/wal/0000000000000000-0000000000000000.wal", "member/snap/db"} {
		t.Run(etcdFile, func(t *testing.T) {
			fs := vfs.NewMem()
			writeFile(t, fs, loneDir+"/"+etcdFile, "etcd's")
			before := tree(t, fs, "/")
			err := startErr(loneFSConfig(fs))
			if err == nil {
				t.Fatal("started on an etcd data dir")
			}
			for _, want := range []string{`"` + loneDir + `"`, "etcd data dir", "metastoreutl migrate from-etcd " + loneDir + " --data-dir", "docs/migration.md"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if after := tree(t, fs, "/"); !slices.Equal(before, after) {
				t.Fatalf("the refused start changed the files: before %v, after %v", before, after)
			}
		})
	}
}

// A data dir that metastoreutl is migrating into, or whose migration was
// interrupted, holds the migration marker: a member refuses it, untouched,
// even with a complete-looking DB beside the marker.
func TestStartRefusesDataDirBeingMigrated(t *testing.T) {
	fs := vfs.NewMem()
	writeFile(t, fs, loneDir+"/member/"+node.MigratingMarker, "")
	writeFile(t, fs, loneDir+"/member/pebble/MANIFEST-000001", "half-written")
	before := tree(t, fs, "/")
	err := startErr(loneFSConfig(fs))
	if err == nil || !strings.Contains(err.Error(), "metastoreutl migrate from-etcd") || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("start on a data dir being migrated: %v", err)
	}
	if after := tree(t, fs, "/"); !slices.Equal(before, after) {
		t.Fatalf("the refused start changed the files: before %v, after %v", before, after)
	}
}

// A data dir written by a newer MetaStore (a greater format version) is
// refused, untouched.
func TestStartRefusesNewerFormat(t *testing.T) {
	fs := vfs.NewMem()
	writeFile(t, fs, loneRecord, `{"format":3}`)
	err := startErr(loneFSConfig(fs))
	if err == nil || !strings.Contains(err.Error(), "format version 3, newer than the 2") {
		t.Fatalf("start on a format 3 data dir: %v", err)
	}
	if got := tree(t, fs, "/"); !slices.Equal(got, []string{"/data", "/data/lone", "/data/lone/member", loneRecord}) {
		t.Fatalf("the refused start changed the files: %v", got)
	}
}

// A data dir made before the format record (member/pebble and no
// record) starts with its data, and gets the record.
func TestStartRecordsFormatOfOlderDataDir(t *testing.T) {
	fs := vfs.NewMem()
	n := startLone(t, fs)
	put := putOne(t, n, "k", "v")
	n.Stop()
	if err := fs.Remove(loneRecord); err != nil {
		t.Fatal(err)
	}
	n = startLone(t, fs)
	checkValue(t, n, "k", "v", put)
	var rec map[string]any
	if err := json.Unmarshal([]byte(readFile(t, fs, loneRecord)), &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec) != 1 || rec["format"] != 2.0 {
		t.Fatalf("format record written on the older data dir: %v", rec)
	}
}

// With WALDir, the WAL is there and not in the data dir; after a power
// loss the member restarts with every write it acknowledged, from the WAL
// alone (nothing was flushed). Starts that name no WAL dir, another one,
// or the right path with the WAL gone (its disk not mounted) are refused
// and change nothing: the right start still finds everything.
func TestWALDirRestartFindsEveryWrite(t *testing.T) {
	disk := vfs.NewCrashableMem()
	cfg := loneFSConfig(disk)
	cfg.WALDir = "/wal"
	n := nodetest.Start(t, cfg)
	put := putOne(t, n, "k", "v")
	if logs := withSuffix(t, disk, "/wal", ".log"); len(logs) == 0 {
		t.Fatal("no WAL in --wal-dir")
	}
	if logs := withSuffix(t, disk, loneDir+"/member/pebble", ".log"); len(logs) > 0 {
		t.Fatalf("WAL files in the data dir too: %v", logs)
	}

	crashed := disk.CrashClone(vfs.CrashCloneCfg{})
	for _, tc := range []struct{ walDir, want string }{
		{"", `has its WAL in "/wal", but --wal-dir is not set: start the member with --wal-dir=/wal`},
		{"/elsewhere", `has its WAL in "/wal", but --wal-dir is "/elsewhere"`},
	} {
		cfg := loneFSConfig(crashed)
		cfg.WALDir = tc.walDir
		if err := startErr(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("start with --wal-dir=%q: %v; want an error saying %q", tc.walDir, err, tc.want)
		}
	}
	unmounted := crashed.CrashClone(vfs.CrashCloneCfg{})
	if err := unmounted.RemoveAll("/wal"); err != nil {
		t.Fatal(err)
	}
	cfg = loneFSConfig(unmounted)
	cfg.WALDir = "/wal"
	if err := startErr(cfg); err == nil || !strings.Contains(err.Error(), "is its disk mounted?") {
		t.Errorf("start with an empty --wal-dir: %v", err)
	}

	cfg = loneFSConfig(crashed)
	cfg.WALDir = "/wal"
	checkValue(t, nodetest.Start(t, cfg), "k", "v", put)
}

// Two data dirs cannot share one WAL dir: pebble would take the other's
// WAL files for its own.
func TestWALDirOfAnotherMemberRefused(t *testing.T) {
	fs := vfs.NewMem()
	cfg := loneFSConfig(fs)
	cfg.WALDir = "/wal"
	nodetest.Start(t, cfg).Stop()
	cfg.DataDir = "/data/other"
	if err := startErr(cfg); err == nil || !strings.Contains(err.Error(), "holds the WAL of another data dir") {
		t.Fatalf("start of a second data dir on the same WAL dir: %v", err)
	}
}

// startErr starts a member with cfg, expecting a refusal.
func startErr(cfg node.Config) error {
	n, err := node.Start(cfg)
	if err == nil {
		n.Stop()
	}
	return err
}

func putOne(t *testing.T, n *node.Node, k, v string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := nodetest.Client(t, n).Put(ctx, k, v)
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

// checkValue wants k to hold v, written at rev.
func checkValue(t *testing.T, n *node.Node, k, v string, rev int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := nodetest.Client(t, n).Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != v || got.Kvs[0].ModRevision != rev {
		t.Fatalf("%s: %v; want %s at revision %d", k, got.Kvs, v, rev)
	}
}

func writeFile(t *testing.T, fs vfs.FS, path, content string) {
	t.Helper()
	if err := fs.MkdirAll(fs.PathDir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, fs vfs.FS, path string) string {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tree lists every path under dir, depth first, sorted.
func tree(t *testing.T, fs vfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	var out []string
	for _, name := range names {
		p := fs.PathJoin(dir, name)
		out = append(out, p)
		if st, err := fs.Stat(p); err == nil && st.IsDir() {
			out = append(out, tree(t, fs, p)...)
		}
	}
	return out
}

func withSuffix(t *testing.T, fs vfs.FS, dir, suffix string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, suffix) })
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/node"
)

// A restore with --bump-revision 1000 --mark-compacted and --wal-dir:
// the new member starts 1000 revisions on, compacted there (reads and
// watches from before are refused as compacted, so clients re-list), with
// its WAL in the WAL dir; and the restore logs what etcdutl logs.
func TestRestoreBumpRevisionWALDir(t *testing.T) {
	fx := makeSnapshot(t)
	tmp := t.TempDir()
	out, walDir := filepath.Join(tmp, "new"), filepath.Join(tmp, "wal")
	peer := "http://127.0.0.1:12381"
	_, e, code := runCLI("snapshot", "restore", fx.file, "--data-dir", out, "--wal-dir", walDir, "--name", "b",
		"--initial-cluster", "b="+peer, "--initial-advertise-peer-urls", peer, "--bump-revision", "1000", "--mark-compacted")
	if code != 0 {
		t.Fatalf("restore: %d %s", code, e)
	}
	bumped := fx.rev + 1000
	id, err := node.NewIdentity("b", map[string][]string{"b": {peer}}, []string{peer}, "etcd-cluster")
	must(t, err)
	for _, re := range []string{
		`restoring snapshot\t\{"path": "[^"]+", "wal-dir": "` + walDir + `", "data-dir": "` + out + `"`,
		fmt.Sprintf(`bumping latest revision\t\{"latest-revision": %d, "bump-amount": 1000, "new-latest-revision": %d\}`, fx.rev, bumped),
		fmt.Sprintf(`marking revision compacted\t\{"revision": %d\}`, bumped),
		`added member\t\{"cluster-id": "` + fmt.Sprintf("%x", id.ClusterID) + `", "local-member-id": "0", "added-peer-id": "` + fmt.Sprintf("%x", id.MemberID) +
			`", "added-peer-peer-urls": \["` + peer + `"\], "added-peer-is-learner": false\}`,
		`restored snapshot\t\{"path": "[^"]+", "wal-dir": "` + walDir + `", "data-dir": "` + out + `"`,
	} {
		if !regexp.MustCompile(re).MatchString(e) {
			t.Errorf("restore log has no %s:\n%s", re, e)
		}
	}
	logs, err := filepath.Glob(filepath.Join(walDir, "*.log"))
	must(t, err)
	inDB, err := filepath.Glob(filepath.Join(out, "member", "pebble", "*.log"))
	must(t, err)
	if len(logs) == 0 || len(inDB) != 0 {
		t.Fatalf("WAL files in the WAL dir %v, in the DB dir %v", logs, inDB)
	}
	// The data dir records its WAL dir: a start without it is refused.
	if _, err := node.Start(node.Config{Name: "b", DataDir: out}); err == nil || !strings.Contains(err.Error(), "--wal-dir is not set") {
		t.Fatalf("start without --wal-dir: %v", err)
	}

	_, cli := startMember(t, "b", out, peer, func(c *node.Config) { c.WALDir = walDir })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "a")
	must(t, err)
	if resp.Header.Revision != bumped || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "3" || resp.Kvs[0].ModRevision != 4 {
		t.Fatalf("get a: %v", resp)
	}
	for _, rev := range []int64{fx.rev, bumped - 1} {
		if _, err := cli.Get(ctx, "a", clientv3.WithRev(rev)); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Errorf("get a --rev %d: %v, want %v", rev, err, rpctypes.ErrCompacted)
		}
	}
	if r, err := cli.Get(ctx, "a", clientv3.WithRev(bumped)); err != nil || len(r.Kvs) != 1 {
		t.Errorf("get a --rev %d: %v %v", bumped, r, err)
	}
	wr := <-cli.Watch(ctx, "a", clientv3.WithRev(fx.rev))
	if wr.CompactRevision != bumped || !wr.Canceled {
		t.Errorf("watch from %d: compact revision %d canceled %v, want %d true", fx.rev, wr.CompactRevision, wr.Canceled, bumped)
	}
	put, err := cli.Put(ctx, "a", "4")
	must(t, err)
	if put.Header.Revision != bumped+1 {
		t.Fatalf("first write after the restore at %d, want %d", put.Header.Revision, bumped+1)
	}
}

func TestRestoreOutputDirsRefused(t *testing.T) {
	fx := makeSnapshot(t)
	tmp := t.TempDir()
	walDir := filepath.Join(tmp, "wal")
	must(t, os.Mkdir(walDir, 0o700))
	out := filepath.Join(tmp, "out")
	if _, e, code := runCLI("snapshot", "restore", fx.file, "--data-dir", out, "--wal-dir", walDir); code != exitError ||
		e != "Error: wal-dir \""+walDir+"\" exists\n" {
		t.Fatalf("restore into an existing WAL dir: %d %q", code, e)
	}
	// A failed restore leaves neither directory behind.
	bad := filepath.Join(tmp, "bad.db")
	data, err := os.ReadFile(fx.file)
	must(t, err)
	data[len(data)/2] ^= 1
	must(t, os.WriteFile(bad, data, 0o600))
	wal2 := filepath.Join(tmp, "wal2")
	if _, _, code := runCLI("snapshot", "restore", bad, "--data-dir", out, "--wal-dir", wal2); code != exitError {
		t.Fatalf("restore of a damaged file: exit %d", code)
	}
	for _, d := range []string{out, wal2} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed restore left %s (%v)", d, err)
		}
	}
}

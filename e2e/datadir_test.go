package e2e

import (
	"context"
	"errors"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A member with --wal-dir on a second directory, killed with SIGKILL while
// clients write, restarts with every write it acknowledged; its WAL is in
// that directory, not the data dir. A restart that forgets --wal-dir is
// refused, naming the flag it needs.
func TestWALDirSurvivesKill(t *testing.T) {
	walDir := filepath.Join(t.TempDir(), "wal")
	s := StartMetaStore(t, WithFlags("--wal-dir="+walDir))
	acked := killUnderWrites(t, s, s.Client(t), "wal-dir")
	if logs := filesWithSuffix(t, walDir, ".log"); len(logs) == 0 {
		t.Fatalf("no WAL file in --wal-dir %s", walDir)
	}
	if logs := filesWithSuffix(t, filepath.Join(s.DataDir, "member", "pebble"), ".log"); len(logs) > 0 {
		t.Fatalf("WAL files in the data dir: %v", logs)
	}

	args := slices.DeleteFunc(s.Args(), func(a string) bool { return strings.HasPrefix(a, "--wal-dir=") })
	_, stderr, code := runMetaStore(t, args)
	if want := "start the member with --wal-dir=" + walDir; code == 0 || !strings.Contains(stderr, want) {
		t.Fatalf("restart without --wal-dir: exit %d, stderr %q; want a refusal saying %q", code, stderr, want)
	}

	s.Restart(t)
	verifyAcked(t, s, acked)
}

// MetaStore started on a real etcd data dir exits non-zero, says how to
// bring the data over, and writes nothing there.
func TestStartRefusesEtcdDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd-data")
	etcd := StartEtcd(t, WithDataDir(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := etcd.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	etcd.Stop()
	before := listTree(t, dir)

	client, peer := "http://127.0.0.1:"+strconv.Itoa(FreePort(t)), "http://127.0.0.1:"+strconv.Itoa(FreePort(t))
	_, stderr, code := runMetaStore(t, []string{"--name=ms", "--data-dir=" + dir,
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer, "--initial-cluster=ms=" + peer})
	if code == 0 {
		t.Error("start on an etcd data dir: exit 0")
	}
	for _, want := range []string{dir, "metastoreutl migrate from-etcd " + dir + " --data-dir", "docs/migration.md"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("start on an etcd data dir: stderr does not say %q", want)
		}
	}
	if t.Failed() {
		t.Logf("stderr: %s", stderr)
	}
	if after := listTree(t, dir); !slices.Equal(before, after) {
		t.Fatalf("the refused start changed the etcd data dir: before %v, after %v", before, after)
	}
}

// runMetaStore runs the server binary with args, expecting it to refuse
// to start, and returns its output and exit code.
func runMetaStore(t *testing.T, args []string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, err := run(MetaStoreBin(t), args, 30*time.Second)
	if err == nil {
		return stdout, stderr, 0
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("run metastore: %v", err)
	}
	return stdout, stderr, exit.ExitCode()
}

// listTree lists every path under dir, relative to it.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out = append(out, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func filesWithSuffix(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
	"github.com/metastore/metastore/storeactor"
)

// startMember runs a member in-process on dataDir, advertising peerURL
// (it has no peers), and returns a client.
func startMember(t *testing.T, name, dataDir, peerURL string, opts ...func(*node.Config)) (*node.Node, *clientv3.Client) {
	t.Helper()
	cfg := nodetest.Config(name, dataDir)
	cfg.InitialAdvertisePeerURLs, cfg.InitialCluster = []string{peerURL}, map[string][]string{name: {peerURL}}
	cfg.InitialClusterToken = "etcd-cluster"
	for _, o := range opts {
		o(&cfg)
	}
	n := nodetest.Start(t, cfg)
	return n, nodetest.Client(t, n)
}

type fixture struct {
	file    string // the snapshot
	rev     int64
	hash    uint32 // HashKV at rev on the member
	leaseID clientv3.LeaseID
}

// makeSnapshot writes keys (one overwritten, one deleted) and a lease with
// a key, saves a snapshot the way etcdctl does, and stops the member.
func makeSnapshot(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	n, cli := startMember(t, "src", filepath.Join(dir, "src"), "http://127.0.0.1:2380")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"gone", "x"}} {
		if _, err := cli.Put(ctx, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	l, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	put, err := cli.Put(ctx, "leased", "v", clientv3.WithLease(l.ID))
	if err != nil {
		t.Fatal(err)
	}
	hk, err := cli.HashKV(ctx, n.ClientAddrs()[0], put.Header.Revision)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	file := filepath.Join(dir, "snap.db")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return fixture{file: file, rev: put.Header.Revision, hash: hk.Hash, leaseID: l.ID}
}

func runCLI(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return o.String(), e.String(), code
}

func TestSnapshotStatus(t *testing.T) {
	fx := makeSnapshot(t)
	st, err := os.Stat(fx.file)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI("snapshot", "status", fx.file, "-w", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	want := map[string]any{"hash": float64(fx.hash), "revision": float64(fx.rev), "totalKey": float64(3),
		"totalSize": float64(st.Size()), "version": "3.7.0"}
	if len(got) != len(want) {
		t.Fatalf("json %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("json %s = %v, want %v (all: %s)", k, got[k], v, out)
		}
	}
	// The global flag before the command, and the other formats.
	simple, _, code := runCLI("-w", "simple", "snapshot", "status", fx.file)
	if code != 0 || len(strings.Split(strings.TrimSpace(simple), ", ")) != 5 || !strings.HasSuffix(strings.TrimSpace(simple), ", 3.7.0") {
		t.Fatalf("simple (%d): %q", code, simple)
	}
	table, _, _ := runCLI("snapshot", "status", fx.file, "--write-out=table")
	// The HASH column is as wide as the hash in hex (etcdutl's %x: 7
	// digits when the first is a zero).
	if !regexp.MustCompile(`│\s+HASH\s+│ REVISION │ TOTAL KEYS │ TOTAL SIZE │ VERSION │`).MatchString(table) {
		t.Fatalf("table:\n%s", table)
	}
	fields, _, _ := runCLI("snapshot", "status", fx.file, "-w", "fields")
	if !strings.HasPrefix(fields, `"Hash" : `) || !strings.Contains(fields, `"Keys" : 3`) {
		t.Fatalf("fields:\n%s", fields)
	}
	if _, e, code := runCLI("snapshot", "status", fx.file, "-w", "xml"); code != exitBadFeature || e != "Error: unsupported output format\n" {
		t.Fatalf("xml: %d %q", code, e)
	}
	if _, e, code := runCLI("snapshot", "status"); code != exitBadArgs || !strings.Contains(e, "snapshot status requires exactly one argument") {
		t.Fatalf("no file: %d %q", code, e)
	}
}

func TestDamagedSnapshotsRefused(t *testing.T) {
	fx := makeSnapshot(t)
	data, err := os.ReadFile(fx.file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x40
	corrupt := filepath.Join(dir, "corrupt.db")
	truncated := filepath.Join(dir, "truncated.db")
	must(t, os.WriteFile(corrupt, flipped, 0o600))
	must(t, os.WriteFile(truncated, data[:len(data)-1000], 0o600))

	_, e, code := runCLI("snapshot", "status", corrupt)
	if code != exitError || !strings.Contains(e, "snapshot file integrity check failed: expected sha256 [") {
		t.Fatalf("status of a corrupted file: %d %q", code, e)
	}
	_, e, code = runCLI("snapshot", "status", truncated)
	if code != exitError || !strings.Contains(e, "sha256 checksum not found") {
		t.Fatalf("status of a truncated file: %d %q", code, e)
	}
	out := filepath.Join(dir, "out")
	_, e, code = runCLI("snapshot", "restore", corrupt, "--data-dir", out)
	// etcdutl's words, which scripts match at the start of the line.
	if code != exitError || !regexp.MustCompile(`(?m)^Error: expected sha256 \[[0-9 ]+\], got \[[0-9 ]+\]$`).MatchString(e) {
		t.Fatalf("restore of a corrupted file: %d %q", code, e)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore left %s behind (%v)", out, err)
	}
	_, e, code = runCLI("snapshot", "restore", truncated, "--data-dir", out)
	if code != exitError || !strings.Contains(e, "snapshot missing hash but --skip-hash-check=false") {
		t.Fatalf("restore of a truncated file: %d %q", code, e)
	}
	// Skipping the check does not make a broken archive usable.
	_, e, code = runCLI("snapshot", "restore", truncated, "--data-dir", out, "--skip-hash-check")
	if code != exitError || !strings.Contains(e, "not a MetaStore snapshot archive") {
		t.Fatalf("restore of a truncated file without the check: %d %q", code, e)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore left %s behind (%v)", out, err)
	}
	// The archive alone (trailer cut off) restores with --skip-hash-check.
	bare := filepath.Join(dir, "bare.db")
	must(t, os.WriteFile(bare, data[:len(data)-32], 0o600))
	if _, e, code := runCLI("snapshot", "restore", bare, "--data-dir", out, "--skip-hash-check"); code != 0 {
		t.Fatalf("restore of the bare archive: %d %q", code, e)
	}
}

func TestRestoreStartsNewMember(t *testing.T) {
	fx := makeSnapshot(t)
	out := filepath.Join(t.TempDir(), "new")
	peer := "http://127.0.0.1:12380"
	_, e, code := runCLI("snapshot", "restore", fx.file, "--data-dir", out, "--name", "fresh",
		"--initial-cluster", "fresh="+peer, "--initial-advertise-peer-urls", peer, "--initial-cluster-token", "tok")
	if code != 0 {
		t.Fatalf("restore: %d %s", code, e)
	}
	if !strings.Contains(e, "restored snapshot") {
		t.Fatalf("no completion log: %s", e)
	}
	// Refused now that it is not empty.
	_, e, code = runCLI("snapshot", "restore", fx.file, "--data-dir", out)
	if code != exitError || e != "Error: data-dir \""+out+"\" not empty or could not be read\n" {
		t.Fatalf("restore into a non-empty dir: %d %q", code, e)
	}

	// Offline, the raft state is the new one.
	db, err := storeactor.OpenPebble(filepath.Join(out, "member", "pebble"), false)
	if err != nil {
		t.Fatal(err)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("re"), UpperBound: []byte("rf")})
	must(t, err)
	if it.First() {
		t.Fatal("old raft log entries kept")
	}
	it.Close()
	db.Close()

	cluster := map[string][]string{"fresh": {peer}}
	id, err := node.NewIdentity("fresh", cluster, []string{peer}, "tok")
	must(t, err)
	_, cli := startMember(t, "fresh", out, peer)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "", clientv3.WithPrefix())
	must(t, err)
	if resp.Header.MemberId != id.MemberID || resp.Header.ClusterId != id.ClusterID {
		t.Fatalf("ids %x/%x, want %x/%x", resp.Header.MemberId, resp.Header.ClusterId, id.MemberID, id.ClusterID)
	}
	var got []string
	for _, kv := range resp.Kvs {
		got = append(got, string(kv.Key)+"="+string(kv.Value))
	}
	if strings.Join(got, " ") != "a=3 b=2 leased=v" || resp.Header.Revision != fx.rev {
		t.Fatalf("keys %v at %d, want a=3 b=2 leased=v at %d", got, resp.Header.Revision, fx.rev)
	}
	ttl, err := cli.TimeToLive(ctx, fx.leaseID, clientv3.WithAttachedKeys())
	must(t, err)
	if ttl.TTL <= 0 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "leased" {
		t.Fatalf("lease after restore: ttl %d keys %q", ttl.TTL, ttl.Keys)
	}
	put, err := cli.Put(ctx, "new", "1")
	must(t, err)
	if put.Header.Revision != fx.rev+1 {
		t.Fatalf("first write at %d, want %d", put.Header.Revision, fx.rev+1)
	}
}

func TestRestoreFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"snapshot", "restore"}, exitBadArgs, "Error: snapshot restore requires exactly one argument\n"},
		{[]string{"snapshot", "restore", "a", "b"}, exitBadArgs, "Error: snapshot restore requires exactly one argument\n"},
		{[]string{"snapshot", "restore", "f", "--bump-revision", "5"}, exitBadArgs, "Error: --mark-compacted required if --revision-bump > 0\n"},
		{[]string{"snapshot", "restore", "f", "--mark-compacted"}, exitBadArgs, "Error: --mark-compacted required if --revision-bump > 0\n"},
		{[]string{"snapshot", "restore", "f", "--nope"}, exitError, "Error: unknown flag: --nope\nUsage:\n  metastoreutl snapshot restore <filename>"},
		// etcdutl's default --initial-cluster names the member "default".
		{[]string{"snapshot", "restore", "f", "--name", "x"}, exitError,
			"Error: couldn't find local name \"x\" in the initial cluster configuration\n"},
		{[]string{"snapshot", "restore", "f", "--initial-advertise-peer-urls", ""}, exitError,
			"Error: URL scheme must be http, https, unix, or unixs: \n"},
		{[]string{"snapshot", "restore", "f", "--initial-cluster", "default=localhost:2380"}, exitError,
			"Error: URL scheme must be http, https, unix, or unixs: localhost:2380\n"},
		{[]string{"frobnicate"}, exitError, "Error: unknown command \"frobnicate\" for \"metastoreutl\"\nRun 'metastoreutl --help' for usage.\n"},
		{[]string{"defrag"}, exitError, "Error: required flag(s) \"data-dir\" not set\nUsage:\n  metastoreutl defrag [flags]"},
		{[]string{"hashkv"}, exitError, "Error: accepts 1 arg(s), received 0\nUsage:\n  metastoreutl hashkv <filename> [flags]"},
		{[]string{"hashkv", "f", "--rev", "x"}, exitError, "Error: invalid argument \"x\" for \"--rev\" flag: strconv.ParseInt: parsing \"x\": invalid syntax\n"},
		{[]string{"completion", "tcsh"}, exitError, "Error: invalid argument \"tcsh\" for \"metastoreutl completion\"\n"},
	} {
		_, e, code := runCLI(tc.args...)
		if code != tc.code || !strings.HasPrefix(e, tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, e, tc.code, tc.err)
		}
	}
	// A group's unknown subcommand shows the group's help, as etcdutl.
	if out, _, code := runCLI("snapshot", "frobnicate"); code != 0 || !strings.HasPrefix(out, "Usage:\n  metastoreutl snapshot [command]\n") {
		t.Errorf("snapshot frobnicate: %d %q", code, out)
	}
	if out, _, code := runCLI("snapshot", "restore", "--help"); code != 0 || !strings.Contains(out, "--skip-hash-check") {
		t.Errorf("help: %d %q", code, out)
	}
	// Commands match by prefix, as etcdutl's.
	if out, _, code := runCLI("vers"); code != 0 || !strings.HasPrefix(out, "metastoreutl version: ") {
		t.Errorf("vers: %d %q", code, out)
	}
}

func TestDefrag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n, cli := startMember(t, "d", dir, "http://127.0.0.1:2380")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 50; i++ {
		if _, err := cli.Put(ctx, "k", strings.Repeat("x", 1000)); err != nil {
			t.Fatal(err)
		}
	}
	// In use: the member holds pebble's lock.
	_, e, code := runCLI("defrag", "--data-dir", dir, "--timeout", "300ms")
	if code != exitError || !strings.Contains(e, "Failed to defragment MetaStore data["+dir+"]") || !strings.Contains(e, "in use") {
		t.Fatalf("defrag of a DB in use: %d %q", code, e)
	}
	n.Stop()
	_, e, code = runCLI("defrag", "--data-dir", dir)
	if code != 0 || !strings.Contains(e, "finished defragmenting directory") {
		t.Fatalf("defrag: %d %q", code, e)
	}
	if _, e, code := runCLI("defrag", "--data-dir", filepath.Join(dir, "nope")); code != exitError || !strings.Contains(e, "no such file or directory") {
		t.Fatalf("defrag of a missing dir: %d %q", code, e)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 9: "9 B", 20480: "20 kB", 9248: "9.2 kB", 2 << 30: "2.1 GB", 1000: "1.0 kB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

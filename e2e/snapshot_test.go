package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/node"
)

var (
	utlOnce sync.Once
	utlBin  string
	utlErr  error
)

// metastoreutl returns the metastoreutl binary: $METASTOREUTL_BIN, or
// ./cmd/metastoreutl built once per test binary.
func metastoreutl(t *testing.T) string {
	t.Helper()
	utlOnce.Do(func() {
		if p := os.Getenv("METASTOREUTL_BIN"); p != "" {
			if !filepath.IsAbs(p) {
				p = filepath.Join(RepoRoot(), p)
			}
			utlBin, utlErr = p, checkExecutable(p)
			return
		}
		dir, err := os.MkdirTemp("", "metastoreutl-e2e-bin-")
		if err != nil {
			utlErr = err
			return
		}
		out := filepath.Join(dir, "metastoreutl")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/metastoreutl")
		cmd.Dir = RepoRoot()
		if output, err := cmd.CombinedOutput(); err != nil {
			utlErr = fmt.Errorf("go build ./cmd/metastoreutl: %v\n%s", err, output)
			return
		}
		utlBin = out
	})
	if utlErr != nil {
		t.Fatalf("no metastoreutl binary: %v", utlErr)
	}
	return utlBin
}

// utl runs metastoreutl and returns its outputs and exit code.
func utl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	o, e, err := run(metastoreutl(t), args, time.Minute)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("metastoreutl: %v", err)
	}
	return o, e, code
}

func authClient(t *testing.T, s *Server, user, pass string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second,
		Username: user, Password: pass, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

type kvFacts struct {
	Value                       string
	Create, Mod, Version, Lease int64
}

func facts(kvs []*mvccpb.KeyValue) map[string]kvFacts {
	m := map[string]kvFacts{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kvFacts{string(kv.Value), kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease}
	}
	return m
}

// TestSnapshotSaveStatusRestore: etcdctl saves a snapshot of MetaStore;
// metastoreutl reports it and restores it into a new member with another
// name, ports and ids, which serves every key with its revisions, the
// lease with its key, users, roles and auth, and goes on at the next
// revision.
func TestSnapshotSaveStatusRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := StartMetaStore(t)
	cli := src.Client(t)
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"gone", "x"}, {"c\x00bin", "4"}} {
		if _, err := cli.Put(ctx, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "leased", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	before, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	rev := before.Header.Revision
	for _, args := range [][]string{
		{"user", "add", "root:rootpw"}, {"user", "add", "alice:alicepw"}, {"role", "add", "reader"},
		{"role", "grant-permission", "reader", "read", "a"}, {"user", "grant-role", "alice", "reader"},
		{"auth", "enable"},
	} {
		if _, e, err := Etcdctl(t, src.Endpoint(), args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, e)
		}
	}
	root := authClient(t, src, "root", "rootpw")
	hk, err := root.HashKV(ctx, src.Endpoint(), rev)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	if _, e, err := Etcdctl(t, src.Endpoint(), "--user=root:rootpw", "snapshot", "save", file); err != nil {
		t.Fatalf("etcdctl snapshot save: %v\n%s", err, e)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}

	// status
	out, e, code := utl(t, "snapshot", "status", file, "-w", "json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, e)
	}
	var st struct {
		Hash      uint32 `json:"hash"`
		Revision  int64  `json:"revision"`
		TotalKey  int    `json:"totalKey"`
		TotalSize int64  `json:"totalSize"`
		Version   string `json:"version"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if st.Hash != hk.Hash || st.Revision != rev || st.TotalKey != len(before.Kvs) || st.TotalSize != fi.Size() || st.Version != "3.7.0" {
		t.Fatalf("status %+v; want hash %d (endpoint hashkv at %d), revision %d, %d keys, size %d, 3.7.0",
			st, hk.Hash, rev, rev, len(before.Kvs), fi.Size())
	}

	// restore, as a member with another name, ports and token
	clientPort, peerPort := FreePort(t), FreePort(t)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	dir := filepath.Join(t.TempDir(), "restored")
	_, e, code = utl(t, "snapshot", "restore", file, "--data-dir", dir, "--name", "restored",
		"--initial-cluster", "restored="+peer, "--initial-advertise-peer-urls", peer, "--initial-cluster-token", "new-token")
	if code != 0 || !strings.Contains(e, "restored snapshot") {
		t.Fatalf("restore: exit %d: %s", code, e)
	}
	_, e, code = utl(t, "snapshot", "restore", file, "--data-dir", dir, "--name", "restored",
		"--initial-cluster", "restored="+peer, "--initial-advertise-peer-urls", peer)
	if code != 1 || !strings.Contains(e, fmt.Sprintf("Error: data-dir %q not empty or could not be read", dir)) {
		t.Fatalf("restore into a non-empty dir: exit %d: %s", code, e)
	}
	dst := StartMetaStore(t, WithDataDir(dir), WithName("restored"), WithPorts(clientPort, peerPort))
	rc := authClient(t, dst, "root", "rootpw")
	after, err := rc.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	id, err := node.NewIdentity("restored", map[string][]string{"restored": {peer}}, []string{peer}, "new-token")
	if err != nil {
		t.Fatal(err)
	}
	if after.Header.MemberId != id.MemberID || after.Header.ClusterId != id.ClusterID || after.Header.MemberId == before.Header.MemberId {
		t.Fatalf("restored ids %x/%x, want %x/%x (source %x/%x)", after.Header.MemberId, after.Header.ClusterId,
			id.MemberID, id.ClusterID, before.Header.MemberId, before.Header.ClusterId)
	}
	if after.Header.Revision != rev {
		t.Fatalf("restored revision %d, want %d", after.Header.Revision, rev)
	}
	want, got := facts(before.Kvs), facts(after.Kvs)
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Fatalf("keys after restore\n got %v\nwant %v", got, want)
	}
	if old, err := rc.Get(ctx, "a", clientv3.WithRev(2)); err != nil || len(old.Kvs) != 1 || string(old.Kvs[0].Value) != "1" {
		t.Fatalf("history of a at 2 after restore: %v %v", old, err)
	}
	ttl, err := rc.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TTL <= 0 || ttl.GrantedTTL != 600 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "leased" {
		t.Fatalf("lease after restore: ttl %d granted %d keys %q", ttl.TTL, ttl.GrantedTTL, ttl.Keys)
	}
	// auth: still enabled, users, roles and permissions kept
	if _, err := dst.Client(t).Get(ctx, "a"); err == nil {
		t.Fatal("a request without credentials succeeded: auth not enabled after restore")
	}
	users, err := rc.UserList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(users.Users)
	if strings.Join(users.Users, ",") != "alice,root" {
		t.Fatalf("users after restore: %v", users.Users)
	}
	alice := authClient(t, dst, "alice", "alicepw")
	if r, err := alice.Get(ctx, "a"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("alice reads a: %v %v", r, err)
	}
	if _, err := alice.Get(ctx, "b"); err == nil {
		t.Fatal("alice reads b: role permissions not kept")
	}
	// new writes go on at the next revision
	put, err := rc.Put(ctx, "new", "1")
	if err != nil {
		t.Fatal(err)
	}
	if put.Header.Revision != rev+1 {
		t.Fatalf("first write after restore at %d, want %d", put.Header.Revision, rev+1)
	}
	dst.Stop()
	dst.Restart(t)
	if r, err := authClient(t, dst, "root", "rootpw").Get(ctx, "new"); err != nil || len(r.Kvs) != 1 || r.Kvs[0].ModRevision != rev+1 {
		t.Fatalf("after a restart of the restored member: %v %v", r, err)
	}

	// damaged files
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	corrupt, truncated := filepath.Join(tmp, "corrupt.db"), filepath.Join(tmp, "truncated.db")
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/3] ^= 0x01
	if err := os.WriteFile(corrupt, flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, data[:len(data)/2+7], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot", "status", corrupt}, "Error: snapshot file integrity check failed: expected sha256 ["},
		{[]string{"snapshot", "status", truncated}, "Error: snapshot file integrity check failed: sha256 checksum not found"},
		{[]string{"snapshot", "restore", corrupt, "--data-dir", filepath.Join(tmp, "r1")}, "\nError: expected sha256 ["}, // etcdutl's words
		{[]string{"snapshot", "restore", truncated, "--data-dir", filepath.Join(tmp, "r2")}, "Error: snapshot missing hash but --skip-hash-check=false"},
	} {
		_, e, code := utl(t, c.args...)
		if code != 1 || !strings.Contains(e, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1, %q", c.args, code, e, c.want)
		}
	}
	for _, d := range []string{"r1", "r2"} {
		if _, err := os.Stat(filepath.Join(tmp, d)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused restore left %s behind", d)
		}
	}

	// wrong flags and arguments
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"snapshot", "status"}, 128, "Error: snapshot status requires exactly one argument"},
		{[]string{"snapshot", "restore"}, 128, "Error: snapshot restore requires exactly one argument"},
		{[]string{"snapshot", "status", file, "--bogus"}, 1, "Error: unknown flag: --bogus"},
		{[]string{"snapshot", "status", file, "-w", "xml"}, 4, "Error: unsupported output format"},
		{[]string{"defrag"}, 1, `Error: required flag(s) "data-dir" not set`},
		{[]string{"bogus"}, 1, `Error: unknown command "bogus" for "metastoreutl"`},
	} {
		_, e, code := utl(t, c.args...)
		if code != c.code || !strings.HasPrefix(e, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", c.args, code, e, c.code, c.want)
		}
	}

	// defrag: refused while the member runs, done once it is stopped
	_, e, code = utl(t, "defrag", "--data-dir", dir, "--timeout", "500ms")
	if code != 1 || !strings.Contains(e, "in use") {
		t.Fatalf("defrag of a running member's dir: exit %d: %s", code, e)
	}
	dst.Stop()
	if _, e, code = utl(t, "defrag", "--data-dir", dir); code != 0 || !strings.Contains(e, "finished defragmenting directory") {
		t.Fatalf("defrag: exit %d: %s", code, e)
	}
	dst.Restart(t)
	if r, err := authClient(t, dst, "root", "rootpw").Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || r.Count != int64(len(before.Kvs))+1 {
		t.Fatalf("after defrag: %v %v", r, err)
	}
}

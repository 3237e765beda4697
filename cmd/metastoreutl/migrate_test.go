package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/e2e"
)

// The reference etcd, filled with a mixed workload, is migrated — from
// its snapshot and from its stopped data dir — and MetaStore started on
// each result answers every read at every revision from the compacted one
// to the current one, and a watch from the compacted one, exactly as etcd
// did; leases, their keys and auth come along. Exported back to etcd and
// restored with etcdutl, the reference etcd answers the same again.
func TestMigrateFromEtcdAndBack(t *testing.T) {
	ref := e2e.StartEtcd(t)
	keys := fillEtcd(t, ref.Client(t))
	snap := filepath.Join(t.TempDir(), "etcd.snapshot")
	if _, e, err := e2e.Etcdctl(t, ref.Endpoint(), "--user", "root:rootpw", "snapshot", "save", snap); err != nil {
		t.Fatalf("etcdctl snapshot save: %v\n%s", err, e)
	}
	want := observe(t, ref, keys, false)

	// A running member's data dir is refused.
	if _, e, code := runCLI("migrate", "from-etcd", ref.DataDir, "--data-dir", filepath.Join(t.TempDir(), "x")); code != exitError || !strings.Contains(e, "in use") {
		t.Fatalf("migrate from a running etcd's data dir: %d %q", code, e)
	}
	stopApplied(t, ref, authClient(t, ref.Endpoint(), "root", "rootpw"))

	for _, src := range []struct{ name, path string }{{"snapshot", snap}, {"data-dir", ref.DataDir}} {
		t.Run(src.name, func(t *testing.T) {
			ms := migrateAndStart(t, src.path)
			if got := observe(t, ms, keys, true); !sameObservations(t, "etcd", want, "migrated MetaStore", got) {
				return
			}
			checkAuth(t, ms)
			if src.name != "data-dir" {
				return
			}
			// And back: export the stopped member's data dir to an etcd
			// snapshot, restore it with etcdutl, start etcd on it.
			back := filepath.Join(t.TempDir(), "back.snapshot")
			if _, e, code := runCLI("snapshot", "export", "--to-etcd", ms.DataDir, back); code != exitError || !strings.Contains(e, "in use") {
				t.Fatalf("export of a running member's data dir: %d %q", code, e)
			}
			ms.Stop()
			if out, e, code := runCLI("snapshot", "export", "--to-etcd", ms.DataDir, back); code != 0 || !strings.Contains(out, "Exported") {
				t.Fatalf("export: %d %s %s", code, out, e)
			}
			if _, e, err := e2e.Etcdutl(t, "snapshot", "status", back); err != nil {
				t.Fatalf("etcdutl snapshot status of the export: %v\n%s", err, e)
			}
			restored := startRestoredEtcd(t, back)
			if got := observe(t, restored, keys, true); sameObservations(t, "etcd", want, "etcd restored from the export", got) {
				checkAuth(t, restored)
			}
		})
	}
}

// fillEtcd writes, through the reference etcd: puts, overwrites, single
// and range deletes, txns down both branches, leases with attached keys
// (one revoked, one key moved off its lease), a physical compaction with
// more writes after it, then users and roles and auth on (and a write as
// root). It returns every key written and one never written.
func fillEtcd(t *testing.T, cli *clientv3.Client) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	check := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	keys := map[string]bool{"k/never": true}
	put := func(k, v string, opts ...clientv3.OpOption) {
		t.Helper()
		keys[k] = true
		check(cli.Put(ctx, k, v, opts...))
	}
	for i := range 12 {
		put(fmt.Sprintf("k/%02d", i), "v0")
	}
	put("other", "x")
	for i := 0; i < 12; i += 2 {
		put(fmt.Sprintf("k/%02d", i), "v1")
	}
	check(cli.Delete(ctx, "k/03"))
	check(cli.Delete(ctx, "k/08", clientv3.WithRange("k/10")))
	keys["k/new"] = true
	check(cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("k/00"), "=", "v1")).
		Then(clientv3.OpPut("k/00", "v2"), clientv3.OpDelete("k/05"), clientv3.OpPut("k/new", "t1")).Commit())
	check(cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("k/01"), "=", 99)).
		Then(clientv3.OpPut("k/01", "then")).Else(clientv3.OpPut("k/01", "else"), clientv3.OpPut("other", "y")).Commit())
	l1, err := cli.Grant(ctx, 600)
	check(l1, err)
	l2, err := cli.Grant(ctx, 900)
	check(l2, err)
	l3, err := cli.Grant(ctx, 600)
	check(l3, err)
	put("k/leased", "l", clientv3.WithLease(l1.ID))
	put("lease/a", "a", clientv3.WithLease(l1.ID))
	put("lease/b", "b", clientv3.WithLease(l2.ID))
	put("lease/c", "c", clientv3.WithLease(l3.ID))
	check(cli.Revoke(ctx, l3.ID))
	put("k/leased", "unleased") // moves off l1
	resp, err := cli.Put(ctx, "k/02", "v2")
	check(resp, err)
	check(cli.Compact(ctx, resp.Header.Revision-3, clientv3.WithCompactPhysical()))
	put("k/00", "v3")
	check(cli.Delete(ctx, "k/01"))
	put("k/03", "back")
	check(cli.Txn(ctx).Then(clientv3.OpPut("k/t1", "1"), clientv3.OpPut("k/t2", "2"), clientv3.OpDelete("other")).Commit())
	put("k/04", strings.Repeat("big", 100))

	check(cli.UserAdd(ctx, "root", "rootpw"))
	check(cli.UserGrantRole(ctx, "root", "root"))
	check(cli.RoleAdd(ctx, "reader"))
	check(cli.RoleGrantPermission(ctx, "reader", "k/", clientv3.GetPrefixRangeEnd("k/"), clientv3.PermissionType(clientv3.PermRead)))
	check(cli.UserAdd(ctx, "alice", "alicepw"))
	check(cli.UserGrantRole(ctx, "alice", "reader"))
	check(cli.AuthEnable(ctx))
	root := authClient(t, cli.Endpoints()[0], "root", "rootpw")
	check(root.Put(ctx, "k/after-auth", "1"))
	keys["k/after-auth"] = true

	out := make([]string, 0, len(keys))
	for k := range keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func authClient(t *testing.T, endpoint, user, password string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, Username: user, Password: password,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// observe reads, as root, everything a migration must carry: each key and
// two ranges at every revision from one below the compaction point (which
// must fail) to the current one, a watch with prev_kv from the compaction
// point, the leases and their keys, and the auth records. Header ids and
// terms are zeroed. Lease TTLs, which run, are not compared; with fullTTL
// each must be within 2 s of the granted one.
func observe(t *testing.T, s *e2e.Server, keys []string, fullTTL bool) []string {
	t.Helper()
	cli := authClient(t, s.Endpoint(), "root", "rootpw")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []string
	record := func(what string, m proto.Message, err error) {
		if err != nil {
			st := status.Convert(err)
			out = append(out, fmt.Sprintf("%s => error %s %q", what, st.Code(), st.Message()))
			return
		}
		out = append(out, what+" => "+render(m))
	}
	st, err := cli.Status(ctx, s.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	// The compaction point: the oldest revision a read still gets.
	var compacted int64
	for rev := int64(1); rev <= st.Header.Revision; rev++ {
		if _, err := cli.Get(ctx, "k/00", clientv3.WithRev(rev)); err == nil {
			compacted = rev
			break
		}
	}
	if compacted <= 1 {
		t.Fatalf("%s: no compaction point found (revision %d)", s.Name, st.Header.Revision)
	}
	out = append(out, fmt.Sprintf("revision %d, compacted at %d", st.Header.Revision, compacted))
	for rev := compacted - 1; rev <= st.Header.Revision; rev++ {
		for _, k := range keys {
			r, err := cli.Get(ctx, k, clientv3.WithRev(rev))
			record(fmt.Sprintf("get %s @%d", k, rev), (*pb.RangeResponse)(r), err)
		}
		r, err := cli.Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithRev(rev))
		record(fmt.Sprintf("get --prefix k/ @%d", rev), (*pb.RangeResponse)(r), err)
		r, err = cli.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(rev), clientv3.WithLimit(5), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend))
		record(fmt.Sprintf("get --from-key '' --limit 5 --sort-by modify desc @%d", rev), (*pb.RangeResponse)(r), err)
	}

	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	var events []string
	for wr := range cli.Watch(wctx, "", clientv3.WithPrefix(), clientv3.WithRev(compacted), clientv3.WithPrevKV()) {
		if err := wr.Err(); err != nil {
			t.Fatalf("%s: watch: %v", s.Name, err)
		}
		for _, ev := range wr.Events {
			events = append(events, render((*mvccpb.Event)(ev)))
		}
		if n := len(wr.Events); n > 0 && wr.Events[n-1].Kv.ModRevision == st.Header.Revision {
			break
		}
	}
	out = append(out, "watch from the compaction point: "+strings.Join(events, "\n  "))

	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(leases.Leases, func(i, j int) bool { return leases.Leases[i].ID < leases.Leases[j].ID })
	for _, l := range leases.Leases {
		ttl, err := cli.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		var ks []string
		for _, k := range ttl.Keys {
			ks = append(ks, string(k))
		}
		sort.Strings(ks)
		out = append(out, fmt.Sprintf("lease %x granted %ds, keys %v", l.ID, ttl.GrantedTTL, ks))
		if fullTTL {
			// Migrated or restored: a lease starts again with its whole
			// TTL, as etcd's do after a restore (no remaining TTL is
			// persisted without lease checkpoints).
			if ttl.TTL < ttl.GrantedTTL-2 || ttl.TTL > ttl.GrantedTTL+2 {
				t.Errorf("%s: lease %x has %ds left of %ds", s.Name, l.ID, ttl.TTL, ttl.GrantedTTL)
			}
		}
	}
	as, err := cli.AuthStatus(ctx)
	record("auth status", (*pb.AuthStatusResponse)(as), err)
	ul, err := cli.UserList(ctx)
	record("user list", (*pb.AuthUserListResponse)(ul), err)
	ug, err := cli.UserGet(ctx, "alice")
	record("user get alice", (*pb.AuthUserGetResponse)(ug), err)
	rl, err := cli.RoleList(ctx)
	record("role list", (*pb.AuthRoleListResponse)(rl), err)
	rg, err := cli.RoleGet(ctx, "reader")
	record("role get reader", (*pb.AuthRoleGetResponse)(rg), err)
	return out
}

// render is m's text with header ids and term zeroed.
func render(m proto.Message) string {
	m = proto.Clone(m)
	if hm, ok := m.(interface{ GetHeader() *pb.ResponseHeader }); ok && hm.GetHeader() != nil {
		h := hm.GetHeader()
		h.ClusterId, h.MemberId, h.RaftTerm = 0, 0, 0
	}
	return prototext.MarshalOptions{}.Format(m)
}

func sameObservations(t *testing.T, wantName string, want []string, gotName string, got []string) bool {
	t.Helper()
	for i := range max(len(want), len(got)) {
		w, g := "(nothing)", "(nothing)"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			t.Errorf("observation %d of %d differs:\n%s: %s\n%s: %s", i, len(want), wantName, w, gotName, g)
			return false
		}
	}
	return true
}

// checkAuth: the migrated users log in with their passwords, and
// permissions hold.
func checkAuth(t *testing.T, s *e2e.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := authClient(t, s.Endpoint(), "alice", "alicepw")
	if r, err := alice.Get(ctx, "k/00"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v3" {
		t.Errorf("%s: alice reads k/00: %v %v", s.Name, r, err)
	}
	if _, err := alice.Put(ctx, "k/00", "x"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("%s: alice writes k/00: %v", s.Name, err)
	}
	if _, err := alice.Get(ctx, "other"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("%s: alice reads outside k/: %v", s.Name, err)
	}
	if _, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, Username: "alice", Password: "wrong",
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("%s: wrong password: %v", s.Name, err)
	}
}

// migrateAndStart migrates src into a new data dir for a member on fresh
// ports and starts MetaStore on it with the same flags.
func migrateAndStart(t *testing.T, src string) *e2e.Server {
	t.Helper()
	name, client, peer := "migrated", e2e.FreePort(t), e2e.FreePort(t)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	dataDir := filepath.Join(t.TempDir(), "ms")
	out, e, code := runCLI("migrate", "from-etcd", src, "--data-dir", dataDir, "--name", name,
		"--initial-cluster", name+"="+peerURL, "--initial-advertise-peer-urls", peerURL)
	if code != 0 {
		t.Fatalf("migrate from-etcd %s: exit %d\n%s", src, code, e)
	}
	if !strings.Contains(out, "Migrated "+src) || !strings.Contains(e, "migrated etcd data") {
		t.Fatalf("no summary or completion log:\n%s\n%s", out, e)
	}
	return e2e.StartMetaStore(t, e2e.WithName(name), e2e.WithDataDir(dataDir), e2e.WithPorts(client, peer))
}

// startRestoredEtcd restores an etcd snapshot file with etcdutl and starts
// the reference etcd on it.
func startRestoredEtcd(t *testing.T, file string) *e2e.Server {
	t.Helper()
	name, client, peer := "restored", e2e.FreePort(t), e2e.FreePort(t)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	dataDir := filepath.Join(t.TempDir(), "etcd")
	if _, e, err := e2e.Etcdutl(t, "snapshot", "restore", file, "--data-dir", dataDir, "--name", name,
		"--initial-cluster", name+"="+peerURL, "--initial-advertise-peer-urls", peerURL); err != nil {
		t.Fatalf("etcdutl snapshot restore: %v\n%s", err, e)
	}
	return e2e.StartEtcd(t, e2e.WithName(name), e2e.WithDataDir(dataDir), e2e.WithPorts(client, peer))
}

// A damaged, cut or foreign input file is refused with a clear error
// (etcdutl's for a checksum problem), and nothing is left behind: no data
// dir, no temporary dir, an existing empty data dir still empty.
func TestMigrateRefusesDamagedInput(t *testing.T) {
	good, err := os.ReadFile("../../etcdbackend/testdata/etcd-3.7.3.snapshot")
	must(t, err)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, b, 0o600))
		return p
	}
	flipped := append([]byte(nil), good...)
	flipped[6000] ^= 0x40
	msSnap := makeSnapshot(t).file
	empty := filepath.Join(dir, "empty")
	must(t, os.Mkdir(empty, 0o700))
	for _, tc := range []struct {
		name, file string
		flags      []string
		err        string
	}{
		{"flipped byte", write("flipped", flipped), nil, "Error: expected sha256 ["},
		{"cut", write("cut", good[:len(good)-100]), nil, "Error: snapshot missing hash but --skip-hash-check=false\n"},
		{"cut, check skipped", write("cut2", good[:4096]), []string{"--skip-hash-check"}, "Error: not a valid etcd backend"},
		{"MetaStore's snapshot", msSnap, nil, "is a MetaStore snapshot, not etcd's: use 'metastoreutl snapshot restore'"},
		{"missing", filepath.Join(dir, "nope"), nil, "no such file or directory"},
	} {
		for _, out := range []string{filepath.Join(dir, "out"), empty} {
			args := append([]string{"migrate", "from-etcd", tc.file, "--data-dir", out}, tc.flags...)
			_, e, code := runCLI(args...)
			if code != exitError || !strings.Contains(e, tc.err) {
				t.Errorf("%s into %s: exit %d, %q; want %q", tc.name, out, code, e, tc.err)
			}
		}
		left, err := os.ReadDir(dir)
		must(t, err)
		for _, f := range left {
			if f.Name() == "out" || strings.Contains(f.Name(), "migrating") {
				t.Errorf("%s: %s left behind", tc.name, f.Name())
			}
		}
		if names, _ := os.ReadDir(empty); len(names) != 0 {
			t.Errorf("%s: the empty data dir now holds %v", tc.name, names)
		}
	}
	// The intact file migrates into the empty dir, and then the dir is
	// refused as not empty.
	if out, e, code := runCLI("migrate", "from-etcd", write("good", good), "--data-dir", empty); code != 0 || !strings.Contains(out, "revision:  8 (compacted at 4)") {
		t.Fatalf("good file: %d %s %s", code, out, e)
	}
	if _, e, code := runCLI("migrate", "from-etcd", filepath.Join(dir, "good"), "--data-dir", empty); code != exitError || !strings.Contains(e, "not empty") {
		t.Fatalf("into a non-empty dir: %d %q", code, e)
	}
}

func TestSnapshotExportFlags(t *testing.T) {
	exists := filepath.Join(t.TempDir(), "exists")
	must(t, os.WriteFile(exists, nil, 0o600))
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"snapshot", "export", "a"}, exitBadArgs, "Error: snapshot export requires exactly two arguments"},
		{[]string{"snapshot", "export", "a", "b"}, exitBadArgs, "Error: --to-etcd is required"},
		{[]string{"snapshot", "export", "--to-etcd", "a", exists}, exitError, "Error: " + exists + " already exists"},
		{[]string{"migrate", "from-etcd"}, exitBadArgs, "Error: migrate from-etcd requires exactly one argument"},
	} {
		_, e, code := runCLI(tc.args...)
		if code != tc.code || !strings.HasPrefix(e, tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, e, tc.code, tc.err)
		}
	}
	if out, _, code := runCLI("migrate", "--help"); code != 0 || !strings.Contains(out, "from-etcd") {
		t.Errorf("migrate help: %d %q", code, out)
	}
}

// The data dir of an etcd that crashed holds committed entries its backend
// does not: migrating the backend alone would lose them, so it is refused
// until etcd has started and stopped cleanly on it.
func TestMigrateRefusesCrashedEtcdDataDir(t *testing.T) {
	// The backend commits only when etcd stops cleanly.
	ref := e2e.StartEtcd(t, e2e.WithFlags("--backend-batch-interval=1h", "--backend-batch-limit=1000000"))
	cli := ref.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 5 {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	ref.Kill()
	out := filepath.Join(t.TempDir(), "ms")
	_, e, code := runCLI("migrate", "from-etcd", ref.DataDir, "--data-dir", out)
	if code != exitError || !strings.Contains(e, "committed entries that its backend does not hold yet") {
		t.Fatalf("migrate from a crashed etcd's data dir: %d %q", code, e)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("refused migration left %s: %v", out, err)
	}
	ref.Restart(t)
	// A linearizable read waits until etcd has applied what it replayed.
	if r, err := ref.Client(t).Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || r.Count != 5 {
		t.Fatalf("after restart: %v %v", r, err)
	}
	stopApplied(t, ref, ref.Client(t))
	if o, e, code := runCLI("migrate", "from-etcd", ref.DataDir, "--data-dir", out); code != 0 || !strings.Contains(o, "revision:  6 ") {
		t.Fatalf("migrate after a clean stop: %d %s %s", code, o, e)
	}
}

// stopApplied stops the reference etcd cleanly once it has applied every
// entry it has committed: its stop drops the applies still scheduled, so a
// stop right after entries commit (its own, once started: the leader's
// empty entry, its member attributes) leaves a data dir whose backend
// lacks them, which migrate rightly refuses.
func stopApplied(t *testing.T, ref *e2e.Server, cli *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		st, err := cli.Status(ctx, ref.Endpoint())
		if err != nil {
			t.Fatalf("etcd's status before its stop: %v", err)
		}
		if st.RaftAppliedIndex >= st.RaftIndex {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("etcd applied %d of %d committed entries", st.RaftAppliedIndex, st.RaftIndex)
		case <-time.After(10 * time.Millisecond):
		}
	}
	ref.Stop()
}

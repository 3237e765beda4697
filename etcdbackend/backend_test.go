package etcdbackend_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/etcdbackend"
)

// testdata/etcd-3.7.3.snapshot was saved from the reference etcd v3.7.3
// after:
//
//	etcdctl put a 1; put a 2; put b 1; del a
//	etcdctl lease grant 300; put --lease=<id> c 1; put d 1
//	etcdctl compact 4; put a 3
//	etcdctl user add root:pw; role add r1
//	etcdctl role grant-permission r1 read /foo/ --prefix
//	etcdctl user add u1:pw; user grant-role u1 r1; user grant-role root root
//	etcdctl auth enable; etcdctl --user root:pw snapshot save
const realSnapshot = "testdata/etcd-3.7.3.snapshot"

// The reader understands a file etcd wrote: versions in revision order,
// the one the compaction at 4 kept (a@3) included, tombstones, the lease
// on c, compaction, raft and auth meta, users and roles.
func TestReadEtcdSnapshot(t *testing.T) {
	if err := etcdbackend.VerifySnapshot(realSnapshot, false, nil); err != nil {
		t.Fatal(err)
	}
	b, err := etcdbackend.Open(realSnapshot, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var got []string
	if err := b.Versions(func(v *etcdbackend.Version) error {
		got = append(got, render(v.Main, v.Sub, v.Tombstone, v.KV))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const lease = 0x390da24a50dcb407
	want := []string{
		`3.0 "a"="2" c2 m3 v2`,
		`4.0 "b"="1" c4 m4 v1`,
		`5.0 "a" deleted`,
		fmt.Sprintf(`6.0 "c"="1" c6 m6 v1 lease %x`, lease),
		`7.0 "d"="1" c7 m7 v1`,
		`8.0 "a"="3" c8 m8 v1`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("versions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	first, last, err := b.RevisionSpan()
	if err != nil || first != 3 || last != 8 {
		t.Fatalf("revision span %d..%d (%v), want 3..8", first, last, err)
	}
	m, err := b.Meta()
	if err != nil {
		t.Fatal(err)
	}
	if m.ScheduledCompact != 4 || m.FinishedCompact != 4 || m.CompactRevision() != 4 || m.CurrentRevision(last) != 8 ||
		m.ConsistentIndex == 0 || m.Term == 0 || m.StorageVersion != "3.7.0" || !m.AuthEnabled || m.AuthRevision != 7 {
		t.Fatalf("meta %+v", m)
	}
	var leases []string
	must(t, b.Leases(func(l *leasepb.Lease) error { leases = append(leases, fmt.Sprintf("%x:%d", l.ID, l.TTL)); return nil }))
	if fmt.Sprint(leases) != fmt.Sprintf("[%x:300]", lease) {
		t.Fatalf("leases %v", leases)
	}
	var users, roles []string
	must(t, b.Users(func(u *authpb.User) error {
		users = append(users, fmt.Sprintf("%s%v", u.Name, u.Roles))
		if !strings.HasPrefix(string(u.Password), "$2a$") {
			t.Errorf("user %s: password %q is not a bcrypt hash", u.Name, u.Password)
		}
		return nil
	}))
	must(t, b.Roles(func(r *authpb.Role) error {
		roles = append(roles, fmt.Sprintf("%s:%d", r.Name, len(r.KeyPermission)))
		return nil
	}))
	if fmt.Sprint(users) != "[root[root] u1[r1]]" || fmt.Sprint(roles) != "[r1:1]" {
		t.Fatalf("users %v roles %v", users, roles)
	}
}

func render(main, sub int64, tombstone bool, kv *mvccpb.KeyValue) string {
	if tombstone {
		return fmt.Sprintf("%d.%d %q deleted", main, sub, kv.Key)
	}
	s := fmt.Sprintf("%d.%d %q=%q c%d m%d v%d", main, sub, kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	if kv.Lease != 0 {
		s += fmt.Sprintf(" lease %x", kv.Lease)
	}
	return s
}

// What the Writer writes reads back the same, and with its checksum it is
// a snapshot file that passes etcdutl's check.
func TestWriteReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	w, err := etcdbackend.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for rev := int64(2); rev < 2000; rev++ {
		kv := &mvccpb.KeyValue{Key: fmt.Appendf(nil, "key/%d", rev%37), CreateRevision: 2, Version: rev - 1,
			Value: []byte(strings.Repeat("v", int(rev%300))), Lease: rev % 3}
		tomb := rev%11 == 0
		must(t, w.PutVersion(rev, 0, tomb, kv))
		kv.ModRevision = rev
		want = append(want, render(rev, 0, tomb, kv))
	}
	must(t, w.PutLease(&leasepb.Lease{ID: 5, TTL: 60}))
	must(t, w.PutUser(&authpb.User{Name: []byte("root"), Password: []byte("$2a$hash"), Roles: []string{"root"}}))
	must(t, w.PutRole(&authpb.Role{Name: []byte("r")}))
	meta := etcdbackend.Meta{ConsistentIndex: 9, Term: 3, ScheduledCompact: 10, FinishedCompact: 8,
		StorageVersion: etcdbackend.StorageVersion, AuthEnabled: true, AuthRevision: 4}
	must(t, w.SetMeta(meta))
	must(t, w.Close())
	must(t, etcdbackend.AppendChecksum(path))
	must(t, etcdbackend.VerifySnapshot(path, false, nil))

	b, err := etcdbackend.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var got []string
	must(t, b.Versions(func(v *etcdbackend.Version) error {
		got = append(got, render(v.Main, v.Sub, v.Tombstone, v.KV))
		return nil
	}))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("read back %d versions, wrote %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	if m, err := b.Meta(); err != nil || m != meta {
		t.Fatalf("meta %+v (%v), want %+v", m, err, meta)
	}
	var n int
	must(t, b.Leases(func(l *leasepb.Lease) error { n++; return nil }))
	must(t, b.Users(func(u *authpb.User) error {
		if !proto.Equal(u, &authpb.User{Name: []byte("root"), Password: []byte("$2a$hash"), Roles: []string{"root"}}) {
			t.Errorf("user %v", u)
		}
		return nil
	}))
	if n != 1 {
		t.Fatalf("%d leases", n)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A damaged or cut snapshot file is refused with etcdutl's words; skipping
// the check lets it through to the reader, which refuses what is not a
// backend.
func TestVerifySnapshotRefusesDamage(t *testing.T) {
	good, err := os.ReadFile(realSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	flipped := append([]byte(nil), good...)
	flipped[5000] ^= 0xFF
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, b, 0o600))
		return p
	}
	err = etcdbackend.VerifySnapshot(write("flipped", flipped), false, nil)
	want := fmt.Sprintf("expected sha256 %v, got %v", good[len(good)-sha256.Size:], sha256Of(flipped[:len(flipped)-sha256.Size]))
	if err == nil || err.Error() != want {
		t.Fatalf("flipped byte: %v, want %q", err, want)
	}
	if !regexp.MustCompile(`^expected sha256 \[[0-9 ]+\], got \[[0-9 ]+\]$`).MatchString(want) {
		t.Fatalf("not etcdutl's form: %q", want)
	}
	cut := write("cut", good[:len(good)-100])
	if err := etcdbackend.VerifySnapshot(cut, false, nil); !errors.Is(err, etcdbackend.ErrMissingHash) ||
		err.Error() != "snapshot missing hash but --skip-hash-check=false" {
		t.Fatalf("cut file: %v", err)
	}
	if err := etcdbackend.VerifySnapshot(cut, true, nil); err != nil {
		t.Fatalf("cut file, check skipped: %v", err)
	}
	garbage := write("garbage", []byte(strings.Repeat("not a bbolt file", 1000)))
	if _, err := etcdbackend.Open(garbage, 0); !errors.Is(err, etcdbackend.ErrCorrupt) {
		t.Fatalf("garbage: %v", err)
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// A backend a live etcd holds (a writer's lock) is reported as in use.
func TestOpenRefusesLockedBackend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	w, err := etcdbackend.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := etcdbackend.Open(path, 1); !errors.Is(err, etcdbackend.ErrInUse) {
		t.Fatalf("open while held: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

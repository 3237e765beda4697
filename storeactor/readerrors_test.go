package storeactor_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
)

// sstReadErrors fails every read of an sstable while on.
func sstReadErrors() *errorfs.Toggle {
	return testkit.TableReadFaults()
}

// A read that pebble fails (a disk read error) fails that request with
// the error, for Range and read-only Txn alike, compares included, and is
// counted; the member goes on serving: the store applies, and the same
// reads succeed once the disk reads again.
func TestReadErrorsAreReturned(t *testing.T) {
	faults := sstReadErrors()
	db, err := storeactor.OpenPebbleFS(errorfs.Wrap(vfs.NewMem(), faults), "/db", storeactor.WithoutBlockCache())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := newHarness(t, func(c *storeactor.Config) { c.DB = db })
	h.put("a", "1")
	h.put("b", "2")
	if err := db.Flush(); err != nil { // the data now sits in sstables only
		t.Fatal(err)
	}
	reg := testkit.Registry(t)
	readErrors := func() float64 { return testkit.Gather(t, reg).Must(t, "metastore_store_read_errors_total") }

	one := &pb.RangeRequest{Key: []byte("a")}
	all := &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}
	getTxn := &pb.TxnRequest{Success: []*pb.RequestOp{opGet("a", "z", 0)}}
	cmpTxn := &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_Value{Value: []byte("1")}}},
		Success: []*pb.RequestOp{opGet("b", "", 0)},
	}
	reads := []struct {
		name string
		run  func() error
	}{
		{"range of one key", func() error { _, err := h.reader.Range(one); return err }},
		{"range of keys", func() error { _, err := h.reader.Range(all); return err }},
		{"txn that ranges", func() error { _, err := h.reader.Txn(getTxn); return err }},
		{"txn that compares", func() error { _, err := h.reader.Txn(cmpTxn); return err }},
	}

	before := readErrors()
	faults.On()
	for _, r := range reads {
		if err := r.run(); !errors.Is(err, errorfs.ErrInjected) {
			t.Errorf("%s while the disk fails: err = %v, want the injected error", r.name, err)
		}
	}
	if got := readErrors() - before; got != float64(len(reads)) {
		t.Errorf("metastore_store_read_errors_total grew by %v, want %d", got, len(reads))
	}
	faults.Off()

	h.put("c", "3")
	if got := keys(h.rng(all).Kvs); got != "a,b,c" {
		t.Fatalf("range after the fault: %s", got)
	}
	resp, err := h.reader.Txn(cmpTxn)
	if err != nil || !resp.Succeeded || kvs(resp.Responses[0].GetResponseRange().Kvs)[0] != kvAt("b", "2", 3, 3, 1) {
		t.Fatalf("txn after the fault: %v %v", resp, err)
	}
}

// The Reader's other reads — a user record, the alarms, a lease, its
// keys, every lease, a watch event's prev_kv — fail with the disk's error
// too, rather than panic on the caller's goroutine (a gRPC handler, the
// lessor, the watch hub); each is counted and logged, at most one line a
// second with the count of those left out; once the disk reads again the
// same reads answer.
func TestReaderReadsReturnErrors(t *testing.T) {
	faults := sstReadErrors()
	db, err := storeactor.OpenPebbleFS(errorfs.Wrap(vfs.NewMem(), faults), "/db", storeactor.WithoutBlockCache())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := newHarness(t, func(c *storeactor.Config) { c.DB = db })
	h.must(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", Options: &authpb.UserAddOptions{NoPassword: true}}})
	h.must(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 60}})
	h.must(putOpt(&pb.PutRequest{Key: []byte("a"), Value: []byte("1"), Lease: 7}))
	h.must(putOpt(&pb.PutRequest{Key: []byte("a"), Value: []byte("2"), Lease: 7})) // revision 3, whose prev_kv is a=1
	h.must(&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}})
	if err := db.Flush(); err != nil { // everything now sits in sstables only
		t.Fatal(err)
	}
	core, logs := observer.New(zap.ErrorLevel)
	clock := testkit.NewFakeClock(time.Unix(0, 0))
	h.reader.SetLogger(zap.New(core), clock)
	reg := testkit.Registry(t)
	readErrors := func() float64 { return testkit.Gather(t, reg).Must(t, "metastore_store_read_errors_total") }

	reads := []struct {
		name string
		run  func() (string, error)
	}{
		{"user", func() (string, error) {
			u, err := h.reader.User("alice")
			if u == nil {
				return "", err
			}
			return string(u.Name), err
		}},
		{"alarms", func() (string, error) {
			as, err := h.reader.Alarms()
			var out []string
			for _, a := range as {
				out = append(out, fmt.Sprint(a.MemberID, a.Alarm))
			}
			return strings.Join(out, ","), err
		}},
		{"lease", func() (string, error) { l, ok, err := h.reader.Lease(7); return fmt.Sprint(l, ok), err }},
		{"lease-keys", func() (string, error) { ks, err := h.reader.LeaseKeys(7); return fmt.Sprintf("%q", ks), err }},
		{"leases", func() (string, error) { ls, err := h.reader.Leases(); return fmt.Sprint(ls), err }},
		{"prev-kv", func() (string, error) {
			kv, err := h.reader.PrevKV([]byte("a"), 3)
			if kv == nil {
				return "", err
			}
			return string(kv.Value), err
		}},
	}

	before := readErrors()
	faults.On()
	for _, r := range reads {
		if got, err := r.run(); !errors.Is(err, errorfs.ErrInjected) {
			t.Errorf("%s while the disk fails: %q, %v; want the injected error", r.name, got, err)
		}
	}
	if got := readErrors() - before; got != float64(len(reads)) {
		t.Errorf("metastore_store_read_errors_total grew by %v, want %d", got, len(reads))
	}
	if lines := logs.TakeAll(); len(lines) != 1 || lines[0].ContextMap()["read"] != "user" {
		t.Errorf("logged %v, want one line, about the first read", lines)
	}
	clock.Advance(time.Second)
	if _, err := h.reader.Leases(); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("leases: %v", err)
	}
	lines := logs.TakeAll()
	if len(lines) != 1 || lines[0].Message != "failed to read the store" {
		t.Fatalf("a second later logged %v, want one line", lines)
	}
	if f := lines[0].ContextMap(); f["read"] != "leases" || f["unlogged-since-last"] != int64(len(reads)-1) ||
		!strings.Contains(fmt.Sprint(f["error"]), errorfs.ErrInjected.Error()) {
		t.Errorf("second line %v, want the leases read, its error and %d unlogged", f, len(reads)-1)
	}
	faults.Off()

	want := map[string]string{
		"user": "alice", "alarms": "1 NOSPACE", "lease": "{7 60 0} true",
		"lease-keys": `["a"]`, "leases": "[{7 60 0}]", "prev-kv": "1",
	}
	for _, r := range reads {
		if got, err := r.run(); err != nil || got != want[r.name] {
			t.Errorf("%s after the fault: %q, %v; want %q", r.name, got, err, want[r.name])
		}
	}
}

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/lease/leasepb"

	"github.com/metastore/metastore/etcdbackend"
)

// An etcd backend whose lessor persisted a checkpoint (RemainingTTL) is
// migrated with it: a member started on the result gives that lease its
// remaining TTL, as etcd restored from the same file does, and the others
// their whole TTL; exported back to etcd, the checkpoint is in etcd's
// lease record again.
func TestMigrateKeepsCheckpointedRemainingTTL(t *testing.T) {
	src := filepath.Join(t.TempDir(), "etcd.snapshot")
	w, err := etcdbackend.Create(src)
	must(t, err)
	must(t, w.PutVersion(2, 0, false, &mvccpb.KeyValue{Key: []byte("leased"), CreateRevision: 2, Version: 1, Value: []byte("v"), Lease: 5}))
	must(t, w.PutLease(&leasepb.Lease{ID: 5, TTL: 300, RemainingTTL: 120}))
	must(t, w.PutLease(&leasepb.Lease{ID: 6, TTL: 90}))
	must(t, w.SetMeta(etcdbackend.Meta{ConsistentIndex: 5, Term: 2, ScheduledCompact: -1, FinishedCompact: -1,
		StorageVersion: etcdbackend.StorageVersion, AuthRevision: 1}))
	must(t, w.Close())
	must(t, etcdbackend.AppendChecksum(src))

	dataDir := filepath.Join(t.TempDir(), "ms")
	peer := "http://127.0.0.1:12381"
	out, e, code := runCLI("migrate", "from-etcd", src, "--data-dir", dataDir, "--name", "m",
		"--initial-cluster", "m="+peer, "--initial-advertise-peer-urls", peer)
	if code != 0 || !strings.Contains(out, "leases:    2 (1 with a checkpointed remaining TTL), 1 keys attached") {
		t.Fatalf("migrate: %d\n%s\n%s", code, out, e)
	}

	n, cli := startMember(t, "m", dataDir, peer)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for id, want := range map[clientv3.LeaseID]int64{5: 120, 6: 90} {
		ttl, err := cli.TimeToLive(ctx, id)
		must(t, err)
		// Promotion adds the election timeout (1 s); the start takes a
		// little of it.
		if ttl.TTL < want-5 || ttl.TTL > want+1 {
			t.Errorf("lease %d: %d s left of %d, want %d", id, ttl.TTL, ttl.GrantedTTL, want)
		}
	}
	n.Stop()

	back := filepath.Join(t.TempDir(), "back.snapshot")
	if out, e, code := runCLI("snapshot", "export", "--to-etcd", dataDir, back); code != 0 {
		t.Fatalf("export: %d %s %s", code, out, e)
	}
	b, err := etcdbackend.Open(back, time.Second)
	must(t, err)
	defer b.Close()
	var leases []string
	must(t, b.Leases(func(l *leasepb.Lease) error {
		leases = append(leases, fmt.Sprintf("%d:%d:%d", l.ID, l.TTL, l.RemainingTTL))
		return nil
	}))
	sort.Strings(leases)
	if got := strings.Join(leases, " "); got != "5:300:120 6:90:0" {
		t.Fatalf("exported leases (id:TTL:RemainingTTL) = %s, want 5:300:120 6:90:0", got)
	}
}

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/storeactor"
)

// corruptValue flips the last byte of key's newest stored version in a
// stopped MetaStore member's data dir: the store still reads, but its hash
// no longer matches its peers'.
func corruptValue(t *testing.T, dataDir, key string) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dataDir, "member", "pebble"), storeactor.PebbleOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	prefix := append([]byte("k"+key), 0, 1) // 'k' enc(key): the key, then 0x00 0x01
	upper := append([]byte("k"+key), 0, 2)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		t.Fatal(err)
	}
	if !it.First() {
		t.Fatalf("no stored version of %q", key)
	}
	k, v := append([]byte{}, it.Key()...), append([]byte{}, it.Value()...)
	it.Close()
	v[len(v)-1] ^= 0xff
	if err := db.Set(k, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// TestClusterCorruptAlarm: a member whose data no longer matches its peers'
// is found by the leader's periodic hash check (--corrupt-check-time), which
// raises CORRUPT for it, after which the cluster refuses writes with etcd's
// "corrupt cluster"; and with InitialCorruptCheck on, such a
// member refuses to start.
func TestClusterCorruptAlarm(t *testing.T) {
	servers := StartCluster(t, KindMetaStore, 3, WithFlags("--corrupt-check-time=500ms"))
	lead := waitLeader(t, servers, 10*time.Second)
	victim := servers[(lead+1)%3]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli := clusterClient(t, servers)
	for i := 0; i < 10; i++ {
		if _, err := cli.Put(ctx, "c", fmt.Sprintf("value-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := victim.Client(t).Status(ctx, victim.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	victimID := st.Header.MemberId
	// Let the victim apply everything, then corrupt it while it is down.
	time.Sleep(500 * time.Millisecond)
	victim.Stop()
	corruptValue(t, victim.DataDir, "c")

	// With the initial check on, it does not start: its hash differs from
	// its peers' at the same revision.
	victim.cfg.flags = append(victim.cfg.flags, "--feature-gates=InitialCorruptCheck=true")
	if err := victim.launch(); err == nil {
		t.Fatalf("%s started with corrupted data", victim.Name)
	}
	if !strings.Contains(victim.Log(), "found data inconsistency with peers") {
		t.Fatalf("%s: no inconsistency reported", victim.Name)
	}
	victim.cfg.flags = victim.cfg.flags[:len(victim.cfg.flags)-1]

	// Without it, it starts, and the leader's periodic check raises CORRUPT.
	victim.Restart(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := cli.AlarmList(ctx)
		if err == nil && len(resp.Alarms) > 0 {
			a := resp.Alarms[0]
			if len(resp.Alarms) != 1 || a.Alarm != etcdserverpb.AlarmType_CORRUPT || a.MemberID != victimID {
				t.Fatalf("alarms %v, want CORRUPT for %x", resp.Alarms, victimID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CORRUPT alarm (last: %v, %v)", resp, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, s := range servers {
		c := s.Client(t)
		if _, err := c.Put(ctx, "after", "x"); err == nil || !strings.Contains(err.Error(), "etcdserver: corrupt cluster") {
			t.Errorf("put through %s under CORRUPT: %v", s.Name, err)
		}
		// Reads are answered, as etcd's (they do not go through its
		// corrupt applier).
		if _, err := c.Get(ctx, "c", clientv3.WithSerializable()); err != nil {
			t.Errorf("serializable get through %s under CORRUPT: %v", s.Name, err)
		}
		if _, err := c.Get(ctx, "c"); err != nil {
			t.Errorf("get through %s under CORRUPT: %v", s.Name, err)
		}
	}
}

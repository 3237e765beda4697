package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestHashKVAtCompactionRevision: on every member of a three-member
// cluster, the hash at revision R is the same before `compact R
// --physical` and after it and a defragmentation of every member — also
// when every key was deleted at R — as etcd answers it (MetaStore's hash
// values differ from etcd's by design; what members and operators rely on
// is that a revision's hash does not change).
func TestHashKVAtCompactionRevision(t *testing.T) {
	run := func(t *testing.T, kind Kind) []string {
		servers := StartCluster(t, kind, 3)
		waitLeader(t, servers, 10*time.Second)
		cli := clusterClient(t, servers)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for i := 0; i < 12; i++ {
			if _, err := cli.Put(ctx, fmt.Sprint("k", i%3), fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		del, err := cli.Delete(ctx, "k", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		rev := del.Header.Revision
		if _, err := cli.Put(ctx, "later", "x"); err != nil {
			t.Fatal(err)
		}
		// hashes waits until every member has applied rev+1 and returns
		// their hashes at rev.
		hashes := func() []uint32 {
			out := make([]uint32, len(servers))
			for i, s := range servers {
				deadline := time.Now().Add(10 * time.Second)
				for {
					r, err := cli.HashKV(ctx, s.Endpoint(), rev)
					if err == nil && r.Header.Revision > rev {
						out[i] = r.Hash
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("HashKV(%d) on %s: %v", rev, s.Name, err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			return out
		}
		before := hashes()
		var out []string
		agree := func(hs []uint32) bool {
			for _, h := range hs {
				if h != hs[0] {
					return false
				}
			}
			return true
		}
		out = append(out, fmt.Sprintf("members agree before: %v, zero: %v", agree(before), before[0] == 0))

		if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		for _, s := range servers {
			if _, err := cli.Defragment(ctx, s.Endpoint()); err != nil {
				t.Fatalf("defragment %s: %v", s.Name, err)
			}
		}
		// Every member compacts on its own after applying the compaction:
		// etcd answers from the hash it stores when its compaction ends.
		var after []uint32
		deadline := time.Now().Add(10 * time.Second)
		for {
			after = hashes()
			if fmt.Sprint(after) == fmt.Sprint(before) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		out = append(out, fmt.Sprintf("after compact and defrag, same as before on every member: %v", fmt.Sprint(after) == fmt.Sprint(before)))
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Logf("%s: hashes at %d before %x, after %x", kind, rev, before, after)
		}
		_, err = cli.HashKV(ctx, servers[0].Endpoint(), rev-1)
		out = append(out, fmt.Sprintf("below the compaction revision: %v", err))
		return out
	}
	got := map[Kind][]string{}
	eachKind(t, func(t *testing.T, kind Kind) { got[kind] = run(t, kind) })
	if ms, ref := strings.Join(got[KindMetaStore], "\n"), strings.Join(got[KindEtcd], "\n"); ms != ref {
		t.Fatalf("differs from etcd\netcd:\n%s\nmetastore:\n%s", ref, ms)
	}
}

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A txn whose nested txns put a key and then delete it (the one order
// etcd's duplicate-key check lets through) changes the key twice in one
// revision: a watch from before it gets both events, with prev_kv, as
// etcd's does, and reads at that revision see the key deleted.
func TestTxnPutThenDeleteWatchAsEtcd(t *testing.T) {
	bothServers(t, func(t *testing.T, s *Server) string {
		cli := s.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var out strings.Builder
		p, err := cli.Put(ctx, "k", "v0")
		if err != nil {
			t.Fatal(err)
		}
		start := p.Header.Revision
		r, err := cli.Txn(ctx).Then(
			clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("k", "v1"), clientv3.OpPut("other", "o")}, nil),
			clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpDelete("k")}, nil),
		).Commit()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "txn: succeeded=%v revision=%d\n", r.Succeeded, r.Header.Revision-start)
		g, err := cli.Get(ctx, "k", clientv3.WithRev(r.Header.Revision))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "get at txn: %d keys\n", len(g.Kvs))
		wch := cli.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(start), clientv3.WithPrevKV())
		for seen := 0; seen < 4; {
			wr, ok := <-wch
			if !ok {
				t.Fatalf("watch closed after %d events: %v", seen, wr.Err())
			}
			for _, ev := range wr.Events {
				prev := "-"
				if ev.PrevKv != nil {
					prev = fmt.Sprintf("%s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision-start)
				}
				fmt.Fprintf(&out, "%s %s=%q mod=+%d ver=%d prev=%s\n", ev.Type, ev.Kv.Key, ev.Kv.Value, max(0, ev.Kv.ModRevision-start), ev.Kv.Version, prev)
				seen++
			}
		}
		return out.String()
	})
}

package node_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/node/nodetest"
)

// The put path end to end in one process: a single in-memory member,
// clientv3 clients over loopback gRPC, many concurrent puts (as etcd's
// benchmark tool sends them). ns/op is the inverse of throughput on this
// machine and allocs/op counts client and server together: use them to
// compare a change to the request path with benchstat, e.g.
//
//	go test ./node -run '^$' -bench 'Put' -count 8 -benchmem > new.txt
//
// (make bench measures the real thing against etcd.)
func BenchmarkPut(b *testing.B)     { benchPut(b, false) }
func BenchmarkPutAuth(b *testing.B) { benchPut(b, true) }

func benchPut(b *testing.B, auth bool) {
	n := nodetest.Start(b, nodetest.Lone("bench", "/bench"))
	addr := n.ClientAddrs()[0]
	cfg := clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	ctx := context.Background()
	if auth {
		admin := nodetest.Client(b, n)
		for _, step := range []func() error{
			func() error { _, err := admin.RoleAdd(ctx, "root"); return err },
			func() error { _, err := admin.UserAdd(ctx, "root", "rootpw"); return err },
			func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
			func() error { _, err := admin.RoleAdd(ctx, "bench"); return err },
			func() error {
				_, err := admin.RoleGrantPermission(ctx, "bench", "k", clientv3.GetPrefixRangeEnd("k"), clientv3.PermissionType(clientv3.PermReadWrite))
				return err
			},
			func() error { _, err := admin.UserAdd(ctx, "bench", "benchpw"); return err },
			func() error { _, err := admin.UserGrantRole(ctx, "bench", "bench"); return err },
			func() error { _, err := admin.AuthEnable(ctx); return err },
		} {
			if err := step(); err != nil {
				b.Fatal(err)
			}
		}
		admin.Close()
		cfg.Username, cfg.Password = "bench", "benchpw"
	}
	// 16 connections, 32 goroutines per core putting (1000 clients over
	// 100 connections in make bench).
	clients := make([]*clientv3.Client, 16)
	for i := range clients {
		var err error
		if clients[i], err = clientv3.New(cfg); err != nil {
			b.Fatal(err)
		}
		defer clients[i].Close()
	}
	val := string(make([]byte, 256))
	var next atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cli := clients[next.Add(1)%int64(len(clients))]
		for pb.Next() {
			k := fmt.Sprintf("k%07d", next.Add(1)%100000)
			if _, err := cli.Put(ctx, k, val); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

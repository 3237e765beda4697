// Command authsetup turns auth on for the auth scenarios of
// scripts/bench.sh: a root user, and a user "bench" whose role may read and
// write the keys the benchmark tool uses — the prefix "bench-" (the range
// key) and every key from "\x00" on (the put scenario's binary keys, which
// share no prefix; etcdctl cannot pass "\x00" as an argument).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "client endpoint")
	password := flag.String("password", "benchpw", "password of root and of bench")
	flag.Parse()
	if err := setup(*endpoint, *password); err != nil {
		fmt.Fprintln(os.Stderr, "authsetup:", err)
		os.Exit(1)
	}
}

func setup(endpoint, pw string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", pw); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "bench"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "bench", "bench-", clientv3.GetPrefixRangeEnd("bench-"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "bench", "\x00", "\x00", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "bench", pw); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "bench", "bench"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return nil
}

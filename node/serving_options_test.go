package node_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/metastore/metastore/node"
	"github.com/metastore/metastore/node/nodetest"
	"github.com/metastore/metastore/testkit"
)

// With --max-concurrent-streams=1 a connection carries one stream at a
// time: a Put issued on a connection whose watch stream is open waits for
// that stream to end, so a Put issued after it on another connection
// commits first. Over TLS the gRPC client below offers HTTP/1.1 too, so
// its connection is net/http's HTTP/2 server's (as etcd serves all TLS
// traffic), which must cap its streams the same way.
func TestMaxConcurrentStreamsQueuesStreamsBeyondIt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		https bool
	}{{"plain", false}, {"tls-net-http", true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nodetest.Lone("streams", t.TempDir())
			cfg.MaxConcurrentStreams = 1
			creds := insecure.NewCredentials()
			if tc.https {
				url := []string{"https://127.0.0.1:0"}
				cfg.ListenClientURLs, cfg.AdvertiseClientURLs = url, url
				cfg.ClientTLS.AutoTLS = true
				creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
			}
			n := nodetest.Start(t, cfg)
			addr := n.ClientAddrs()[0]

			issued := make(chan struct{})
			var once sync.Once
			limited, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
				grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
					once.Do(func() { close(issued) })
					return invoker(ctx, method, req, reply, cc, opts...)
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer limited.Close()
			other, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			// The connection's one stream: a watch, open until cancelled.
			watchCtx, endWatch := context.WithCancel(ctx)
			defer endWatch()
			w, err := pb.NewWatchClient(limited).Watch(watchCtx)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("w")}}}); err != nil {
				t.Fatal(err)
			}
			if r, err := w.Recv(); err != nil || !r.Created {
				t.Fatalf("watch create: %v %v", r, err)
			}

			queued := make(chan *pb.PutResponse, 1)
			queuedErr := make(chan error, 1)
			go func() {
				r, err := pb.NewKVClient(limited).Put(ctx, &pb.PutRequest{Key: []byte("queued"), Value: []byte("1")})
				if err != nil {
					queuedErr <- err
					return
				}
				queued <- r
			}()
			<-issued
			later, err := pb.NewKVClient(other).Put(ctx, &pb.PutRequest{Key: []byte("later"), Value: []byte("2")})
			if err != nil {
				t.Fatal(err)
			}
			endWatch()
			select {
			case r := <-queued:
				if r.Header.Revision <= later.Header.Revision {
					t.Fatalf("the Put issued while the watch held the connection's one stream committed at revision %d, before the later Put on another connection (revision %d): it did not wait",
						r.Header.Revision, later.Header.Revision)
				}
			case err := <-queuedErr:
				t.Fatalf("the queued Put failed instead of waiting: %v", err)
			}
		})
	}
}

// With --socket-reuse-port two members bind the same client, peer and
// metrics ports (as a new member process does while the old one still
// holds them); without it the second member cannot start.
func TestSocketReusePortLetsTwoMembersShareTheirPorts(t *testing.T) {
	ports := map[string]int{"client": testkit.FreePort(t), "peer": testkit.FreePort(t), "metrics": testkit.FreePort(t)}
	// shared is a member listening on the shared ports of the listeners
	// named, and on ports of its own for the others.
	shared := func(name string, reuse bool, listeners ...string) node.Config {
		cfg := nodetest.Lone(name, t.TempDir())
		cfg.SocketReusePort = reuse
		for _, l := range listeners {
			url := []string{fmt.Sprintf("http://127.0.0.1:%d", ports[l])}
			switch l {
			case "client":
				cfg.ListenClientURLs, cfg.AdvertiseClientURLs = url, url
			case "peer":
				cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = url, url
				cfg.InitialCluster = map[string][]string{name: url}
			case "metrics":
				cfg.ListenMetricsURLs = url
			}
		}
		return cfg
	}
	nodetest.Start(t, shared("first", true, "client", "peer", "metrics"))
	nodetest.Start(t, shared("second", true, "client", "peer", "metrics"))

	for _, l := range []string{"client", "peer", "metrics"} {
		t.Run("without/"+l, func(t *testing.T) {
			n, err := node.Start(shared("third", false, l))
			if err == nil {
				n.Stop()
				t.Fatalf("a member without SO_REUSEPORT bound the %s port the others share", l)
			}
			if !strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
				t.Fatalf("binding the shared %s port: %v; want %q", l, err, syscall.EADDRINUSE.Error())
			}
		})
	}
}

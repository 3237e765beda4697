package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestWatchClientThatDoesNotRead: a client that creates and cancels
// watchers in a loop on one stream without reading the answers is, once
// the stream holds its budget, no longer read (etcd blocks its receive
// loop the same way): the server does not buffer answers for it without
// bound, and says so in metastore_watch_streams_unread. When it reads,
// it gets every answer, in order, and the stream goes on.
func TestWatchClientThatDoesNotRead(t *testing.T) {
	ms := StartMetaStore(t)
	conn, err := grpc.NewClient(ms.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ws, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unread := func() float64 {
		v, _ := scrapeMetrics(t, ms.ClientURL()+"/metrics").value("metastore_watch_streams_unread")
		return v
	}

	var sent atomic.Int64 // create/cancel pairs sent
	var stop atomic.Bool
	senderDone := make(chan error, 1)
	go func() {
		for id := int64(1); !stop.Load(); id++ {
			if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{
				CreateRequest: &pb.WatchCreateRequest{Key: []byte("k"), WatchId: id}}}); err != nil {
				senderDone <- err
				return
			}
			if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{
				CancelRequest: &pb.WatchCancelRequest{WatchId: id}}}); err != nil {
				senderDone <- err
				return
			}
			sent.Store(id)
		}
		senderDone <- nil
	}()

	deadline := time.Now().Add(60 * time.Second)
	for unread() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d create/cancel pairs unread, the server still reads the stream", sent.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the server stopped reading after %d create/cancel pairs", sent.Load())

	// Read everything: the sender is let go, then stopped.
	stop.Store(true)
	next := int64(1)
	created := true // the next answer expected: created, then canceled
	for {
		select {
		case err := <-senderDone:
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			senderDone = nil
		default:
		}
		if senderDone == nil && next > sent.Load() {
			break
		}
		r, err := ws.Recv()
		if err != nil {
			t.Fatalf("recv after %d pairs: %v", next-1, err)
		}
		if r.WatchId != next || r.Created != created || r.Canceled == created {
			t.Fatalf("answer %v, want watch %d created=%v", r, next, created)
		}
		if !created {
			next++
		}
		created = !created
	}
	if v := unread(); v != 0 {
		t.Fatalf("metastore_watch_streams_unread = %v after the client read everything", v)
	}
}

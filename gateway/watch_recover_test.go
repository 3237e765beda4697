package gateway

import (
	"context"
	"io"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	zapobserver "go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/raftactor"
	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/testkit"
	"github.com/metastore/metastore/watchactor"
)

// fakeWatchStream is a client's watch stream as the handler sees it: Recv
// hands out reqs, then panics if panicOnRecv is set, else ends (io.EOF);
// Send passes each response on.
type fakeWatchStream struct {
	pb.Watch_WatchServer
	ctx         context.Context
	reqs        []*pb.WatchRequest
	panicOnRecv bool
	sent        chan *pb.WatchResponse
}

func (s *fakeWatchStream) Context() context.Context { return s.ctx }

func (s *fakeWatchStream) Recv() (*pb.WatchRequest, error) {
	if len(s.reqs) > 0 {
		r := s.reqs[0]
		s.reqs = s.reqs[1:]
		return r, nil
	}
	if s.panicOnRecv {
		panic("injected panic in the watch stream's receive")
	}
	return nil, io.EOF
}

func (s *fakeWatchStream) Send(r *pb.WatchResponse) error {
	s.sent <- r
	return nil
}

// watchGateway is a Gateway over an empty store and a real watch Hub,
// logging to the observer it returns.
func watchGateway(t *testing.T) (*Gateway, *zapobserver.ObservedLogs) {
	t.Helper()
	db, err := storeactor.OpenPebble("/db", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reader, err := storeactor.NewReader(db)
	if err != nil {
		t.Fatal(err)
	}
	kit := testkit.New(t)
	hub := kit.Spawn(watchactor.New(watchactor.Config{Store: reader}))
	view := new(raftactor.ViewRef)
	view.Store(&raftactor.View{ID: 1, ClusterID: 2, Lead: 1, Term: 1})
	core, logs := zapobserver.New(zap.ErrorLevel)
	return New(Config{Root: kit.Root(), Watch: hub, RaftView: view, Store: reader, Logger: zap.New(core)}), logs
}

// A panic on a watch stream's receive goroutine, which the gRPC recovery
// interceptor does not cover, fails that stream alone with Internal
// (clientv3 opens a new one and resumes), is logged with the stack and
// counted, and the process serves on: the next stream creates its watch.
func TestWatchReceivePanicFailsTheStream(t *testing.T) {
	g, logs := watchGateway(t)
	srv := &watchServer{g: g}
	reg := testkit.Registry(t)
	panics := func() float64 {
		return testkit.Gather(t, reg).Total("metastore_recovered_panics_total", "where", actors.PanicGRPC)
	}
	before := panics()

	err := srv.Watch(&fakeWatchStream{ctx: context.Background(), panicOnRecv: true, sent: make(chan *pb.WatchResponse, 10)})
	if status.Code(err) != codes.Internal {
		t.Fatalf("stream whose receive panicked ended with %v, want Internal", err)
	}
	if n := panics() - before; n != 1 {
		t.Fatalf("metastore_recovered_panics_total{where=grpc} grew by %v, want 1", n)
	}
	lines := logs.FilterMessage("recovered from a panic").All()
	if len(lines) != 1 || lines[0].ContextMap()["method"] != watchMethod || lines[0].ContextMap()["stack"] == "" {
		t.Fatalf("logged %v, want one line with the method and the stack", lines)
	}

	ctx, cancel := context.WithCancel(context.Background())
	next := &fakeWatchStream{ctx: ctx, sent: make(chan *pb.WatchResponse, 10), reqs: []*pb.WatchRequest{
		{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("a")}}},
	}}
	done := make(chan error, 1)
	go func() { done <- srv.Watch(next) }()
	select {
	case r := <-next.sent:
		if !r.Created || r.Canceled {
			t.Fatalf("next stream's create answered %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("next stream's create got no answer")
	}
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("next stream ended with %v, want Canceled", err)
	}
}

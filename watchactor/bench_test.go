package watchactor_test

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/metastore/metastore/storeactor"
	"github.com/metastore/metastore/watchactor"
)

// BenchmarkFanOut measures the Hub's live path: one Committed revision
// matched against 1000 synced watchers (100 per stream, half on the key,
// half on a prefix holding it) and queued for each; the streams are
// drained by the benchmark goroutine, as gateway handlers would.
func BenchmarkFanOut(b *testing.B) {
	h := newHarness(b, watchactor.Config{})
	var streams []*stream
	for s := 0; s < 10; s++ {
		st := h.open(1 << 30)
		streams = append(streams, st)
		for w := 0; w < 100; w++ {
			req := &pb.WatchCreateRequest{Key: []byte("bench/key")}
			if w%2 == 1 {
				req = &pb.WatchCreateRequest{Key: []byte("bench/"), RangeEnd: []byte("bench0")}
			}
			h.send(&watchactor.Create{Out: st.Stream, Req: req})
		}
	}
	for _, st := range streams {
		h.take(st, 100)
	}
	rev := h.reader.View().Rev
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rev++
		ev := &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("bench/key"), Value: []byte("v"), CreateRevision: 2, ModRevision: rev, Version: 1}}
		h.send(&storeactor.Committed{From: rev, Rev: rev, Events: []*mvccpb.Event{ev}})
		for _, st := range streams {
			h.take(st, 100)
		}
	}
}

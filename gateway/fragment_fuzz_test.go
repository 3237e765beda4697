package gateway

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// FuzzSendFragments splits a watch response decoded from the fuzz input
// at a fuzzed size limit and checks that the pieces are etcd's
// (v3rpc/watch.go sendFragments): the same pieces, each under the limit
// unless it holds a single event, all but the last marked fragment, and
// the events, in order, those of the response.
func FuzzSendFragments(f *testing.F) {
	ev := func(k string, n int) *mvccpb.Event {
		return &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte(k), Value: make([]byte, n), ModRevision: 9}}
	}
	for _, s := range []struct {
		resp *pb.WatchResponse
		max  uint16
	}{
		{&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: 9}, WatchId: 1, Events: []*mvccpb.Event{ev("a", 10), ev("b", 10), ev("c", 10)}}, 40},
		{&pb.WatchResponse{WatchId: 2, Events: []*mvccpb.Event{ev("a", 100), ev("b", 1), ev("c", 100), ev("d", 1)}}, 64},
		{&pb.WatchResponse{WatchId: 3, Events: []*mvccpb.Event{ev("big", 500)}}, 16},
		{&pb.WatchResponse{WatchId: 4, Events: []*mvccpb.Event{ev("a", 1), ev("b", 1)}}, 1 << 15},
		{&pb.WatchResponse{WatchId: -1, Created: true}, 1},
	} {
		f.Add(mustMarshal(f, s.resp), s.max)
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		wr := new(pb.WatchResponse)
		if (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, wr) != nil {
			return // the Hub never makes a response with unknown fields
		}
		maxBytes := uint(limit)
		var got []*pb.WatchResponse
		if err := sendFragments(proto.Clone(wr).(*pb.WatchResponse), maxBytes, func(r *pb.WatchResponse) error {
			got = append(got, proto.Clone(r).(*pb.WatchResponse))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := etcdFragments(wr, maxBytes)
		if len(got) != len(want) {
			t.Fatalf("%d pieces, want %d", len(got), len(want))
		}
		var evs []*mvccpb.Event
		for i := range got {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("piece %d:\n%s\nwant\n%s", i, prototext.Format(got[i]), prototext.Format(want[i]))
			}
			if len(want) > 1 && (got[i].Fragment != (i < len(got)-1) || (len(got[i].Events) > 1 && uint(proto.Size(got[i])) >= maxBytes)) {
				t.Fatalf("piece %d of %d: fragment %v, %d events in %d bytes", i, len(got), got[i].Fragment, len(got[i].Events), proto.Size(got[i]))
			}
			evs = append(evs, got[i].Events...)
		}
		if len(evs) != len(wr.Events) {
			t.Fatalf("%d events sent, want %d", len(evs), len(wr.Events))
		}
		for i := range evs {
			if !proto.Equal(evs[i], wr.Events[i]) {
				t.Fatalf("event %d changed", i)
			}
		}
	})
}

// etcdFragments is what etcd's sendFragments sends.
func etcdFragments(wr *pb.WatchResponse, maxBytes uint) []*pb.WatchResponse {
	if uint(proto.Size(wr)) < maxBytes || len(wr.Events) < 2 {
		return []*pb.WatchResponse{wr}
	}
	var out []*pb.WatchResponse
	idx := 0
	for {
		cur := proto.Clone(wr).(*pb.WatchResponse)
		cur.Events, cur.Fragment = nil, true
		for _, ev := range wr.Events[idx:] {
			cur.Events = append(cur.Events, ev)
			if len(cur.Events) > 1 && uint(proto.Size(cur)) >= maxBytes {
				cur.Events = cur.Events[:len(cur.Events)-1]
				break
			}
			idx++
		}
		if idx == len(wr.Events) {
			cur.Fragment = false
		}
		out = append(out, cur)
		if !cur.Fragment {
			return out
		}
	}
}

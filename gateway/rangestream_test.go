package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	zapobserver "go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/storeactor"
)

// RangeStream's behaviour against the reference etcd (the exact chunks,
// etcdctl get --stream) is checked in e2e/rangestream_test.go; these tests
// check what a client relies on, in process: the chunks merge into the
// Range answer, the revision is pinned, errors are etcd's, memory stays
// bounded by a chunk.

// fakeRangeStream collects what the handler sends; after each chunk it
// calls onSend with the number sent so far, so a test can change the store
// between two chunks.
type fakeRangeStream struct {
	grpc.ServerStream
	ctx    context.Context
	chunks []*pb.RangeResponse
	onSend func(n int)
}

func (s *fakeRangeStream) Context() context.Context { return s.ctx }

func (s *fakeRangeStream) Send(r *pb.RangeStreamResponse) error {
	s.chunks = append(s.chunks, r.RangeResponse)
	if s.onSend != nil {
		s.onSend(len(s.chunks))
	}
	return nil
}

func (w *world) stream(ctx context.Context, r *pb.RangeRequest, onSend func(n int)) ([]*pb.RangeResponse, error) {
	s := &fakeRangeStream{ctx: ctx, onSend: onSend}
	err := w.kv().RangeStream(proto.Clone(r).(*pb.RangeRequest), s)
	return s.chunks, err
}

// merged is the chunks merged as clientv3.GetStreamToGetResponse does.
func merged(chunks []*pb.RangeResponse) *pb.RangeResponse {
	m := &pb.RangeResponse{}
	for _, c := range chunks {
		proto.Merge(m, c)
	}
	return m
}

// fillStreamKeys writes n keys k/0000.. with values of varied sizes in
// txns of 100, then overwrites every 7th key and deletes every 11th. It
// returns the revision after the first writes.
func fillStreamKeys(w *world, n int) (firstRev int64) {
	w.t.Helper()
	txn := func(ops []*pb.RequestOp) int64 {
		resp, err := w.kv().Txn(w.ctx, &pb.TxnRequest{Success: ops})
		if err != nil {
			w.t.Fatal(err)
		}
		return resp.Header.Revision
	}
	put := func(i int, v string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: fmt.Appendf(nil, "k/%04d", i), Value: []byte(strings.Repeat(v, (i*37)%200))}}}
	}
	var ops []*pb.RequestOp
	for i := range n {
		if ops = append(ops, put(i, "v")); len(ops) == 100 || i == n-1 {
			firstRev = txn(ops)
			ops = nil
		}
	}
	for i := 0; i < n; i += 7 {
		txn([]*pb.RequestOp{put(i, "w")})
	}
	for i := 0; i < n; i += 11 {
		txn([]*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: fmt.Appendf(nil, "k/%04d", i)}}}})
	}
	return firstRev
}

// Every stream, merged, is the Range answer to the same request (etcd's
// contract for RangeStreamResponse), whatever the limit, keys-only,
// count-only or revision; only the last chunk carries the header, more and
// count, the others their keys alone; a large range comes in many chunks,
// the first of at most 10 keys.
func TestRangeStreamMergesToRange(t *testing.T) {
	w := newWorld(t)
	first := fillStreamKeys(w, 700)
	w.g.cfg.MaxRequestBytes = 2048 // many chunks from a few hundred keys
	k, end := []byte("k/"), []byte("k0")
	for _, req := range []*pb.RangeRequest{
		{Key: k, RangeEnd: end},
		{Key: k, RangeEnd: end, Limit: 1},
		{Key: k, RangeEnd: end, Limit: 10},
		{Key: k, RangeEnd: end, Limit: 11},
		{Key: k, RangeEnd: end, Limit: 357},
		{Key: k, RangeEnd: end, Limit: 100000},
		{Key: k, RangeEnd: end, Limit: -1},
		{Key: k, RangeEnd: end, KeysOnly: true},
		{Key: k, RangeEnd: end, KeysOnly: true, Limit: 25},
		{Key: k, RangeEnd: end, Revision: first},
		{Key: k, RangeEnd: end, Revision: first, Limit: 300},
		{Key: k, RangeEnd: end, Serializable: true},
		{Key: k, RangeEnd: end, SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_ASCEND, Limit: 50},
		{Key: []byte("k/0350"), RangeEnd: []byte{0}},
		{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 20},
		{Key: []byte("k/0003")},
		{Key: []byte("k/0003"), KeysOnly: true},
		{Key: []byte("k/0000")}, // deleted
		{Key: []byte("x/"), RangeEnd: []byte("x0")},
		{Key: k, RangeEnd: end, CountOnly: true},
		{Key: k, RangeEnd: end, CountOnly: true, Limit: 5},
		{Key: k, RangeEnd: end, CountOnly: true, Revision: first},
	} {
		chunks, err := w.stream(w.ctx, req, nil)
		if err != nil {
			t.Fatalf("stream %s: %v", prototext.Format(req), err)
		}
		want, err := w.kv().Range(w.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := merged(chunks); !proto.Equal(got, want) {
			t.Fatalf("stream %s merged:\n%s\nRange:\n%s", prototext.Format(req), prototext.Format(got), prototext.Format(want))
		}
		last := len(chunks) - 1
		for i, c := range chunks[:last] {
			if c.Header != nil || c.More || c.Count != 0 || len(c.Kvs) == 0 {
				t.Fatalf("stream %s: chunk %d of %d is not keys alone: %s", prototext.Format(req), i, len(chunks), prototext.Format(c))
			}
		}
		if chunks[last].Header == nil {
			t.Fatalf("stream %s: the last chunk has no header", prototext.Format(req))
		}
		if len(chunks[0].Kvs) > initialStreamChunkLimit && req.Limit >= 0 { // etcd sends a negative limit's keys in one chunk
			t.Fatalf("stream %s: first chunk of %d keys", prototext.Format(req), len(chunks[0].Kvs))
		}
		if req.Limit == 0 && !req.CountOnly && want.Count > 100 && len(chunks) < 5 {
			t.Fatalf("stream %s: %d keys in %d chunks", prototext.Format(req), want.Count, len(chunks))
		}
	}
}

// A stream reads at the revision of its first chunk: writes between two
// chunks (a key added at the end of the range, one deleted and one
// overwritten past the first chunk) are not in the later chunks, and the
// header carries that first revision.
func TestRangeStreamPinsRevision(t *testing.T) {
	w := newWorld(t)
	fillStreamKeys(w, 300)
	w.g.cfg.MaxRequestBytes = 2048
	start := w.reader.View().Rev
	req := &pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0")}
	chunks, err := w.stream(w.ctx, req, func(n int) {
		if n != 1 {
			return
		}
		for _, r := range []*pb.InternalRaftRequest{
			{Put: &pb.PutRequest{Key: []byte("k/9999"), Value: []byte("new")}},
			{Put: &pb.PutRequest{Key: []byte("k/0200"), Value: []byte("changed")}},
			{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k/0250")}},
		} {
			if _, err := w.g.propose(w.ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if w.reader.View().Rev != start+3 || len(chunks) < 2 {
		t.Fatalf("the writes did not land between chunks: revision %d (from %d), %d chunks", w.reader.View().Rev, start, len(chunks))
	}
	want, err := w.kv().Range(w.ctx, &pb.RangeRequest{Key: req.Key, RangeEnd: req.RangeEnd, Revision: start})
	if err != nil {
		t.Fatal(err)
	}
	want.Header.Revision = start
	if got := merged(chunks); !proto.Equal(got, want) {
		t.Fatalf("merged:\n%s\nRange at %d:\n%s", prototext.Format(got), start, prototext.Format(want))
	}
}

// A compaction past the pinned revision while the stream runs fails the
// next chunk as etcd's does ("required revision has been compacted"), and
// the member logs which stream failed after how many chunks.
func TestRangeStreamCompactedMidStream(t *testing.T) {
	w := newWorld(t)
	core, logs := zapobserver.New(zap.WarnLevel)
	w.g.cfg.Logger = zap.New(core)
	fillStreamKeys(w, 300)
	w.g.cfg.MaxRequestBytes = 2048
	chunks, err := w.stream(w.ctx, &pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0")}, func(n int) {
		if n != 1 {
			return
		}
		put, err := w.kv().Put(w.ctx, &pb.PutRequest{Key: []byte("other"), Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.kv().Compact(w.ctx, &pb.CompactionRequest{Revision: put.Header.Revision}); err != nil {
			t.Fatal(err)
		}
	})
	if !errorIs(err, rpctypes.ErrGRPCCompacted) || len(chunks) != 1 {
		t.Fatalf("after %d chunks: %v, want %v after 1", len(chunks), err, rpctypes.ErrGRPCCompacted)
	}
	entries := logs.FilterMessage("range stream failed after sending chunks").All()
	if len(entries) != 1 || entries[0].ContextMap()["chunks"] != int64(1) || entries[0].ContextMap()["range_begin"] != "k/" {
		t.Fatalf("log: %v", logs.All())
	}
}

func errorIs(got, want error) bool {
	return status.Code(got) == status.Code(want) && rpctypes.ErrorDesc(got) == rpctypes.ErrorDesc(want)
}

// Requests a stream cannot serve are refused before anything is sent, with
// etcd's errors: a Range's (empty key, bad sort option, future or
// compacted revision), and Unimplemented for what needs the whole range
// before the first key (custom sort orders, revision filters).
func TestRangeStreamRefusals(t *testing.T) {
	w := newWorld(t)
	fillStreamKeys(w, 30)
	if _, err := w.kv().Compact(w.ctx, &pb.CompactionRequest{Revision: 3}); err != nil {
		t.Fatal(err)
	}
	k, end := []byte("k/"), []byte("k0")
	sortOrders := status.Error(codes.Unimplemented, "RangeStream does not support custom sort orders")
	filters := status.Error(codes.Unimplemented, "RangeStream does not support revision filters")
	for _, c := range []struct {
		req  *pb.RangeRequest
		want error
	}{
		{&pb.RangeRequest{RangeEnd: end}, rpctypes.ErrGRPCEmptyKey},
		{&pb.RangeRequest{Key: k, RangeEnd: end, SortOrder: 7}, rpctypes.ErrGRPCInvalidSortOption},
		{&pb.RangeRequest{Key: k, RangeEnd: end, SortTarget: 9}, rpctypes.ErrGRPCInvalidSortOption},
		{&pb.RangeRequest{Key: k, RangeEnd: end, SortOrder: pb.RangeRequest_DESCEND}, sortOrders},
		{&pb.RangeRequest{Key: k, RangeEnd: end, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_ASCEND}, sortOrders},
		{&pb.RangeRequest{Key: k, RangeEnd: end, MinModRevision: 2}, filters},
		{&pb.RangeRequest{Key: k, RangeEnd: end, MaxCreateRevision: 2}, filters},
		{&pb.RangeRequest{Key: k, RangeEnd: end, Revision: 1000}, rpctypes.ErrGRPCFutureRev},
		{&pb.RangeRequest{Key: k, RangeEnd: end, Revision: 2}, rpctypes.ErrGRPCCompacted},
		{&pb.RangeRequest{Key: k, RangeEnd: end, Revision: 2, CountOnly: true}, rpctypes.ErrGRPCCompacted},
	} {
		chunks, err := w.stream(w.ctx, c.req, nil)
		if !errorIs(err, c.want) || status.Convert(err).Message() != status.Convert(c.want).Message() || len(chunks) != 0 {
			t.Errorf("stream %s: %v after %d chunks, want %v", prototext.Format(c.req), err, len(chunks), c.want)
		}
	}
}

// With auth on, a stream is a read like a Range: refused without read
// permission on the whole range, served with it; an auth change while it
// runs fails it after its last chunk with etcd's "auth revision is old"
// (the client logs in again and retries), as etcd checks after a read.
func TestRangeStreamAuth(t *testing.T) {
	w := newWorld(t)
	fillStreamKeys(w, 300)
	w.g.cfg.MaxRequestBytes = 2048
	auth := &authServer{g: w.g}
	login := func(name string) context.Context {
		resp, err := auth.Authenticate(w.ctx, &pb.AuthenticateRequest{Name: name, Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		return metadata.NewIncomingContext(w.ctx, metadata.Pairs(rpctypes.TokenFieldNameGRPC, resp.Token))
	}
	must := func(_ proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(auth.UserAdd(w.ctx, &pb.AuthUserAddRequest{Name: "root", Password: "pw", Options: &authpb.UserAddOptions{}}))
	must(auth.UserGrantRole(w.ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}))
	must(auth.RoleAdd(w.ctx, &pb.AuthRoleAddRequest{Name: "reader"}))
	must(auth.RoleGrantPermission(w.ctx, &pb.AuthRoleGrantPermissionRequest{Name: "reader",
		Perm: &authpb.Permission{PermType: authpb.Permission_READ, Key: []byte("k/"), RangeEnd: []byte("k0")}}))
	must(auth.UserAdd(w.ctx, &pb.AuthUserAddRequest{Name: "u", Password: "pw", Options: &authpb.UserAddOptions{}}))
	must(auth.UserGrantRole(w.ctx, &pb.AuthUserGrantRoleRequest{User: "u", Role: "reader"}))
	must(auth.AuthEnable(w.ctx, &pb.AuthEnableRequest{}))
	root, u := login("root"), login("u")

	if chunks, err := w.stream(u, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")}, nil); !errorIs(err, rpctypes.ErrGRPCPermissionDenied) || len(chunks) != 0 {
		t.Fatalf("outside the permission: %v after %d chunks", err, len(chunks))
	}
	req := &pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0")}
	chunks, err := w.stream(u, req, nil)
	if err != nil || merged(chunks).Count != 300-300/11-1 {
		t.Fatalf("inside the permission: %v, %d chunks", err, len(chunks))
	}
	chunks, err = w.stream(u, req, func(n int) {
		if n == 1 {
			must(auth.RoleAdd(root, &pb.AuthRoleAddRequest{Name: "other"}))
		}
	})
	if !errorIs(err, rpctypes.ErrGRPCAuthOldRevision) || merged(chunks).Header == nil {
		t.Fatalf("auth changed during the stream: %v after %d chunks, want %v after the last", err, len(chunks), rpctypes.ErrGRPCAuthOldRevision)
	}
}

// The point of RangeStream: a range far larger than memory allows for one
// response is read with memory bounded by a chunk. 100k keys of 1 KiB
// (100 MiB of values, on disk) are streamed over gRPC to a client in this
// process; the Go heap (server and client together), sampled at every
// chunk received, never grows by more than a quarter of the data (a Range
// of the same keys holds all of it at least twice: the response and its
// encoding).
func TestRangeStreamMemoryBounded(t *testing.T) {
	db, err := storeactor.OpenPebble(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := newWorldOn(t, db)
	const n, size = 100_000, 1024
	rng := rand.New(rand.NewPCG(1, 2))
	value := func(i int) []byte {
		v := make([]byte, size)
		for j := range v {
			v[j] = byte('a' + rng.IntN(26)) // incompressible enough that pebble keeps it near full size
		}
		return binary.BigEndian.AppendUint32(v[:size-4], uint32(i))
	}
	var ops []*pb.RequestOp
	for i := range n {
		ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: fmt.Appendf(nil, "big/%06d", i), Value: value(i)}}})
		if len(ops) == fuzzMaxTxnOps || i == n-1 {
			if _, err := w.kv().Txn(w.ctx, &pb.TxnRequest{Success: ops}); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	client := pb.NewKVClient(serve(t, w.g))

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	// No limit on a message's size, as clientv3's default.
	stream, err := client.RangeStream(w.ctx, &pb.RangeRequest{Key: []byte("big/"), RangeEnd: []byte("big0")}, grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err != nil {
		t.Fatal(err)
	}
	keys, chunks := 0, 0
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d keys: %v", keys, err)
		}
		for _, kv := range resp.RangeResponse.Kvs {
			if want := fmt.Sprintf("big/%06d", keys); string(kv.Key) != want || len(kv.Value) != size ||
				binary.BigEndian.Uint32(kv.Value[size-4:]) != uint32(keys) {
				t.Fatalf("key %d: got %q with %d bytes, want %s", keys, kv.Key, len(kv.Value), want)
			}
			keys++
		}
		chunks++
		resp = nil
		runtime.GC() // what is held, not the garbage the GC has yet to collect
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	grown := peak - base
	t.Logf("%d keys in %d chunks; heap %d MiB before, grew by at most %.1f MiB", keys, chunks, base>>20, float64(grown)/(1<<20))
	if keys != n {
		t.Fatalf("%d keys streamed, want %d", keys, n)
	}
	bound := uint64(n*size) / 4
	if raceEnabled {
		bound *= 2 // see raceEnabled; still far from holding the whole stream
	}
	if grown > bound {
		t.Fatalf("the heap grew by %d MiB while streaming %d MiB (bound %d MiB)", grown>>20, n*size>>20, bound>>20)
	}
}

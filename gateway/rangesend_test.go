package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastore/metastore/testkit"
)

// heldTicket is a ticket of b holding n bytes (n past untrackedRangeBytes).
func heldTicket(t *testing.T, b *rangeBudget, n int64) *rangeTicket {
	t.Helper()
	tk := b.ticket()
	if err := tk.charge(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	return tk
}

func (p *budgetProbe) waitIdle() {
	p.t.Helper()
	for p.inFlight() != 0 {
		select {
		case <-p.idle:
		case <-time.After(wait):
			p.t.Fatalf("%d bytes still in flight", p.inFlight())
		}
	}
}

// The codec's encoding of a handed-over response is proto.Marshal's, byte
// for byte; it takes the key-values out of the response as it goes, and
// the bytes come back when gRPC frees the buffer (at once for one too
// small to be pooled).
func TestEncodeRangeIsProtoMarshal(t *testing.T) {
	big := bytes.Repeat([]byte("v"), 3000)
	var kvs []*mvccpb.KeyValue
	for i := range 40 {
		kvs = append(kvs, &mvccpb.KeyValue{Key: fmt.Appendf(nil, "k%03d", i), Value: big[:i*70], CreateRevision: int64(i + 1),
			ModRevision: int64(2*i + 1), Version: int64(i % 3), Lease: int64(i % 2 * 7)})
	}
	unknown := &pb.RangeResponse{Count: 3}
	unknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5))
	for _, r := range []*pb.RangeResponse{
		{},
		{Header: &pb.ResponseHeader{}},
		{Header: &pb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 300, RaftTerm: 4}, Kvs: kvs, More: true, Count: 1 << 40},
		{Header: &pb.ResponseHeader{Revision: 9}, Kvs: kvs[:1], Count: 1},
		{Kvs: []*mvccpb.KeyValue{{Key: []byte("keys-only"), ModRevision: 5}}, Count: -1},
		unknown,
	} {
		b := newRangeBudget(1<<20, zap.NewNop())
		p := probeBudget(t, b)
		want, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		c := proto.Clone(r).(*pb.RangeResponse)
		out, err := encodeRange(c, heldTicket(t, b, 100*kib))
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Materialize(); !bytes.Equal(got, want) {
			t.Fatalf("encodeRange(%v) = %x, want %x", r, got, want)
		}
		if c.Kvs != nil {
			t.Fatal("the key-values are still in the response")
		}
		out.Free()
		if got := p.inFlight(); got != 0 {
			t.Fatalf("%d bytes in flight once the buffer is freed", got)
		}
	}
}

// A response handed over and never marshaled, and an encoding gRPC drops
// without freeing (its connection closed while it was written), give
// their bytes back once the GC has collected them.
func TestRangeSendReleasedWhenDropped(t *testing.T) {
	b := newRangeBudget(1<<20, zap.NewNop())
	p := probeBudget(t, b)
	sends := &rangeSends{}
	func() {
		resp := &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: make([]byte, 100*kib)}}}
		putSend(sends, resp, heldTicket(t, b, 200*kib))
	}()
	runtime.GC()
	p.waitIdle()
	if sends.n.Load() != 0 {
		t.Fatal("the dropped response is still pending")
	}

	func() {
		resp := &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: make([]byte, 100*kib)}}}
		tk := heldTicket(t, b, 200*kib)
		putSend(sends, resp, tk)
		if got := takeSend(sends, resp); got != tk {
			t.Fatal("the codec did not get the ticket handed over")
		}
		if _, err := encodeRange(resp, tk); err != nil { // the buffer is dropped, never freed
			t.Fatal(err)
		}
	}()
	runtime.GC()
	p.waitIdle()
}

// A read waiting behind bytes that only the GC gives back — an encoding
// gRPC dropped without freeing it — gets them from the collection the
// budget starts, not at the runtime's next GC minutes later.
func TestRangeBudgetWaiterGetsDroppedBytes(t *testing.T) {
	b := newRangeBudget(1<<20, zap.NewNop())
	clock := testkit.NewFakeClock(time.Unix(1000, 0))
	b.setClock(clock)
	p := probeBudget(t, b)
	func() {
		resp := &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: make([]byte, 100*kib)}}}
		if _, err := encodeRange(resp, heldTicket(t, b, 2<<20)); err != nil { // dropped, never freed
			t.Fatal(err)
		}
	}()
	done := charging(context.Background(), b.ticket(), 512*kib)
	p.waiting()
	pending(t, done)
	clock.Advance(collectAfter)
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
}

// listKeys writes n keys prefix/0000.. of size-byte values, 100 to a txn.
func listKeys(w *world, prefix string, n, size int) {
	w.t.Helper()
	var ops []*pb.RequestOp
	for i := range n {
		ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: fmt.Appendf(nil, "%s%04d", prefix, i), Value: bytes.Repeat([]byte{byte('a' + i%26)}, size)}}})
		if len(ops) == 100 || i == n-1 {
			if _, err := w.kv().Txn(w.ctx, &pb.TxnRequest{Success: ops}); err != nil {
				w.t.Fatal(err)
			}
			ops = nil
		}
	}
}

// Ten clients listing a prefix of 1.5 MB at once, through the gRPC
// server, with a budget of 512 KiB: every list is answered whole and
// exactly, the bytes in flight never exceed the budget plus one
// response (the probe checks the budget plus what the oldest holds at
// every step, and the peak here), and all come back once the responses
// are sent.
func TestRangeConcurrentListsBounded(t *testing.T) {
	w := newWorld(t)
	listKeys(w, "list/", 1500, 1000)
	const limit = 512 * kib
	w.g.ranges = newRangeBudget(limit, zap.NewNop())
	p := probeBudget(t, w.g.ranges)
	kv := pb.NewKVClient(serve(t, w.g))
	req := &pb.RangeRequest{Key: []byte("list/"), RangeEnd: []byte("list0")}
	want, err := w.reader.Range(req)
	if err != nil {
		t.Fatal(err)
	}
	w.g.header(want.Header)
	tenBoundedReads(t, p, limit, int64(proto.Size(want)), func(i int) error {
		got, err := kv.Range(w.ctx, req)
		if err == nil && !proto.Equal(got, want) {
			err = fmt.Errorf("%d keys, count %d, more %v; want %d, %d, %v", len(got.Kvs), got.Count, got.More, len(want.Kvs), want.Count, want.More)
		}
		return err
	})
}

// tenBoundedReads runs read ten times at once, each an answer of size
// bytes under a budget of limit, and checks that the bytes in flight
// reached the budget (the reads charged it) and never went past it plus
// one response, and that all came back.
func tenBoundedReads(t *testing.T, p *budgetProbe, limit, size int64, read func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := read(i); err != nil {
				t.Errorf("read %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	p.waitIdle()
	if bound := limit + size + rangeChargeChunk; p.peak > bound {
		t.Fatalf("peak %d bytes in flight, over the budget plus one response (%d)", p.peak, bound)
	}
	if p.peak < limit {
		t.Fatalf("peak %d bytes in flight: the reads did not charge the budget (%d)", p.peak, limit)
	}
	t.Logf("responses of %d KiB, peak %d KiB in flight", size/kib, p.peak/kib)
}

// Read-only txns are bounded as lists are: ten clients each reading a
// prefix of 1.5 MB twice in one txn (a range of it, then a single key and
// the range again), through the gRPC server, with a budget of 512 KiB:
// every txn is answered exactly, the bytes in flight stay within the
// budget plus one response, and all come back once the responses are
// sent. A txn whose result will not fit in a message gets gRPC's answer
// and gives its bytes back.
func TestReadOnlyTxnBounded(t *testing.T) {
	w := newWorld(t)
	listKeys(w, "list/", 1500, 1000)
	const limit = 512 * kib
	w.g.ranges = newRangeBudget(limit, zap.NewNop())
	p := probeBudget(t, w.g.ranges)
	kv := pb.NewKVClient(serve(t, w.g))
	list := &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("list/"), RangeEnd: []byte("list0")}}}
	one := &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("list/0007")}}}
	req := &pb.TxnRequest{Success: []*pb.RequestOp{list, one, list}}
	want, err := w.reader.Txn(req)
	if err != nil {
		t.Fatal(err)
	}
	w.g.header(want.Header)
	size := int64(proto.Size(want))
	tenBoundedReads(t, p, limit, size, func(int) error {
		got, err := kv.Txn(w.ctx, req)
		if err == nil && !proto.Equal(got, want) {
			err = fmt.Errorf("%d bytes, want %d", proto.Size(got), size)
		}
		return err
	})

	w.g.maxSendBytes = size - 1
	failed := requestDurationSec.WithLabelValues("ReadonlyTxn", "false").(prometheus.Histogram)
	failures := histogramCount(t, failed)
	_, err = kv.Txn(w.ctx, req)
	if got := histogramCount(t, failed) - failures; got != 1 {
		t.Errorf("a read-only txn too large to send counted %d times as a failed request, want 1", got)
	}
	if s, _ := status.FromError(err); s.Code() != codes.ResourceExhausted ||
		s.Message() != fmt.Sprintf("grpc: trying to send message larger than max (%d vs. %d)", size, size-1) {
		t.Fatalf("Txn of %d bytes with a limit of %d: %v; want etcd's too large to send", size, size-1, err)
	}
	p.waitIdle()
}

// A result larger than the largest message gRPC sends gets etcd's
// answer (gRPC's ResourceExhausted); a read that returns what it builds
// stops once that is certain rather than building all of it; ranges that
// build more than they return (revision filters, keys only sorted by
// value) are answered when their result fits; so is a page under the
// limit. A single key is checked too.
func TestRangeTooLargeToSend(t *testing.T) {
	w := newWorld(t)
	listKeys(w, "big/", 1500, 500)
	resp, err := w.kv().Put(w.ctx, &pb.PutRequest{Key: []byte("one"), Value: make([]byte, 200*kib)})
	if err != nil {
		t.Fatal(err)
	}
	const max = 100 * kib
	w.g.maxSendBytes = max
	p := probeBudget(t, w.g.ranges)
	kv := pb.NewKVClient(serve(t, w.g))
	tooLarge := func(r *pb.RangeRequest) {
		t.Helper()
		_, err := kv.Range(w.ctx, r)
		s, _ := status.FromError(err)
		if s.Code() != codes.ResourceExhausted || !strings.HasPrefix(s.Message(), "grpc: trying to send message larger than max (") ||
			!strings.HasSuffix(s.Message(), fmt.Sprintf(" vs. %d)", max)) {
			t.Fatalf("Range(%v): %v; want etcd's too large to send", r, err)
		}
	}
	all := &pb.RangeRequest{Key: []byte("big/"), RangeEnd: []byte("big0")}
	tooLarge(all)
	if bound := int64(max + rangeChargeChunk); p.peak > bound {
		t.Fatalf("peak %d bytes in flight: the read went on past the limit (%d)", p.peak, bound)
	}
	tooLarge(&pb.RangeRequest{Key: []byte("one")})
	for _, r := range []*pb.RangeRequest{
		{Key: all.Key, RangeEnd: all.RangeEnd, Limit: 50},
		{Key: all.Key, RangeEnd: all.RangeEnd, MinModRevision: resp.Header.Revision - 1},
		{Key: all.Key, RangeEnd: all.RangeEnd, KeysOnly: true, SortTarget: pb.RangeRequest_VALUE},
	} {
		got, err := kv.Range(w.ctx, r)
		if err != nil {
			t.Fatalf("Range(%v): %v", r, err)
		}
		want, err := w.reader.Range(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Kvs) != len(want.Kvs) || got.Count != want.Count || got.More != want.More {
			t.Fatalf("Range(%v): %d keys, count %d; want %d, %d", r, len(got.Kvs), got.Count, len(want.Kvs), want.Count)
		}
	}
	p.waitIdle()
}

// A client that cancels its Range while the response waits to be sent
// (it granted no flow-control window: HTTP/2's SETTINGS_INITIAL_WINDOW_SIZE
// 0) gives the response's bytes back at once: gRPC drops the encoding
// with the stream.
//
// The client cancels only once one byte of the response has come (it
// grants one), so the encoding is in gRPC's writer: a cancel that
// overtakes the handler's write makes gRPC drop the frame without freeing
// it, and the bytes come back at the GC after instead
// (TestRangeSendReleasedWhenDropped).
func TestRangeCanceledWhileSentReleases(t *testing.T) {
	w := newWorld(t)
	listKeys(w, "list/", 300, 1000)
	p := probeBudget(t, w.g.ranges)
	srv := w.g.NewServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/etcdserverpb.KV/Range"},
		{":authority", "test"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	req, _ := proto.Marshal(&pb.RangeRequest{Key: []byte("list/"), RangeEnd: []byte("list0")})
	msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(req)))
	for _, err := range []error{
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}),
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}),
		fr.WriteData(1, true, append(msg, req...)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The response's first byte, once granted: the handler has answered
	// and gRPC's writer holds the encoding, which it may not send on.
	granted := false
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
		}
		if h, ok := f.(*http2.HeadersFrame); ok && h.StreamID == 1 && !granted {
			if err := fr.WriteWindowUpdate(1, 1); err != nil {
				t.Fatal(err)
			}
			granted = true
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			if n := len(d.Data()); n != 1 {
				t.Fatalf("%d bytes sent with a window of 1", n)
			}
			break
		}
	}
	if got := p.inFlight(); got < 300*1000 {
		t.Fatalf("%d bytes in flight while the response waits to be sent", got)
	}
	if err := fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	p.waitIdle()
}

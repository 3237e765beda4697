package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// streamKeys is the size of the large range: 100k keys.
const streamKeys = 100_000

// TestRangeStreamDifferential gives MetaStore and the reference etcd the
// same history — no keys under /empty/, one under /one/, 100k under /big/
// with values whose order is not the keys', some overwritten and deleted,
// a compaction — and requires the same RangeStream from both: every
// message of a clientv3 RangeStream (headers' ids aside: cluster, member,
// term) and the same output of `etcdctl get --stream`, for limits, keys-
// only, count-only, past, compacted and future revisions, sort options,
// and with auth on, a user without permission.
func TestRangeStreamDifferential(t *testing.T) {
	ms, ref := StartMetaStore(t), StartEtcd(t)
	var mid int64
	var wg sync.WaitGroup
	for _, s := range []*Server{ms, ref} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rev, err := fillRangeStream(s.Client(t)); err != nil {
				t.Errorf("%s: %v", s.Kind, err)
			} else if s == ref {
				mid = rev
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	const compacted = 5
	for _, s := range []*Server{ms, ref} {
		if _, err := s.Client(t).Compact(context.Background(), compacted); err != nil {
			t.Fatal(err)
		}
	}

	big, bigEnd, all := []byte("/big/"), []byte("/big0"), []byte{0}
	reqs := []*pb.RangeRequest{
		{Key: []byte("/empty/"), RangeEnd: []byte("/empty0")},
		{Key: []byte("/one/k")},
		{Key: []byte("/one/"), RangeEnd: []byte("/one0")},
		{Key: big, RangeEnd: bigEnd},
		{Key: big, RangeEnd: bigEnd, Limit: 1},
		{Key: big, RangeEnd: bigEnd, Limit: 10},
		{Key: big, RangeEnd: bigEnd, Limit: 11},
		{Key: big, RangeEnd: bigEnd, Limit: 1000},
		{Key: big, RangeEnd: bigEnd, Limit: streamKeys - 1},
		{Key: big, RangeEnd: bigEnd, Limit: 2 * streamKeys},
		{Key: big, RangeEnd: bigEnd, Limit: -1},
		{Key: big, RangeEnd: bigEnd, KeysOnly: true},
		{Key: big, RangeEnd: bigEnd, KeysOnly: true, Limit: 500},
		{Key: big, RangeEnd: bigEnd, CountOnly: true},
		{Key: big, RangeEnd: bigEnd, CountOnly: true, Limit: 3},
		{Key: big, RangeEnd: bigEnd, Revision: mid},
		{Key: big, RangeEnd: bigEnd, Revision: mid, Limit: 20_000},
		{Key: big, RangeEnd: bigEnd, Revision: compacted - 1},
		{Key: big, RangeEnd: bigEnd, Revision: 1 << 40},
		{Key: big, RangeEnd: bigEnd, Serializable: true},
		{Key: []byte("/big/099990"), RangeEnd: all},
		{Key: all, RangeEnd: all, Limit: 30},
		{Key: big, RangeEnd: bigEnd, SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_ASCEND},
		{Key: big, RangeEnd: bigEnd, SortTarget: pb.RangeRequest_VALUE, Limit: 5000}, // etcd sorts each chunk alone
		{Key: big, RangeEnd: bigEnd, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND},
		{Key: big, RangeEnd: bigEnd, MinModRevision: mid},
		{Key: big, RangeEnd: bigEnd, SortOrder: 9},
		{RangeEnd: bigEnd},
	}
	msKV, refKV := pb.NewKVClient(ms.Client(t).ActiveConnection()), pb.NewKVClient(ref.Client(t).ActiveConnection())
	for _, r := range reqs {
		got, gotErr := rangeStreamMessages(msKV, r)
		want, wantErr := rangeStreamMessages(refKV, r)
		if d := diffStreams(got, gotErr, want, wantErr); d != "" {
			t.Errorf("RangeStream %s: %s", fmtMsg(r), d)
		}
	}

	midRev := fmt.Sprint(mid)
	for _, args := range [][]string{
		{"/one/k"},
		{"/empty/", "--prefix"},
		{"/big/", "--prefix"},
		{"/big/", "--prefix", "--limit", "5"},
		{"/big/", "--prefix", "--limit", "3", "-w", "json"},
		{"/big/", "--prefix", "--keys-only"},
		{"/big/", "--prefix", "--count-only", "-w", "fields"},
		{"/big/", "--prefix", "--rev", midRev, "--limit", "3", "-w", "fields"},
		{"/big/", "--prefix", "--rev", "2"},
		{"/big/", "--prefix", "--sort-by", "VALUE", "--limit", "40"},
		{"/big/", "--prefix", "--sort-by", "VALUE", "--order", "DESCEND"},
		{"/big/", "--prefix", "--min-mod-rev", midRev},
		{"/big/099995", "--from-key", "--print-value-only"},
		{"/big/000100", "/big/000110", "--consistency", "s"},
	} {
		compareEtcdctl(t, ms, ref, append([]string{"get", "--stream"}, args...)...)
	}

	// With auth on: a user reading outside its permission is refused, as
	// for a Range; inside it, served.
	for _, s := range []*Server{ms, ref} {
		for _, args := range [][]string{
			{"user", "add", "root:pw"}, {"user", "grant-role", "root", "root"},
			{"role", "add", "r"}, {"role", "grant-permission", "r", "read", "/one/", "--prefix"},
			{"user", "add", "u:pw"}, {"user", "grant-role", "u", "r"}, {"auth", "enable"},
		} {
			if _, stderr, err := Etcdctl(t, s.Endpoint(), args...); err != nil {
				t.Fatalf("%s: %v: %s", s.Kind, err, stderr)
			}
		}
	}
	for _, args := range [][]string{
		{"get", "--stream", "/big/", "--prefix", "--limit", "2"},
		{"get", "--stream", "/one/", "--prefix"},
	} {
		compareEtcdctl(t, ms, ref, append([]string{"--user", "u:pw"}, args...)...)
	}
	userKV := func(s *Server) pb.KVClient {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, Username: "u", Password: "pw", DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return pb.NewKVClient(c.ActiveConnection())
	}
	msKV, refKV = userKV(ms), userKV(ref)
	for _, c := range []struct {
		r       *pb.RangeRequest
		allowed bool
	}{{&pb.RangeRequest{Key: big, RangeEnd: bigEnd}, false}, {&pb.RangeRequest{Key: []byte("/one/"), RangeEnd: []byte("/one0")}, true}} {
		got, gotErr := rangeStreamMessages(msKV, c.r)
		want, wantErr := rangeStreamMessages(refKV, c.r)
		if d := diffStreams(got, gotErr, want, wantErr); d != "" {
			t.Errorf("RangeStream as u %s: %s", fmtMsg(c.r), d)
		}
		if denied := rpctypes.ErrorDesc(gotErr) == rpctypes.ErrorDesc(rpctypes.ErrGRPCPermissionDenied); denied == c.allowed || (c.allowed && gotErr != nil) {
			t.Errorf("RangeStream as u %s: %v", fmtMsg(c.r), gotErr)
		}
	}
}

// fillRangeStream writes the test's history; it returns the revision
// after the 100k keys, before they are overwritten and deleted.
func fillRangeStream(c *clientv3.Client) (mid int64, err error) {
	ctx := context.Background()
	if _, err := c.Put(ctx, "/one/k", "v"); err != nil {
		return 0, err
	}
	var ops []clientv3.Op
	flush := func() error {
		resp, err := c.Txn(ctx).Then(ops...).Commit()
		if err == nil {
			mid = resp.Header.Revision
		}
		ops = ops[:0]
		return err
	}
	for i := range streamKeys {
		// Values of 0 to 96 bytes whose order is not the keys'.
		v := strings.Repeat(string(rune('a'+(i*7)%26)), i%97)
		if ops = append(ops, clientv3.OpPut(fmt.Sprintf("/big/%06d", i), v)); len(ops) == 128 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	midRev := mid
	for i := 0; i < streamKeys; i += 1000 {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("/big/%06d", i), "overwritten"))
	}
	if err := flush(); err != nil {
		return 0, err
	}
	if _, err := c.Delete(ctx, "/big/050000", clientv3.WithRange("/big/051000")); err != nil {
		return 0, err
	}
	return midRev, nil
}

// rangeStreamMessages is every message of a RangeStream, with the error
// that ended it (nil: io.EOF). The ids in headers are zeroed.
func rangeStreamMessages(kv pb.KVClient, r *pb.RangeRequest) ([]*pb.RangeResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := kv.RangeStream(ctx, r, grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err != nil {
		return nil, err
	}
	var out []*pb.RangeResponse
	for {
		resp, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		zeroHeader(resp.RangeResponse.GetHeader())
		out = append(out, resp.RangeResponse)
	}
}

// diffStreams describes how two streams differ, "" if they do not.
func diffStreams(got []*pb.RangeResponse, gotErr error, want []*pb.RangeResponse, wantErr error) string {
	gs, ws := status.Convert(gotErr), status.Convert(wantErr)
	if (gotErr == nil) != (wantErr == nil) || gs.Code() != ws.Code() || gs.Message() != ws.Message() {
		return fmt.Sprintf("ended with %v, etcd's with %v", gotErr, wantErr)
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d messages of %s, etcd sent %d of %s", len(got), chunkSizes(got), len(want), chunkSizes(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			return fmt.Sprintf("message %d of %d differs:\n%.2000s\netcd:\n%.2000s", i, len(got), fmtMsg(got[i]), fmtMsg(want[i]))
		}
	}
	return ""
}

func chunkSizes(rs []*pb.RangeResponse) string {
	n := make([]string, len(rs))
	for i, r := range rs {
		n[i] = fmt.Sprint(len(r.Kvs))
	}
	return "[" + strings.Join(n, " ") + "] keys"
}

// compareEtcdctl runs etcdctl with args against both servers and requires
// the same stdout (header ids aside), stderr and exit status.
func compareEtcdctl(t *testing.T, ms, ref *Server, args ...string) {
	t.Helper()
	gotOut, gotErr, gotRunErr := Etcdctl(t, ms.Endpoint(), args...)
	wantOut, wantErr, wantRunErr := Etcdctl(t, ref.Endpoint(), args...)
	if normIDs(gotOut) != normIDs(wantOut) || gotErr != wantErr || etcdctlExitCode(gotRunErr) != etcdctlExitCode(wantRunErr) {
		t.Errorf("etcdctl %s:\nmetastore (%v): %.1000s%.1000s\netcd (%v): %.1000s%.1000s",
			strings.Join(args, " "), gotRunErr, gotOut, gotErr, wantRunErr, wantOut, wantErr)
	}
}

func etcdctlExitCode(err error) string {
	if err == nil {
		return "0"
	}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return fmt.Sprint(ee.ExitCode())
	}
	return err.Error()
}

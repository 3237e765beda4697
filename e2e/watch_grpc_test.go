package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// The Watch tests run one script against MetaStore and against the
// reference etcd at once, each script writing a transcript (every response
// received, normalised: no cluster/member ids or raft term), and require
// the same transcripts. Subtests share their servers and run in order, so
// both servers see the same writes and their revisions stay equal.

// TestWatchGRPC drives raw Watch streams response by response.
func TestWatchGRPC(t *testing.T) {
	p := startWatchPair(t)

	t.Run("CreatedResponse", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			c.put("cr/k", "v0")
			st := c.open()
			st.create(&pb.WatchCreateRequest{Key: []byte("cr/k")})
			st.expect(1)
			c.put("cr/k", "v1")
			st.expect(1)
			st.quiet()
		})
	})

	t.Run("WatchIDs", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			st := c.open()
			key := []byte("ids/k")
			for _, id := range []int64{0, 0, 5, 0, 3, 0, 0} {
				st.create(&pb.WatchCreateRequest{Key: key, WatchId: id})
				st.expect(1)
			}
			c.note("duplicate client-chosen id")
			st.create(&pb.WatchCreateRequest{Key: key, WatchId: 5})
			st.expect(1)
			c.note("cancel a known id, then an unknown one")
			st.cancel(1)
			st.expect(1)
			st.cancel(99)
			st.quiet()
			c.note("the canceled id is free again; auto ids go on")
			st.create(&pb.WatchCreateRequest{Key: key, WatchId: 1})
			st.expect(1)
			st.create(&pb.WatchCreateRequest{Key: key})
			st.expect(1)
			c.note("one event response per watcher")
			c.put("ids/k", "v")
			st.expectSorted(8)
			st.quiet()

			c.note("ids are per stream")
			st2 := c.open()
			st2.create(&pb.WatchCreateRequest{Key: key})
			st2.expect(1)

			c.note("negative client-chosen ids, -1 included, are taken as they are")
			st2.create(&pb.WatchCreateRequest{Key: key, WatchId: -7})
			st2.expect(1)
			st2.create(&pb.WatchCreateRequest{Key: key, WatchId: -1})
			st2.expect(1)
			c.put("ids/k", "w")
			st2.expectSorted(3)
			st2.cancel(-1)
			st2.expect(1)
			st2.cancel(-7)
			st2.expect(1)
			st2.quiet()
		})
	})

	t.Run("InvalidCreate", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			st := c.open()
			for _, req := range []*pb.WatchCreateRequest{
				{Key: []byte("b"), RangeEnd: []byte("a")},
				{Key: []byte("a"), RangeEnd: []byte("a")},
				{Key: []byte("a"), RangeEnd: []byte("b"), StartRevision: -1},
				{Key: []byte("a"), StartRevision: -5, WatchId: 9},
				{Key: []byte("b"), RangeEnd: []byte("a"), WatchId: 9},
			} {
				c.note("create key=%q end=%q start=%d id=%d", req.Key, req.RangeEnd, req.StartRevision, req.WatchId)
				st.create(req)
				st.expect(1)
			}
			c.note("refused creates take no id")
			st.create(&pb.WatchCreateRequest{Key: []byte("inv/k")})
			st.expect(1)
			st.create(&pb.WatchCreateRequest{Key: []byte("inv/k"), WatchId: 9})
			st.expect(1)
			c.note("a request without a body is ignored")
			st.send(&pb.WatchRequest{})
			st.quiet()
			c.note("empty bodies are empty messages on the wire: create of key \\x00, cancel of id 0")
			st.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{}})
			st.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{}})
			st.expect(2)
			c.put("inv/k", "v")
			st.expect(1)
			st.quiet()
		})
	})

	t.Run("KeyShapes", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			st := c.open()
			c.note("empty key: the single key \\x00")
			st.create(&pb.WatchCreateRequest{WatchId: 1})
			st.expect(1)
			c.note("range_end \\x00: every key from key")
			st.create(&pb.WatchCreateRequest{WatchId: 2, Key: []byte("ks/m"), RangeEnd: []byte{0}})
			st.expect(1)
			c.note("empty key with range_end \\x00: every key")
			st.create(&pb.WatchCreateRequest{WatchId: 3, RangeEnd: []byte{0}})
			st.expect(1)
			c.note("a range [ks/b, ks/d)")
			st.create(&pb.WatchCreateRequest{WatchId: 4, Key: []byte("ks/b"), RangeEnd: []byte("ks/d")})
			st.expect(1)
			c.note("empty key with a range_end: [\\x00, ks/b)")
			st.create(&pb.WatchCreateRequest{WatchId: 5, RangeEnd: []byte("ks/b")})
			st.expect(1)
			ranges := []keyRange{{"\x00", ""}, {"ks/m", "\x00"}, {"\x00", "\x00"}, {"ks/b", "ks/d"}, {"\x00", "ks/b"}}
			for _, k := range []string{"\x00", "ks/a", "ks/b", "ks/c", "ks/d", "ks/m", "ks/z"} {
				c.put(k, "v")
				st.expectSorted(c.matching(k, ranges))
			}
			st.quiet()
		})
	})

	t.Run("Events", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			c.put("ev/pre", "old")
			st := c.open()
			st.create(&pb.WatchCreateRequest{WatchId: 1, Key: []byte("ev/"), RangeEnd: []byte("ev0")})
			st.create(&pb.WatchCreateRequest{WatchId: 2, Key: []byte("ev/"), RangeEnd: []byte("ev0"),
				Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
			st.create(&pb.WatchCreateRequest{WatchId: 3, Key: []byte("ev/"), RangeEnd: []byte("ev0"),
				Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})
			st.create(&pb.WatchCreateRequest{WatchId: 4, Key: []byte("ev/"), RangeEnd: []byte("ev0"), PrevKv: true})
			st.create(&pb.WatchCreateRequest{WatchId: 5, Key: []byte("ev/"), RangeEnd: []byte("ev0"),
				Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT, pb.WatchCreateRequest_NODELETE}})
			st.expect(5)
			c.note("create, update, delete of one key")
			c.put("ev/a", "1")
			st.expectSorted(3)
			c.put("ev/a", "2")
			st.expectSorted(3)
			c.put("ev/pre", "new")
			st.expectSorted(3)
			c.del("ev/a", "")
			st.expectSorted(3)
			c.note("a txn writing several keys at one revision: one response per watcher")
			c.txn(putOp("ev/t1", "x"), putOp("ev/t2", "y"), putOp("ev/pre", "newer"), delOp("ev/zzz", ""))
			st.expectSorted(3)
			c.note("a txn putting and deleting")
			c.txn(putOp("ev/t3", "z"), delOp("ev/t1", ""))
			st.expectSorted(4)
			c.note("a range delete of several keys")
			c.del("ev/", "ev0")
			st.expectSorted(3)
			c.note("deleting nothing, and a txn writing nothing, make no events")
			c.del("ev/none", "")
			c.txn()
			st.quiet()
		})
	})

	t.Run("StartRevision", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			first := c.put("sr/a", "1")
			c.put("sr/b", "1")
			c.put("sr/a", "2")
			c.del("sr/a", "")
			c.put("other", "x")
			c.txn(putOp("sr/c", "1"), putOp("sr/d", "1"))
			last := c.put("sr/b", "2")
			st := c.open()
			c.note("replay from the past, incl. deletes, in one response")
			st.create(&pb.WatchCreateRequest{WatchId: 1, Key: []byte("sr/"), RangeEnd: []byte("sr0"), StartRevision: first})
			st.expect(2)
			st.create(&pb.WatchCreateRequest{WatchId: 2, Key: []byte("sr/a"), StartRevision: first + 1, PrevKv: true})
			st.expect(2)
			c.note("from the current revision")
			st.create(&pb.WatchCreateRequest{WatchId: 3, Key: []byte("sr/b"), StartRevision: last})
			st.expect(2)
			c.note("from the next revision: nothing to replay")
			st.create(&pb.WatchCreateRequest{WatchId: 4, Key: []byte("sr/b"), StartRevision: last + 1})
			st.expect(1)
			c.note("from a future revision: events before it are skipped")
			st.create(&pb.WatchCreateRequest{WatchId: 5, Key: []byte("sr/b"), StartRevision: last + 2})
			st.expect(1)
			st.quiet()
			c.put("sr/b", "3")
			st.expectSorted(3)
			c.put("sr/b", "4")
			st.expectSorted(4)
			st.quiet()
		})
	})

	t.Run("ProgressRequest", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			c.note("no watchers: no answer")
			st := c.open()
			st.progress()
			st.quiet()
			c.note("all watchers synced: one answer, watch id -1, current revision")
			st.create(&pb.WatchCreateRequest{Key: []byte("pr/a")})
			st.create(&pb.WatchCreateRequest{Key: []byte("pr/"), RangeEnd: []byte("pr0")})
			st.expect(2)
			c.put("pr/a", "1")
			st.expectSorted(2)
			c.put("elsewhere", "1")
			st.progress()
			st.expect(1)
			st.quiet()
			c.note("a watcher waiting for a future revision: no answer")
			rev := c.put("elsewhere", "2")
			st.create(&pb.WatchCreateRequest{Key: []byte("pr/b"), StartRevision: rev + 2})
			st.expect(1)
			st.progress()
			st.quiet()
			c.put("elsewhere", "3")
			c.put("elsewhere", "4")
			st.progress()
			st.expect(1)
			c.note("after the canceled one is gone")
			st.cancel(2)
			st.expect(1)
			st.progress()
			st.expect(1)
			c.note("a progress request on another stream does not reach this one")
			st2 := c.open()
			st2.progress()
			st2.quiet()
			st.quiet()
		})
	})

	t.Run("CloseSend", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			st := c.open()
			st.create(&pb.WatchCreateRequest{Key: []byte("cs/k")})
			st.expect(1)
			st.closeSend()
			c.note("after CloseSend the server keeps the stream and sends")
			c.put("cs/k", "1")
			st.expect(1)
			c.put("cs/k", "2")
			st.expect(1)
			st.quiet()
			c.note("a stream closed with no watchers stays open too")
			st2 := c.open()
			st2.closeSend()
			st2.quiet()
			c.note("canceling the context ends the stream")
			st.stop()
			st.expect(1)
		})
	})

	t.Run("ManyWatchers", func(t *testing.T) {
		const n = 2000
		diffWatch(t, p, func(c *wscript) {
			st := c.open()
			for i := range n {
				req := &pb.WatchCreateRequest{Key: []byte("many/hot")}
				if i%2 == 1 {
					req.Key, req.RangeEnd = []byte("many/"), []byte("many0")
				}
				st.create(req)
			}
			created := st.collect(n, 20*time.Second)
			c.summary("created", created)
			c.put("many/hot", "v")
			evs := st.collect(n, 20*time.Second)
			c.summary("events", evs)
			st.quiet()
		})
	})

	t.Run("LongCatchUp", func(t *testing.T) {
		const n = 1500
		diffWatch(t, p, func(c *wscript) {
			first := c.putMany("lc/", n, 1)
			st := c.open()
			st.create(&pb.WatchCreateRequest{Key: []byte("lc/"), RangeEnd: []byte("lc0"), StartRevision: first})
			st.expect(1)
			c.note("catch-up responses (events per response, revisions, header)")
			got := st.collect(2, 10*time.Second)
			for _, r := range got {
				c.note("id=%d rev=%d events=%d revs=%d..%d", r.WatchId, r.Header.GetRevision(), len(r.Events),
					r.Events[0].Kv.ModRevision, r.Events[len(r.Events)-1].Kv.ModRevision)
			}
			st.quiet()
		})
	})

	t.Run("SlowReader", func(t *testing.T) {
		const n, size = 200, 16 << 10
		diffWatch(t, p, func(c *wscript) {
			st := c.openHeld(1)
			st.create(&pb.WatchCreateRequest{Key: []byte("sl/"), RangeEnd: []byte("sl0")})
			c.note("a reader that stops reading (64 KiB windows) while %d KiB are written", n*size>>10)
			first := c.putMany("sl/", n, size)
			time.Sleep(200 * time.Millisecond)
			st.release()
			var rs []*pb.WatchResponse
			for got := 0; got < n; {
				more := st.collect(1, 10*time.Second)
				if len(more) == 0 {
					break
				}
				rs = append(rs, more...)
				got += len(more[0].Events)
			}
			c.note("created first: %v", len(rs) > 0 && rs[0].Created)
			c.eventOrder(first, rs[1:])
			st.quiet()
		})
	})

	// Compaction changes what later subtests may replay: keep these last.
	t.Run("Compacted", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			c.put("cp/a", "1")
			c.put("cp/b", "1")
			at := c.put("cp/a", "2")
			c.put("cp/a", "3")
			c.compact(at)
			st := c.open()
			c.note("from exactly the compaction revision: replayed")
			st.create(&pb.WatchCreateRequest{WatchId: 1, Key: []byte("cp/"), RangeEnd: []byte("cp0"), StartRevision: at})
			st.expect(2)
			c.note("with prev_kv: none where the previous version is compacted")
			st.create(&pb.WatchCreateRequest{WatchId: 2, Key: []byte("cp/a"), StartRevision: at, PrevKv: true})
			st.expect(2)
			c.note("from below it: created, then the compacted response")
			st.create(&pb.WatchCreateRequest{WatchId: 7, Key: []byte("cp/"), RangeEnd: []byte("cp0"), StartRevision: at - 1})
			st.expect(2)
			st.create(&pb.WatchCreateRequest{Key: []byte("cp/a"), StartRevision: 1, PrevKv: true, Fragment: true})
			st.expect(2)
			st.quiet()
		})
	})

	// etcd keeps a compacted watcher on its stream until it is canceled.
	t.Run("CompactedWatcherStays", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			st := c.open()
			st.create(&pb.WatchCreateRequest{WatchId: 1, Key: []byte("cp/a")})
			st.expect(1)
			st.create(&pb.WatchCreateRequest{WatchId: 7, Key: []byte("cp/a"), StartRevision: 1})
			st.expect(2)
			st.create(&pb.WatchCreateRequest{Key: []byte("cp/a"), StartRevision: 1})
			st.expect(2)
			c.note("progress request on a stream holding compacted watchers")
			st.progress()
			st.quiet()
			c.note("the compacted watcher's id, reused")
			st.create(&pb.WatchCreateRequest{WatchId: 7, Key: []byte("cp/a")})
			st.expect(1)
			c.note("cancel the compacted watchers")
			st.cancel(7)
			st.expect(1)
			st.cancel(0)
			st.expect(1)
			st.quiet()
			c.note("with them gone, progress is answered")
			st.progress()
			st.expect(1)
		})
	})
}

// TestWatchGRPCFlags covers what --watch-progress-notify-interval and
// --max-request-bytes change.
func TestWatchGRPCFlags(t *testing.T) {
	p := startWatchPair(t, WithFlags("--watch-progress-notify-interval=200ms", "--max-request-bytes=1048576"))

	t.Run("ProgressNotify", func(t *testing.T) {
		diffWatch(t, p, func(c *wscript) {
			rev := c.put("pn/k", "0")
			st := c.open()
			st.create(&pb.WatchCreateRequest{WatchId: 1, Key: []byte("pn/k"), ProgressNotify: true})
			st.create(&pb.WatchCreateRequest{WatchId: 2, Key: []byte("pn/other")})
			st.create(&pb.WatchCreateRequest{WatchId: 3, Key: []byte("pn/k"), ProgressNotify: true, StartRevision: rev + 3})
			st.expect(3)
			c.note("quiet: progress for watcher 1 only (3 waits for a future revision)")
			c.summary("progress", st.collectFor(700*time.Millisecond))
			c.put("pn/k", "1")
			c.put("pn/k", "2")
			c.put("pn/k", "3")
			c.note("watcher 3 reaches its start revision: events, then progress for both at the new revision")
			var after []*pb.WatchResponse
			for _, r := range st.collectFor(900 * time.Millisecond) {
				if len(r.Events) == 0 && r.Header.GetRevision() == rev {
					continue // a notification sent before the puts, late
				}
				after = append(after, r)
			}
			c.summary("after puts", after)
		})
	})

	t.Run("Fragment", func(t *testing.T) {
		const n, size = 6, 600 << 10
		diffWatch(t, p, func(c *wscript) {
			val := strings.Repeat("x", size)
			first := int64(0)
			for i := range n {
				rev := c.put(fmt.Sprintf("fr/%d", i), val)
				if i == 0 {
					first = rev
				}
			}
			st := c.open()
			st.create(&pb.WatchCreateRequest{WatchId: 1, Key: []byte("fr/"), RangeEnd: []byte("fr0"), Fragment: true})
			st.create(&pb.WatchCreateRequest{WatchId: 2, Key: []byte("fr/"), RangeEnd: []byte("fr0")})
			st.create(&pb.WatchCreateRequest{WatchId: 3, Key: []byte("fr/"), RangeEnd: []byte("fr0"), Fragment: true, PrevKv: true})
			st.create(&pb.WatchCreateRequest{WatchId: 4, Key: []byte("fr/0"), Fragment: true})
			st.expect(4)
			c.note("a txn rewriting the %d keys at one revision (ignore_value)", n)
			var ops []*pb.RequestOp
			for i := range n {
				ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
					Key: []byte(fmt.Sprintf("fr/%d", i)), IgnoreValue: true}}})
			}
			c.txn(ops...)
			c.summary("pieces", st.collectUntilQuiet())
			c.note("a range delete (prev_kv makes watcher 3's events big)")
			c.del("fr/", "fr0")
			c.summary("pieces", st.collectUntilQuiet())
			c.note("catch-up from history, with fragment")
			st2 := c.open()
			st2.create(&pb.WatchCreateRequest{WatchId: 1, Key: []byte("fr/"), RangeEnd: []byte("fr0"), Fragment: true, StartRevision: first})
			c.summary("pieces", st2.collectUntilQuiet())
		})
	})
}

// ---------------------------------------------------------------------------
// Helpers

// watchPair is a MetaStore and a reference etcd started with the same options.
type watchPair struct{ ms, ref *Server }

func startWatchPair(t *testing.T, opts ...Option) watchPair {
	t.Helper()
	return watchPair{ms: StartMetaStore(t, opts...), ref: StartEtcd(t, opts...)}
}

// diffWatch runs script against both servers concurrently and requires the
// same transcripts.
func diffWatch(t *testing.T, p watchPair, script func(c *wscript)) {
	t.Helper()
	var (
		wg      sync.WaitGroup
		ms, ref *wscript
	)
	for _, side := range []struct {
		s   *Server
		out **wscript
	}{{p.ms, &ms}, {p.ref, &ref}} {
		c := newWScript(t, side.s)
		*side.out = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			script(c)
		}()
	}
	wg.Wait()
	if testing.Verbose() {
		t.Logf("etcd transcript:\n%s", strings.Join(ref.lines, "\n"))
	}
	compareTranscripts(t, ms.lines, ref.lines)
}

// compareTranscripts fails t, showing both transcripts from the first
// difference on, when they differ.
func compareTranscripts(t *testing.T, ms, ref []string) {
	t.Helper()
	first := -1
	for i := 0; i < max(len(ms), len(ref)); i++ {
		if i >= len(ms) || i >= len(ref) || ms[i] != ref[i] {
			first = i
			break
		}
	}
	if first < 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "transcripts differ from line %d on\n", first+1)
	for i := 0; i < max(len(ms), len(ref)); i++ {
		m, r := "<none>", "<none>"
		if i < len(ms) {
			m = ms[i]
		}
		if i < len(ref) {
			r = ref[i]
		}
		if m == r {
			fmt.Fprintf(&b, "   %3d  %s\n", i+1, m)
			continue
		}
		fmt.Fprintf(&b, "!  %3d  metastore: %s\n", i+1, m)
		fmt.Fprintf(&b, "         etcd:      %s\n", r)
	}
	t.Error(b.String())
}

// wscript is one server's side of a scripted watch session. Its methods
// record what happens instead of failing, so that one script runs through
// on both servers and their transcripts can be compared.
type wscript struct {
	s       *Server
	ctx     context.Context
	cancel  context.CancelFunc
	conn    *grpc.ClientConn
	conns   []*grpc.ClientConn // of openHeld
	kv      pb.KVClient
	streams []*wstream

	mu    sync.Mutex
	lines []string
}

func newWScript(t *testing.T, s *Server) *wscript {
	t.Helper()
	conn, err := grpc.NewClient(s.Endpoint(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatalf("grpc client for %s: %v", s.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	return &wscript{s: s, ctx: ctx, cancel: cancel, conn: conn, kv: pb.NewKVClient(conn)}
}

func (c *wscript) close() {
	for _, st := range c.streams {
		st.stop()
	}
	c.cancel()
	_ = c.conn.Close()
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

func (c *wscript) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, fmt.Sprintf(format, args...))
}

// put writes k=v and returns the revision (0 on error, which is noted).
func (c *wscript) put(k, v string) int64 {
	r, err := c.kv.Put(c.ctx, &pb.PutRequest{Key: []byte(k), Value: []byte(v)})
	if err != nil {
		c.note("put %q: %v", k, err)
		return 0
	}
	return r.Header.Revision
}

// putMany writes n keys prefix%05d, with values of size bytes,
// concurrently (any order, one revision each) and returns the first of
// their revisions.
func (c *wscript) putMany(prefix string, n, size int) int64 {
	val := bytes.Repeat([]byte("v"), size)
	first, err := c.kv.Put(c.ctx, &pb.PutRequest{Key: []byte(prefix + "00000"), Value: val})
	if err != nil {
		c.note("put: %v", err)
		return 0
	}
	var (
		wg   sync.WaitGroup
		errs = make(chan error, n)
		next = make(chan int)
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				_, err := c.kv.Put(c.ctx, &pb.PutRequest{Key: fmt.Appendf(nil, "%s%05d", prefix, i), Value: val})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 1; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		c.note("put: %v", err)
		break
	}
	return first.Header.Revision
}

func (c *wscript) del(k, end string) {
	if _, err := c.kv.DeleteRange(c.ctx, &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}); err != nil {
		c.note("delete %q: %v", k, err)
	}
}

func (c *wscript) txn(ops ...*pb.RequestOp) {
	if _, err := c.kv.Txn(c.ctx, &pb.TxnRequest{Success: ops}); err != nil {
		c.note("txn: %v", err)
	}
}

func (c *wscript) compact(rev int64) {
	if _, err := c.kv.Compact(c.ctx, &pb.CompactionRequest{Revision: rev, Physical: true}); err != nil {
		c.note("compact %d: %v", rev, err)
	}
}

// keyRange is [key, end) in a watch request's terms: end "" is the single
// key, "\x00" every key from key.
type keyRange struct{ key, end string }

func (r keyRange) holds(k string) bool {
	switch r.end {
	case "":
		return k == r.key
	case "\x00":
		return k >= r.key
	}
	return k >= r.key && k < r.end
}

// matching counts the ranges holding k.
func (c *wscript) matching(k string, rs []keyRange) int {
	n := 0
	for _, r := range rs {
		if r.holds(k) {
			n++
		}
	}
	return n
}

// eventOrder notes whether rs, after their created response, hold exactly
// the events of the consecutive revisions from first on, in order, each
// response's header at or past its events' revisions.
func (c *wscript) eventOrder(first int64, rs []*pb.WatchResponse) {
	next, headersOK, responses := first, true, 0
	for _, r := range rs {
		if len(r.Events) == 0 {
			c.note("unexpected %s", fmtWatchResp(r))
			continue
		}
		responses++
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != next {
				c.note("event at revision %d, want %d", ev.Kv.ModRevision, next)
			}
			next = ev.Kv.ModRevision + 1
			if ev.Kv.ModRevision > r.Header.GetRevision() {
				headersOK = false
			}
		}
	}
	c.note("events of revisions %d..%d in order; headers at or past their events: %v", first, next-1, headersOK)
}

// summary notes the shape of a batch of responses whose order across
// watchers, and whose count over time, depend on timing: per watcher, its
// distinct responses in order of first appearance with how often each came
// (progress notifications only as "some": their number is timing), and
// watchers with the same list grouped.
func (c *wscript) summary(what string, rs []*pb.WatchResponse) {
	shapes := map[int64][]string{}
	counts := map[int64]map[string]int{}
	for _, r := range rs {
		_, s, _ := strings.Cut(fmtWatchResp(r), " ") // without the id
		if counts[r.WatchId] == nil {
			counts[r.WatchId] = map[string]int{}
		}
		if counts[r.WatchId][s] == 0 {
			shapes[r.WatchId] = append(shapes[r.WatchId], s)
		}
		counts[r.WatchId][s]++
	}
	ids := make([]int64, 0, len(shapes))
	for id := range shapes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	groups := map[string][]int64{}
	var order []string
	for _, id := range ids {
		var parts []string
		for _, s := range shapes[id] {
			n := fmt.Sprint(counts[id][s])
			if isProgressShape(s) {
				n = "some"
			}
			parts = append(parts, "["+n+"] "+s)
		}
		k := strings.Join(parts, " | ")
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], id)
	}
	c.note("%s: %d watch ids", what, len(ids))
	for _, k := range order {
		c.note("  ids %s: %s", idList(groups[k]), k)
	}
}

// isProgressShape tells a progress notification from fmtWatchResp's text
// without the id: a header revision and nothing else.
func isProgressShape(s string) bool {
	return strings.HasPrefix(s, "rev=") && !strings.Contains(s, " ")
}

// idList shows ids compactly: runs of consecutive ids as a-b.
func idList(ids []int64) string {
	var parts []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, fmt.Sprint(ids[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ids[i], ids[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// wstream is one Watch stream of a wscript, read by a goroutine.
type wstream struct {
	c      *wscript
	n      int // the stream's number in the script, for the transcript
	stream pb.Watch_WatchClient
	stopFn context.CancelFunc
	recv   chan recvd
	gate   chan struct{} // closed by release
}

// release lets a stream from openHeld be read again.
func (st *wstream) release() { close(st.gate) }

type recvd struct {
	resp *pb.WatchResponse
	err  error
}

const (
	expectTimeout = 3 * time.Second
	quietWindow   = 300 * time.Millisecond
)

// open opens a stream read as fast as responses come.
func (c *wscript) open() *wstream { return c.openOn(c.conn, -1) }

// openHeld opens a stream on a connection of its own with gRPC's smallest
// flow control windows, and stops reading it after hold responses until
// release is called: the server cannot send it more than the windows take.
func (c *wscript) openHeld(hold int) *wstream {
	conn, err := grpc.NewClient(c.s.Endpoint(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		c.note("grpc client: %v", err)
		return c.open()
	}
	c.conns = append(c.conns, conn)
	return c.openOn(conn, hold)
}

func (c *wscript) openOn(conn *grpc.ClientConn, hold int) *wstream {
	ctx, cancel := context.WithCancel(c.ctx)
	st := &wstream{c: c, n: len(c.streams) + 1, stopFn: cancel, recv: make(chan recvd, 10000), gate: make(chan struct{})}
	c.streams = append(c.streams, st)
	stream, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		c.note("stream %d: open: %v", st.n, err)
		close(st.recv)
		return st
	}
	st.stream = stream
	go func() {
		defer close(st.recv)
		for i := 0; ; i++ {
			if i == hold {
				select {
				case <-st.gate:
				case <-ctx.Done():
				}
			}
			r, err := stream.Recv()
			st.recv <- recvd{r, err}
			if err != nil {
				return
			}
		}
	}()
	return st
}

func (st *wstream) send(req *pb.WatchRequest) {
	if st.stream == nil {
		return
	}
	if err := st.stream.Send(req); err != nil {
		st.c.note("stream %d: send: %v", st.n, err)
	}
}

func (st *wstream) create(req *pb.WatchCreateRequest) {
	st.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}})
}

func (st *wstream) cancel(id int64) {
	st.c.note("stream %d: cancel %d", st.n, id)
	st.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}})
}

func (st *wstream) progress() {
	st.c.note("stream %d: progress request", st.n)
	st.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
}

func (st *wstream) closeSend() {
	st.c.note("stream %d: close send", st.n)
	if st.stream != nil {
		if err := st.stream.CloseSend(); err != nil {
			st.c.note("stream %d: close send: %v", st.n, err)
		}
	}
}

// stop cancels the stream's context.
func (st *wstream) stop() { st.stopFn() }

// next returns the next response, or a line describing why there is none.
func (st *wstream) next(timeout time.Duration) (*pb.WatchResponse, string) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r, ok := <-st.recv:
		switch {
		case !ok:
			return nil, "stream closed"
		case r.err != nil:
			return nil, "stream error: " + fmtStreamErr(r.err)
		}
		return r.resp, ""
	case <-timer.C:
		return nil, "nothing"
	}
}

// expect notes the next n responses.
func (st *wstream) expect(n int) {
	for range n {
		r, why := st.next(expectTimeout)
		if r == nil {
			if why == "nothing" {
				why = fmt.Sprintf("nothing within %v", expectTimeout)
			}
			st.c.note("stream %d: %s", st.n, why)
			return
		}
		st.c.note("stream %d: %s", st.n, fmtWatchResp(r))
	}
}

// expectSorted notes the next n responses sorted by watch id, for responses
// of several watchers to one write, whose order is not specified.
func (st *wstream) expectSorted(n int) {
	rs := st.collect(n, expectTimeout)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].WatchId < rs[j].WatchId })
	for _, r := range rs {
		st.c.note("stream %d: %s", st.n, fmtWatchResp(r))
	}
}

// collect returns the next n responses, noting it if they do not all come
// within timeout.
func (st *wstream) collect(n int, timeout time.Duration) []*pb.WatchResponse {
	deadline := time.Now().Add(timeout)
	var rs []*pb.WatchResponse
	for len(rs) < n {
		r, why := st.next(time.Until(deadline))
		if r == nil {
			st.c.note("stream %d: %d of %d responses, then %s", st.n, len(rs), n, why)
			break
		}
		rs = append(rs, r)
	}
	return rs
}

// collectFor returns the responses that arrive within d.
func (st *wstream) collectFor(d time.Duration) []*pb.WatchResponse {
	deadline := time.Now().Add(d)
	var rs []*pb.WatchResponse
	for {
		r, why := st.next(time.Until(deadline))
		if r == nil {
			if why != "nothing" {
				st.c.note("stream %d: %s", st.n, why)
			}
			return rs
		}
		rs = append(rs, r)
	}
}

// collectUntilQuiet returns the responses that arrive until none has for
// quietWindow (giving up after expectTimeout).
func (st *wstream) collectUntilQuiet() []*pb.WatchResponse {
	deadline := time.Now().Add(expectTimeout)
	var rs []*pb.WatchResponse
	for time.Now().Before(deadline) {
		r, why := st.next(quietWindow)
		if r == nil {
			if why != "nothing" {
				st.c.note("stream %d: %s", st.n, why)
			}
			return rs
		}
		rs = append(rs, r)
	}
	st.c.note("stream %d: still receiving after %v", st.n, expectTimeout)
	return rs
}

// quiet notes whatever arrives within quietWindow (nothing, normally).
func (st *wstream) quiet() {
	r, why := st.next(quietWindow)
	if r == nil && why == "nothing" {
		st.c.note("stream %d: quiet", st.n)
		return
	}
	if r == nil {
		st.c.note("stream %d: %s", st.n, why)
		return
	}
	st.c.note("stream %d: unexpected %s", st.n, fmtWatchResp(r))
	for _, r := range st.collectFor(quietWindow) {
		st.c.note("stream %d: unexpected %s", st.n, fmtWatchResp(r))
	}
}

// fmtStreamErr is a stream error as its gRPC code and message.
func fmtStreamErr(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("code=%s desc=%q", s.Code(), s.Message())
	}
	if errors.Is(err, context.Canceled) {
		return "context canceled"
	}
	return err.Error()
}

// fmtWatchResp is a WatchResponse in one line, without what differs
// between two clusters (cluster and member id, raft term): those are only
// checked for being set.
func fmtWatchResp(r *pb.WatchResponse) string {
	var b strings.Builder
	fmt.Fprintf(&b, "id=%d", r.WatchId)
	if h := r.Header; h == nil {
		b.WriteString(" header=nil")
	} else {
		fmt.Fprintf(&b, " rev=%d", h.Revision)
		if h.ClusterId == 0 || h.MemberId == 0 || h.RaftTerm == 0 {
			fmt.Fprintf(&b, " header-ids-unset(%d,%d,%d)", h.ClusterId, h.MemberId, h.RaftTerm)
		}
	}
	if r.Created {
		b.WriteString(" created")
	}
	if r.Canceled {
		b.WriteString(" canceled")
	}
	if r.CompactRevision != 0 {
		fmt.Fprintf(&b, " compact_revision=%d", r.CompactRevision)
	}
	if r.CancelReason != "" {
		fmt.Fprintf(&b, " reason=%q", r.CancelReason)
	}
	if r.Fragment {
		b.WriteString(" fragment")
	}
	if len(r.Events) > 0 {
		fmt.Fprintf(&b, " events(%d):", len(r.Events))
		for _, ev := range r.Events {
			fmt.Fprintf(&b, " [%s %s", ev.Type, fmtKV(ev.Kv))
			if ev.PrevKv != nil {
				fmt.Fprintf(&b, " prev=%s", fmtKV(ev.PrevKv))
			}
			b.WriteString("]")
		}
	}
	return b.String()
}

func fmtKV(kv *mvccpb.KeyValue) string {
	if kv == nil {
		return "nil"
	}
	v := fmt.Sprintf("%q", kv.Value)
	if len(kv.Value) > 32 {
		v = fmt.Sprintf("<%d bytes>", len(kv.Value))
	}
	s := fmt.Sprintf("%q=%s c=%d m=%d v=%d", kv.Key, v, kv.CreateRevision, kv.ModRevision, kv.Version)
	if kv.Lease != 0 {
		s += fmt.Sprintf(" lease=%d", kv.Lease)
	}
	return s
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// lside is one server's side of a scripted lease session. Its methods
// record what happens (responses, errors) as transcript lines instead of
// failing, so that one script runs through on MetaStore and on etcd and the
// transcripts can be compared. Leases are granted with client-chosen ids,
// so that no normalisation is needed.
type lside struct {
	t   *testing.T
	s   *Server
	cli *clientv3.Client
	lc  pb.LeaseClient
	kv  pb.KVClient

	mu    sync.Mutex
	lines []string
}

func newLSide(t *testing.T, s *Server) *lside {
	c := &lside{t: t, s: s}
	c.connect()
	return c
}

// connect makes a new client (after a restart).
func (c *lside) connect() {
	c.cli = c.s.Client(c.t)
	c.lc = pb.NewLeaseClient(c.cli.ActiveConnection())
	c.kv = pb.NewKVClient(c.cli.ActiveConnection())
}

func (c *lside) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, fmt.Sprintf(format, args...))
}

func (c *lside) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// fmtLeaseRes formats a response in one line, without the header fields
// that differ between clusters, with the keys of a TimeToLive sorted (etcd
// lists them in map order) and its TTL blanked when within 2 s of the
// granted one.
func fmtLeaseRes(m proto.Message, err error) string {
	if err != nil {
		s := status.Convert(err)
		return fmt.Sprintf("error code=%s msg=%q", s.Code(), s.Message())
	}
	m = proto.Clone(m)
	if h, ok := m.(interface{ GetHeader() *pb.ResponseHeader }); ok && h.GetHeader() != nil {
		hd := h.GetHeader()
		if hd.ClusterId == 0 || hd.MemberId == 0 || hd.RaftTerm == 0 {
			hd.Revision = -1000 - hd.Revision // shows up as a difference
		}
		zeroHeader(hd)
	}
	if r, ok := m.(*pb.LeaseTimeToLiveResponse); ok {
		sort.Slice(r.Keys, func(i, j int) bool { return string(r.Keys[i]) < string(r.Keys[j]) })
		if d := r.GrantedTTL - r.TTL; r.GrantedTTL > 0 && d >= 0 && d <= 2 {
			r.TTL = -999 // "about the granted TTL"
		}
	}
	return strings.Join(strings.Fields(prototext.MarshalOptions{}.Format(m)), " ")
}

func (c *lside) grant(id, ttl int64) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.lc.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: ttl})
	if err == nil && id == 0 && r.ID != 0 {
		r.ID = 1 // the server's pick
	}
	c.note("grant id=%d ttl=%d: %s", id, ttl, fmtLeaseRes(r, err))
}

func (c *lside) revoke(id int64) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.lc.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
	c.note("revoke id=%d: %s", id, fmtLeaseRes(r, err))
}

func (c *lside) ttl(id int64, keys bool) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.lc.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id, Keys: keys})
	c.note("timetolive id=%d keys=%v: %s", id, keys, fmtLeaseRes(r, err))
}

// leases lists the leases; sorted by id unless byExpiry (etcd's order, only
// deterministic when the expiries differ).
func (c *lside) leases(byExpiry bool) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.lc.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	if err == nil && !byExpiry {
		sort.Slice(r.Leases, func(i, j int) bool { return r.Leases[i].ID < r.Leases[j].ID })
	}
	c.note("leases: %s", fmtLeaseRes(r, err))
}

func (c *lside) put(k, v string, lease int64) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.kv.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte(v), Lease: lease})
	c.note("put %s=%s lease=%d: %s", k, v, lease, fmtLeaseRes(r, err))
}

func (c *lside) putReq(r *pb.PutRequest) {
	ctx, cancel := c.ctx()
	defer cancel()
	resp, err := c.kv.Put(ctx, r)
	c.note("put %s: %s", fmtMsg(r), fmtLeaseRes(resp, err))
}

func (c *lside) del(k, end string) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)})
	c.note("del %s..%s: %s", k, end, fmtLeaseRes(r, err))
}

func (c *lside) txn(r *pb.TxnRequest) {
	ctx, cancel := c.ctx()
	defer cancel()
	resp, err := c.kv.Txn(ctx, r)
	c.note("txn %s: %s", fmtMsg(r), fmtLeaseRes(resp, err))
}

func (c *lside) get(prefix string) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.kv.Range(ctx, &pb.RangeRequest{Key: []byte(prefix), RangeEnd: []byte(prefixEnd(prefix))})
	c.note("get %s*: %s", prefix, fmtLeaseRes(r, err))
}

// getAll is every key, for the end of a script.
func (c *lside) getAll() {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.kv.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	c.note("get all: %s", fmtLeaseRes(r, err))
}

// exists tells whether key k is there (for polling, not recorded).
func (c *lside) exists(k string) (bool, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.kv.Range(ctx, &pb.RangeRequest{Key: []byte(k)})
	if err != nil {
		return false, err
	}
	return len(r.Kvs) > 0, nil
}

// waitGone polls until key k is gone and returns how long that took, or
// records a timeout.
func (c *lside) waitGone(k string, timeout time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < timeout {
		ok, err := c.exists(k)
		if err == nil && !ok {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.note("key %s still there after %v", k, timeout)
	return timeout
}

// kastream is a raw LeaseKeepAlive stream.
type kastream struct {
	c      *lside
	st     pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
}

func (c *lside) openKA() *kastream {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := c.lc.LeaseKeepAlive(ctx)
	if err != nil {
		c.note("keepalive stream: %s", fmtLeaseRes(nil, err))
	}
	return &kastream{c: c, st: st, cancel: cancel}
}

// send sends a keep-alive for each id and records the answers, in order.
func (k *kastream) send(ids ...int64) {
	if k.st == nil {
		return
	}
	for _, id := range ids {
		if err := k.st.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			k.c.note("keepalive send %d: %s", id, fmtLeaseRes(nil, err))
			return
		}
	}
	for range ids {
		r, err := k.st.Recv()
		k.c.note("keepalive: %s", fmtLeaseRes(r, err))
		if err != nil {
			return
		}
	}
}

func (k *kastream) close() {
	if k.st != nil {
		_ = k.st.CloseSend()
		_, err := k.st.Recv()
		k.c.note("keepalive stream closed: %s", fmtStreamErr(err))
	}
	k.cancel()
}

// diffLease runs script against a fresh MetaStore and a fresh etcd,
// concurrently, and requires the same transcripts. The two sides run in
// goroutines, not parallel subtests, so that their waits do not hold two
// of the few parallel-test slots; a script reports trouble in its
// transcript or with t.Errorf, never with t.Fatal.
func diffLease(t *testing.T, script func(t *testing.T, c *lside), opts ...Option) {
	t.Helper()
	ms := newLSide(t, StartMetaStore(t, opts...))
	ref := newLSide(t, StartEtcd(t, opts...))
	var wg sync.WaitGroup
	for _, c := range []*lside{ms, ref} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			script(t, c)
		}()
	}
	wg.Wait()
	if testing.Verbose() {
		t.Logf("etcd transcript:\n%s", strings.Join(ref.lines, "\n"))
	}
	compareTranscripts(t, ms.lines, ref.lines)
}

// restart stops the server (gracefully, or with kill -9), starts it again
// and connects a new client.
func (c *lside) restart(kill bool) {
	if kill {
		c.s.Kill()
	} else {
		c.s.Stop()
	}
	if err := c.s.launch(); err != nil {
		c.t.Errorf("restart %s: %v", c.s.Name, err)
		c.note("restart failed")
		return
	}
	c.connect()
}

func leasePut(k, v string, lease int64) *pb.RequestOp {
	op := putOp(k, v)
	op.GetRequestPut().Lease = lease
	return op
}

// TestLeaseGRPC: grants (client-chosen ids, duplicates, TTL limits),
// revokes, TimeToLive, Leases, keep-alive streams, and the attachment of
// keys by puts, overwrites, deletes and txns, over raw gRPC and clientv3.
func TestLeaseGRPC(t *testing.T) {
	t.Parallel()
	diffLease(t, func(t *testing.T, c *lside) {
		c.grant(100, 60)
		c.grant(100, 60) // lease already exists
		c.grant(100, 5)
		c.grant(101, 0) // minimum TTL
		c.revoke(101)
		c.grant(102, -5)
		c.ttl(102, false)
		c.revoke(102)
		c.grant(103, 9000000001) // too large
		c.grant(104, 9000000000)
		c.grant(-7, 30) // a negative id
		c.grant(200, 30)
		c.grant(300, 90)
		c.leases(true) // soonest expiry first
		c.ttl(100, false)
		c.ttl(100, true)
		c.ttl(999, false) // unknown: TTL -1
		c.ttl(999, true)
		c.ttl(0, false)

		// Attachments: puts, overwrites, deletes, txns.
		c.put("k/a", "1", 100)
		c.put("k/b", "2", 100)
		c.put("k/c", "3", 200)
		c.put("k/x", "x", 999) // unknown lease
		c.ttl(100, true)
		c.ttl(200, true)
		c.put("k/a", "1b", 0)   // detached from 100
		c.put("k/b", "2b", 200) // moved to 200
		c.ttl(100, true)
		c.ttl(200, true)
		c.put("k/d", "4", 100)
		c.ttl(100, true)
		c.del("k/d", "")
		c.ttl(100, true)
		c.txn(&pb.TxnRequest{Success: []*pb.RequestOp{leasePut("k/e", "5", 300)}})
		// The unknown lease is on the branch not taken: no error.
		c.txn(&pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("k/e"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_Version{Version: 1}}},
			Success: []*pb.RequestOp{leasePut("k/f", "6", 300), leasePut("k/f2", "6b", 100)},
			Failure: []*pb.RequestOp{leasePut("k/g", "7", 12345)},
		})
		c.txn(&pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("k/e"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_Version{Version: 9}}},
			Success: []*pb.RequestOp{putOp("k/h", "8")},
			Failure: []*pb.RequestOp{leasePut("k/g", "7", 12345)},
		})
		c.txn(&pb.TxnRequest{Success: []*pb.RequestOp{txnOp(&pb.TxnRequest{
			Success: []*pb.RequestOp{leasePut("k/i", "9", 200)}})}})
		c.putReq(&pb.PutRequest{Key: []byte("k/e"), Value: []byte("5b"), IgnoreLease: true})
		c.putReq(&pb.PutRequest{Key: []byte("k/e"), IgnoreValue: true, Lease: 100})
		c.putReq(&pb.PutRequest{Key: []byte("k/none"), Value: []byte("v"), IgnoreLease: true})
		c.put("k/f", "6c", 100) // moved from 300 to 100
		c.del("k/f2", "")
		c.ttl(100, true)
		c.ttl(200, true)
		c.ttl(300, true)
		c.get("k/")
		// A txn deletes an attached key; a range delete spans two leases.
		c.put("d/1", "1", 300)
		c.put("d/2", "2", 300)
		c.put("d/3", "3", 104)
		c.txn(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("d/1", ""), leasePut("d/4", "4", 300)}})
		c.ttl(300, true)
		c.del("d/2", "d/4")
		c.ttl(300, true)
		c.ttl(104, true)
		c.put("d/2", "2b", 0)
		c.ttl(300, true)

		// Keep-alive: several leases on one stream; unknown ones get TTL 0.
		ka := c.openKA()
		ka.send(100)
		ka.send(200, 999, 104, -7, 0)
		c.revoke(200) // k/b, k/c, k/i: one revision
		c.get("k/")
		c.revoke(200)
		c.revoke(999)
		c.revoke(0)
		ka.send(200, 100)
		ka.close()
		c.ttl(200, true)
		c.revoke(-7)
		c.leases(true)

		// clientv3.
		ctx, cancel := c.ctx()
		defer cancel()
		r, err := c.cli.KeepAliveOnce(ctx, 100)
		if err == nil {
			c.note("KeepAliveOnce(100): id=%d ttl=%d", r.ID, r.TTL)
		} else {
			c.note("KeepAliveOnce(100): %v", err)
		}
		_, err = c.cli.KeepAliveOnce(ctx, 200)
		c.note("KeepAliveOnce(200): %v (ErrLeaseNotFound: %v)", err, errors.Is(err, rpctypes.ErrLeaseNotFound))
		g, err := c.cli.Grant(ctx, 7)
		if err != nil {
			c.note("Grant(7): %v", err)
		} else {
			c.note("Grant(7): ttl=%d id-set=%v", g.TTL, g.ID != 0)
			tl, err := c.cli.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
			if err != nil {
				c.note("TimeToLive: %v", err)
			} else {
				c.note("TimeToLive: granted=%d ttl-close=%v keys=%d id-match=%v", tl.GrantedTTL, tl.TTL >= 5 && tl.TTL <= 7, len(tl.Keys), tl.ID == g.ID)
			}
			ll, err := c.cli.Leases(ctx)
			if err == nil {
				c.note("Leases: %d, has the new one: %v", len(ll.Leases), slices.ContainsFunc(ll.Leases, func(s clientv3.LeaseStatus) bool { return s.ID == g.ID }))
			}
			_, err = c.cli.Revoke(ctx, g.ID)
			c.note("Revoke: %v", err)
			_, err = c.cli.Revoke(ctx, g.ID)
			c.note("Revoke again: %v", err)
		}
		// clientv3 KeepAlive: a first answer at once, with the TTL.
		kctx, kcancel := context.WithCancel(ctx)
		ch, err := c.cli.KeepAlive(kctx, 300)
		if err != nil {
			c.note("KeepAlive(300): %v", err)
		} else {
			select {
			case r := <-ch:
				if r == nil {
					c.note("KeepAlive(300): channel closed")
				} else {
					c.note("KeepAlive(300): id=%d ttl=%d", r.ID, r.TTL)
				}
			case <-time.After(5 * time.Second):
				c.note("KeepAlive(300): no answer")
			}
		}
		kcancel()

		c.revoke(300)
		c.revoke(100)
		c.revoke(104)
		c.leases(true)
		c.getAll()
	})
}

// watchLines formats watch events, one per line (not the header revision:
// how events are batched in responses is timing).
func watchLines(resp clientv3.WatchResponse) []string {
	var out []string
	for _, ev := range resp.Events {
		out = append(out, fmt.Sprintf("watch %s %s", ev.Type, fmtKV(ev.Kv)))
	}
	if err := resp.Err(); err != nil {
		out = append(out, "watch error: "+err.Error())
	}
	return out
}

// collectEvents reads n events from wc, recording them.
func (c *lside) collectEvents(wc clientv3.WatchChan, n int, timeout time.Duration) []*clientv3.Event {
	var evs []*clientv3.Event
	deadline := time.After(timeout)
	for len(evs) < n {
		select {
		case resp, ok := <-wc:
			if !ok {
				c.note("watch channel closed after %d events", len(evs))
				return evs
			}
			for _, l := range watchLines(resp) {
				c.note("%s", l)
			}
			evs = append(evs, resp.Events...)
		case <-deadline:
			c.note("only %d of %d watch events after %v", len(evs), n, timeout)
			return evs
		}
	}
	return evs
}

// oneDeleteRevision records whether evs are all DELETEs of one revision.
func (c *lside) oneDeleteRevision(what string, evs []*clientv3.Event) {
	revs := map[int64]bool{}
	for _, ev := range evs {
		if ev.Type != mvccpb.DELETE {
			c.note("%s: not a DELETE: %s", what, ev.Type)
		}
		revs[ev.Kv.ModRevision] = true
	}
	c.note("%s: %d events in %d revision(s)", what, len(evs), len(revs))
}

// TestLeaseWatch: a revoke and an expiry show as DELETE events of every
// attached key, in key order, in one revision.
func TestLeaseWatch(t *testing.T) {
	t.Parallel()
	diffLease(t, func(t *testing.T, c *lside) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.put("other", "o", 0)
		wc := c.cli.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithRev(2))
		c.grant(500, 60)
		c.grant(600, 2)
		c.put("w/3", "c", 500)
		c.put("w/1", "a", 500)
		c.put("w/2", "b", 500)
		c.put("w/4", "d", 0)
		c.collectEvents(wc, 4, 5*time.Second)
		start := time.Now()
		c.put("w/6", "f", 600)
		c.put("w/5", "e", 600)
		c.collectEvents(wc, 2, 5*time.Second)
		c.revoke(500)
		c.oneDeleteRevision("revoke", c.collectEvents(wc, 3, 5*time.Second))
		// Lease 600 expires: its keys go in one revision.
		evs := c.collectEvents(wc, 2, 8*time.Second)
		c.oneDeleteRevision("expiry", evs)
		took := time.Since(start)
		t.Logf("%s: the keys of a 2 s lease were deleted %v after the put", c.s.Kind, took.Round(time.Millisecond))
		if took < 1500*time.Millisecond || took > 5*time.Second {
			c.note("expiry after %v, want 1.5-5 s", took.Round(time.Millisecond))
		}
		c.ttl(600, true)
		c.get("w/")
		c.leases(true)
	})
}

// TestLeaseExpiry: a 2 s lease and its key go in 2-5 s; a lease kept alive
// by clientv3 survives 5 s, and expires once the keep-alive stops; then
// keep-alives answer TTL 0 and KeepAliveOnce ErrLeaseNotFound.
func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	diffLease(t, func(t *testing.T, c *lside) {
		// Past the start (see TestLeaseTTLAfterStart), so that the timing is
		// that of a server in its steady state.
		time.Sleep(time.Second)
		c.grant(1, 2)
		c.grant(2, 2)
		kctx, kcancel := context.WithCancel(context.Background())
		defer kcancel()
		ch, err := c.cli.KeepAlive(kctx, 2)
		if err != nil {
			c.note("KeepAlive(2): %v", err)
		}
		var kas atomic.Int64
		kaDone := make(chan struct{})
		go func() {
			defer close(kaDone)
			for r := range ch {
				if r.TTL != 2 {
					c.note("KeepAlive(2): ttl %d", r.TTL)
				}
				kas.Add(1)
			}
		}()
		c.put("e/k1", "v", 1)
		c.put("e/k2", "v", 2)
		start := time.Now()

		gone := c.waitGone("e/k1", 8*time.Second)
		t.Logf("%s: key of a 2 s lease gone after %v", c.s.Kind, gone.Round(time.Millisecond))
		if gone < time.Second || gone > 4*time.Second {
			c.note("key of a 2 s lease gone after %v, want 1-4 s", gone.Round(time.Millisecond))
		}
		c.ttl(1, true)
		ka := c.openKA()
		ka.send(1)

		time.Sleep(time.Until(start.Add(5 * time.Second)))
		ok, err := c.exists("e/k2")
		c.note("after 5 s, the key of the kept-alive lease exists: %v %v", ok, err)
		c.ttl(2, true)
		if n := kas.Load(); n < 3 {
			c.note("only %d keep-alive answers in 5 s", n)
		}

		kcancel()
		<-kaDone
		stopped := time.Now()
		gone = c.waitGone("e/k2", 8*time.Second)
		t.Logf("%s: key gone %v after the keep-alives stopped", c.s.Kind, gone.Round(time.Millisecond))
		if gone > 5*time.Second {
			c.note("key gone %v after the keep-alives stopped", time.Since(stopped))
		}
		ka.send(2, 1)
		ka.close()
		ctx, cancel := c.ctx()
		defer cancel()
		_, err = c.cli.KeepAliveOnce(ctx, 2)
		c.note("KeepAliveOnce(2): %v (ErrLeaseNotFound: %v)", err, errors.Is(err, rpctypes.ErrLeaseNotFound))
		c.ttl(2, false)
		c.revoke(2)
		c.leases(true)
		c.getAll()
	})
}

// TestLeaseRestart: a lease and its key survive a graceful restart and a
// kill -9; etcd gives every lease its full TTL again when its member
// becomes leader, so TimeToLive shows about the granted TTL after a
// restart; a revoke after the restarts works and is itself durable; and a
// short lease still expires after restarts.
func TestLeaseRestart(t *testing.T) {
	t.Parallel()
	diffLease(t, func(t *testing.T, c *lside) {
		time.Sleep(time.Second) // past the start: see TestLeaseTTLAfterStart
		c.grant(42, 30)
		c.grant(43, 30)
		c.grant(44, 5)
		c.put("r/k", "v", 42)
		c.put("r/short", "v", 44)
		c.put("r/plain", "v", 0)
		time.Sleep(1500 * time.Millisecond)
		c.ttlAfterRestart("before restart", 42, 26, 28)
		for _, how := range []string{"stop", "kill"} {
			c.restart(how == "kill")
			c.note("--- after %s and restart", how)
			c.ttlAfterRestart("after "+how, 42, 29, 31)
			c.leases(false)
			c.get("r/")
			ctx, cancel := c.ctx()
			r, err := c.cli.KeepAliveOnce(ctx, 43)
			cancel()
			if err != nil {
				c.note("KeepAliveOnce(43): %v", err)
			} else {
				c.note("KeepAliveOnce(43): ttl=%d", r.TTL)
			}
		}
		c.revoke(42)
		c.revoke(43)
		c.get("r/")
		c.restart(true)
		c.note("--- after revoke, kill and restart")
		c.leases(false)
		c.ttl(42, true)
		c.get("r/")
		gone := c.waitGone("r/short", 10*time.Second)
		t.Logf("%s: the key of the 5 s lease went %v after the last restart", c.s.Kind, gone.Round(time.Millisecond))
		c.leases(false)
		c.get("r/")
	})
}

// ttlAfterRestart records whether lease id's remaining TTL is in [lo, hi],
// logging the value.
func (c *lside) ttlAfterRestart(what string, id, lo, hi int64) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.lc.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id, Keys: true})
	if err != nil {
		c.note("%s: timetolive %d: %s", what, id, fmtLeaseRes(nil, err))
		return
	}
	c.t.Logf("%s: %s: lease %d ttl %d granted %d", c.s.Kind, what, id, r.TTL, r.GrantedTTL)
	c.note("%s: timetolive %d: granted=%d ttl in [%d,%d]: %v keys=%q", what, id, r.GrantedTTL, lo, hi, r.TTL >= lo && r.TTL <= hi, r.Keys)
}

// eachServer runs f as parallel subtests against a fresh MetaStore and a
// fresh etcd.
func eachServer(t *testing.T, f func(t *testing.T, s *Server)) {
	for _, kind := range []Kind{KindMetaStore, KindEtcd} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			if kind == KindMetaStore {
				f(t, StartMetaStore(t))
			} else {
				f(t, StartEtcd(t))
			}
		})
	}
}

// TestLeaseConcurrency: clientv3/concurrency (sessions, mutexes, elections,
// STM), which needs only KV, Lease and Watch, works on both servers.
func TestLeaseConcurrency(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, s *Server) {
		t.Run("mutex", func(t *testing.T) { testMutex(t, s) })
		t.Run("mutex-contention", func(t *testing.T) { testMutexContention(t, s) })
		t.Run("election", func(t *testing.T) { testElection(t, s) })
		t.Run("stm", func(t *testing.T) { testSTM(t, s) })
	})
}

func newSession(t *testing.T, cli *clientv3.Client, ttl int) *concurrency.Session {
	t.Helper()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	return sess
}

func testMutex(t *testing.T, s *Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli := s.Client(t)
	// s2 keeps its lease alive every second (TTL/3), so that it soon sees
	// the revoke below.
	s1, s2 := newSession(t, cli, 10), newSession(t, s.Client(t), 3)
	m1, m2 := concurrency.NewMutex(s1, "/mx/"), concurrency.NewMutex(s2, "/mx/")
	if err := m1.Lock(ctx); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	// The lock key is attached to the session's lease.
	tl, err := cli.TimeToLive(ctx, s1.Lease(), clientv3.WithAttachedKeys())
	if err != nil || len(tl.Keys) != 1 || string(tl.Keys[0]) != m1.Key() || tl.GrantedTTL != 10 {
		t.Errorf("TimeToLive of the session lease: %+v %v; want key %s", tl, err, m1.Key())
	}
	if err := m2.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		t.Errorf("TryLock while held: %v, want ErrLocked", err)
	}
	// A waiter gets the lock when the holder unlocks.
	got := make(chan error, 1)
	go func() { got <- m2.Lock(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("second Lock returned while the first holds it: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := m1.Unlock(ctx); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second Lock: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second Lock did not get the lock after Unlock")
	}
	if err := m1.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		t.Errorf("TryLock while the other holds it: %v, want ErrLocked", err)
	}

	// The holder's session lease is revoked: its key goes, its Done closes,
	// and the lock is free.
	if _, err := cli.Revoke(ctx, s2.Lease()); err != nil {
		t.Fatalf("Revoke the session lease: %v", err)
	}
	select {
	case <-s2.Done():
	case <-time.After(5 * time.Second):
		t.Error("session Done not closed after its lease was revoked")
	}
	if err := m1.TryLock(ctx); err != nil {
		t.Errorf("TryLock after the holder's lease was revoked: %v", err)
	}
	if err := m1.Unlock(ctx); err != nil {
		t.Errorf("Unlock: %v", err)
	}

	// A holder that stops keeping its lease alive (a crashed client) loses
	// the lock when the lease expires.
	s3 := newSession(t, s.Client(t), 2)
	m3 := concurrency.NewMutex(s3, "/mx/")
	if err := m3.Lock(ctx); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	s3.Orphan()
	start := time.Now()
	if err := m1.Lock(ctx); err != nil {
		t.Fatalf("Lock after the holder's lease expires: %v", err)
	}
	t.Logf("%s: lock freed %v after its holder stopped its keep-alives (TTL 2)", s.Kind, time.Since(start).Round(time.Millisecond))
	if err := s1.Close(); err != nil {
		t.Errorf("session Close: %v", err)
	}
	r, err := cli.Get(ctx, "/mx/", clientv3.WithPrefix())
	if err != nil || len(r.Kvs) != 0 {
		t.Errorf("lock keys after every session ended: %v %v", r.Kvs, err)
	}
}

func testMutexContention(t *testing.T, s *Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const workers, rounds = 5, 6
	var inside, maxInside, total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		sess := newSession(t, s.Client(t), 10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := concurrency.NewMutex(sess, "/contend/")
			for i := 0; i < rounds; i++ {
				if err := m.Lock(ctx); err != nil {
					errs <- err
					return
				}
				n := inside.Add(1)
				for {
					cur := maxInside.Load()
					if n <= cur || maxInside.CompareAndSwap(cur, n) {
						break
					}
				}
				total.Add(1)
				time.Sleep(5 * time.Millisecond)
				inside.Add(-1)
				if err := m.Unlock(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("mutex: %v", err)
	}
	if maxInside.Load() != 1 || total.Load() != workers*rounds {
		t.Errorf("critical sections: %d, at most %d at once; want %d, 1", total.Load(), maxInside.Load(), workers*rounds)
	}
}

func testElection(t *testing.T, s *Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s1, s2, s3 := newSession(t, s.Client(t), 10), newSession(t, s.Client(t), 10), newSession(t, s.Client(t), 10)
	e1, e2 := concurrency.NewElection(s1, "/elect/"), concurrency.NewElection(s2, "/elect/")
	obs := concurrency.NewElection(s3, "/elect/")
	if _, err := obs.Leader(ctx); !errors.Is(err, concurrency.ErrElectionNoLeader) {
		t.Errorf("Leader with no candidates: %v, want ErrElectionNoLeader", err)
	}
	if err := e1.Campaign(ctx, "a"); err != nil {
		t.Fatalf("Campaign a: %v", err)
	}
	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	oc := obs.Observe(octx)
	expectLeader := func(want string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case r, ok := <-oc:
				if !ok {
					t.Fatalf("Observe closed waiting for %q", want)
				}
				if len(r.Kvs) > 0 && string(r.Kvs[0].Value) == want {
					return
				}
			case <-deadline:
				t.Fatalf("Observe: no leader %q", want)
			}
		}
	}
	expectLeader("a")
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx, "b") }()
	select {
	case err := <-won:
		t.Fatalf("second Campaign won while the first leads: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := e1.Proclaim(ctx, "a2"); err != nil {
		t.Errorf("Proclaim: %v", err)
	}
	expectLeader("a2")
	if r, err := obs.Leader(ctx); err != nil || string(r.Kvs[0].Value) != "a2" {
		t.Errorf("Leader: %v %v, want a2", r, err)
	}
	if err := e1.Resign(ctx); err != nil {
		t.Fatalf("Resign: %v", err)
	}
	select {
	case err := <-won:
		if err != nil {
			t.Fatalf("second Campaign: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second Campaign did not win after the leader resigned")
	}
	expectLeader("b")
	// The leader's session ends (lease revoked): no leader.
	if err := s2.Close(); err != nil {
		t.Errorf("session Close: %v", err)
	}
	if _, err := obs.Leader(ctx); !errors.Is(err, concurrency.ErrElectionNoLeader) {
		t.Errorf("Leader after the leader's session closed: %v, want ErrElectionNoLeader", err)
	}
}

func testSTM(t *testing.T, s *Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli := s.Client(t)
	const accounts, workers, transfers = 5, 4, 15
	for i := 0; i < accounts; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("/acct/%d", i), "100"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wcli := s.Client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < transfers; i++ {
				from, to := fmt.Sprintf("/acct/%d", (w+i)%accounts), fmt.Sprintf("/acct/%d", (w+2*i+1)%accounts)
				if from == to {
					continue
				}
				_, err := concurrency.NewSTM(wcli, func(stm concurrency.STM) error {
					var a, b int
					fmt.Sscan(stm.Get(from), &a)
					fmt.Sscan(stm.Get(to), &b)
					stm.Put(from, fmt.Sprint(a-1))
					stm.Put(to, fmt.Sprint(b+1))
					return nil
				}, concurrency.WithAbortContext(ctx))
				if err != nil {
					t.Errorf("STM: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r, err := cli.Get(ctx, "/acct/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, kv := range r.Kvs {
		var n int
		fmt.Sscan(string(kv.Value), &n)
		sum += n
	}
	if sum != accounts*100 || len(r.Kvs) != accounts {
		t.Errorf("STM: %d accounts summing to %d, want %d summing to %d", len(r.Kvs), sum, accounts, accounts*100)
	}
}

// TestLeaseTTLAfterStart: leases granted right after the server starts
// serving count down from their grant, like any other: s seconds after its
// grant a lease of TTL 30 has at most 30-s seconds left. (etcd makes its
// lessor primary, which refreshes every lease, before it serves clients.)
func TestLeaseTTLAfterStart(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, s *Server) {
		lc := pb.NewLeaseClient(s.Client(t).ActiveConnection())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		const n = 8
		granted := make([]time.Time, n)
		for i := range n {
			if _, err := lc.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: int64(i + 1), TTL: 30}); err != nil {
				t.Fatalf("grant %d: %v", i+1, err)
			}
			granted[i] = time.Now()
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		var vals []string
		for i := range n {
			sent := time.Now()
			r, err := lc.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: int64(i + 1)})
			if err != nil {
				t.Fatalf("timetolive %d: %v", i+1, err)
			}
			bound := 30 - sent.Sub(granted[i]).Seconds()
			vals = append(vals, fmt.Sprintf("%d (at most %.2f)", r.TTL, bound))
			if float64(r.TTL) > bound {
				t.Errorf("lease %d, granted %v after the first (at start): TimeToLive %v after its grant says TTL %d, more than the %.2f s left",
					i+1, time.Duration(i)*100*time.Millisecond, sent.Sub(granted[i]).Round(time.Millisecond), r.TTL, bound)
			}
		}
		t.Logf("%s: TTLs of leases granted 0-%d ms after start, 2 s later: %s", s.Kind, (n-1)*100, strings.Join(vals, ", "))
	})
}

package storeactor_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metastore/metastore/storeactor"
)

// countGen makes random requests over a few prefixes, as the count
// index's users see them: keys created, overwritten, deleted one by one,
// by prefix, by lease revoke and inside txns, and compactions.
type countGen struct {
	rng    *rand.Rand
	leases int64
}

var countPrefixes = []string{"/registry/pods/a/", "/registry/pods/b/", "/registry/svc/", "x"}

// countKeys are 40 keys under each prefix and, under two of them, keys
// that separate each level of the count index, so that every level
// has separators to split, merge and sum.
var countKeys = sync.OnceValue(func() (keys []string) {
	for _, p := range countPrefixes {
		for i := 0; i < 40; i++ {
			keys = append(keys, fmt.Sprintf("%s%d", p, i))
		}
	}
	for level := 1; level <= 3; level++ {
		keys = append(keys, storeactor.SeparatorKeys(countPrefixes[0], level, 3)...)
		keys = append(keys, storeactor.SeparatorKeys(countPrefixes[2], level, 2)...)
	}
	return keys
})

func (g *countGen) key() string {
	ks := countKeys()
	return ks[g.rng.IntN(len(ks))]
}

func (g *countGen) distinctKeys(n int) []string {
	var out []string
	for len(out) < n {
		if k := g.key(); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// keyRange is a prefix, the whole key space, a from-key range or a
// random (maybe empty) range; end "" is a single key.
func (g *countGen) keyRange() (key, end string) {
	switch g.rng.IntN(5) {
	case 0, 1:
		p := countPrefixes[g.rng.IntN(len(countPrefixes))]
		return p, string(prefixEnd(p))
	case 2:
		return "\x00", "\x00"
	case 3:
		return g.key(), "\x00"
	}
	return g.key(), g.key()
}

func prefixEnd(p string) []byte {
	b := []byte(p)
	b[len(b)-1]++
	return b
}

func (g *countGen) request(h *harness) *pb.InternalRaftRequest {
	switch r := g.rng.IntN(100); {
	case r < 55:
		p := &pb.PutRequest{Key: []byte(g.key()), Value: []byte("v")}
		if g.leases > 0 && g.rng.IntN(5) == 0 {
			p.Lease = 1 + g.rng.Int64N(g.leases)
		}
		return putOpt(p)
	case r < 70:
		return delReq(g.key(), "")
	case r < 74:
		key, end := g.keyRange()
		return delReq(key, end)
	case r < 86:
		// A txn that writes, then counts what it sees (the apply batch's
		// index, with the txn's own writes).
		key, end := g.keyRange()
		k := g.distinctKeys(3) // etcd refuses a txn that writes a key twice
		return txnReq(&pb.TxnRequest{Success: []*pb.RequestOp{
			opPut(k[0], "t"), opDel(k[1], ""), opPut(k[2], "t"),
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(key), RangeEnd: bytesOrNil(end), CountOnly: true}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(key), RangeEnd: bytesOrNil(end), Limit: 2}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(key), RangeEnd: bytesOrNil(end)}}},
		}})
	case r < 90:
		g.leases++
		return &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: g.leases, TTL: 60}}
	case r < 94 && g.leases > 0:
		return &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1 + g.rng.Int64N(g.leases)}}
	case r < 97:
		v := h.reader.View()
		if v.Rev > v.CompactRev+1 {
			return compactReq(v.CompactRev+1+g.rng.Int64N(v.Rev-v.CompactRev), g.rng.IntN(2) == 0)
		}
	}
	return putReq(g.key(), "w")
}

// checkTxnCounts: the counting ranges of a countGen txn agree with its
// full read of the same range.
func checkTxnCounts(t *testing.T, resp *pb.TxnResponse) {
	t.Helper()
	rs := resp.Responses
	count, page, all := rs[3].GetResponseRange(), rs[4].GetResponseRange(), rs[5].GetResponseRange()
	n := int64(len(all.Kvs))
	if count.Count != n || page.Count != n || all.Count != n || page.More != (n > 2) {
		t.Fatalf("in a txn: count-only %d, limit 2 count %d more %v, full read %d keys (count %d)",
			count.Count, page.Count, page.More, n, all.Count)
	}
}

// checkCounts compares, for random ranges and revisions from the
// compaction point on, the Reader's counts (count-only, and the total of
// a limited range) with the number of keys a full read of the range
// returns, and a limited read's keys and More with that read's.
func checkCounts(t *testing.T, h *harness, g *countGen, n int) {
	t.Helper()
	v := h.reader.View()
	for i := 0; i < n; i++ {
		key, end := g.keyRange()
		rev := int64(0)
		if low := max(v.CompactRev, 1); g.rng.IntN(2) == 0 && v.Rev > low {
			rev = low + g.rng.Int64N(v.Rev-low+1)
		}
		req := func() *pb.RangeRequest {
			return &pb.RangeRequest{Key: []byte(key), RangeEnd: bytesOrNil(end), Revision: rev}
		}
		all := h.rng(req())
		want := int64(len(all.Kvs))
		count := req()
		count.CountOnly = true
		if got := h.rng(count).Count; got != want {
			t.Fatalf("count-only [%q, %q) at %d (current %d): %d, a full read has %d keys", key, end, rev, v.Rev, got, want)
		}
		limit := req()
		limit.Limit = 1 + g.rng.Int64N(5)
		page := h.rng(limit)
		if page.Count != want || page.More != (want > limit.Limit) || !bytes.Equal([]byte(keys(page.Kvs)), []byte(keys(all.Kvs[:min(want, limit.Limit)]))) {
			t.Fatalf("limit %d of [%q, %q) at %d: count %d more %v keys %s; a full read: %d keys %s",
				limit.Limit, key, end, rev, page.Count, page.More, keys(page.Kvs), want, keys(all.Kvs))
		}
	}
}

// TestRangeCountsThroughTheStore: through the Store actor and the Reader,
// counts — count-only ranges, limited ranges' totals, at the current
// revision and at past ones down to the compaction point, inside txns —
// are what a full read finds, after any mix of writes, lease revokes and
// compactions, across restarts; and the index is the one its keys define
// (CheckConsistency). Also with the Store's mirror of the index capped so
// small that level 1 is read from pebble: dropped by the first batch that
// adds to it, and not loaded by a start that finds it non-empty (both
// logged; a start that finds it empty mirrors it until a batch adds to it).
func TestRangeCountsThroughTheStore(t *testing.T) {
	steps := 400
	if os.Getenv("METASTORE_LONG") == "1" {
		steps = 5000
	}
	for _, capped := range []bool{false, true} {
		t.Run(fmt.Sprintf("capped=%v", capped), func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			h := newHarness(t, func(c *storeactor.Config) {
				c.Logger = zap.New(core)
				if capped {
					c.CountMirror = 1
				}
			})
			g := &countGen{rng: rand.New(rand.NewPCG(1, 2))}
			restarts := 0
			for i := 0; i < steps; i++ {
				res := h.do(g.request(h))
				if r, ok := res.Resp.(*pb.TxnResponse); ok && res.Err == nil {
					checkTxnCounts(t, r)
				}
				checkCounts(t, h, g, 3)
				if g.rng.IntN(100) == 0 {
					h.restart()
					restarts++
				}
			}
			if err := h.reader.CheckConsistency(); err != nil {
				t.Fatal(err)
			}
			dropped := logs.FilterMessageSnippet("count index level 1 is read from pebble from now on").Len()
			atStart := logs.FilterMessageSnippet("count index level 1 is read from pebble: ").Len()
			switch {
			case !capped && dropped+atStart != 0:
				t.Fatalf("uncapped mirror dropped (%d log lines, %d at start)", dropped, atStart)
			case capped && (dropped == 0 || atStart == 0 && restarts > 0):
				t.Fatalf("capped mirror: %d drop log lines, %d at start over %d restarts", dropped, atStart, restarts)
			}
		})
	}
}

// A store without the count index (written by a version before it, or a
// tool that writes only the data) gets one when the Store starts, logged;
// counts are right before (the Reader walks) and after.
func TestCountIndexBuiltAtStart(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	h := newHarness(t, func(c *storeactor.Config) { c.Logger = zap.New(core) })
	g := &countGen{rng: rand.New(rand.NewPCG(3, 4))}
	for i := 0; i < 200; i++ {
		h.do(g.request(h))
	}
	h.stop()
	storeactor.DropCountIndex(h.db)
	reader, err := storeactor.NewReader(h.db)
	if err != nil {
		t.Fatal(err)
	}
	h.reader = reader
	checkCounts(t, h, g, 20) // no index yet: walked
	logs.TakeAll()
	h.start()
	h.put("after", "start") // the store has started when it answers
	if got := logs.FilterMessage("built the range count index").Len(); got != 1 {
		t.Fatalf("%d index build log lines", got)
	}
	if err := h.reader.CheckConsistency(); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, h, g, 20)
}

// A follower that installs the leader's checkpoint counts the leader's
// keys: the index comes with the data, and the Store's mirror of it is
// reloaded.
func TestCountsAfterSnapshotInstall(t *testing.T) {
	fs := vfs.NewMem()
	open := func(dir string) func(*storeactor.Config) { return onMemFS(t, fs, dir) }
	leader := newHarness(t, open("/leader"))
	follower := newHarness(t, open("/follower"))
	g := &countGen{rng: rand.New(rand.NewPCG(5, 6))}
	for i := 0; i < 200; i++ {
		leader.do(g.request(leader))
		follower.do(g.request(follower))
	}
	shipCheckpoint(t, leader.cfg.DB, fs, "/recv/1")
	reply := make(chan error, 1)
	follower.kit.Root().Send(follower.pid, &storeactor.InstallSnapshot{FS: fs, Dir: "/recv/1", Reply: reply})
	if err := <-reply; err != nil {
		t.Fatal(err)
	}
	follower.index = follower.reader.View().Applied
	checkCounts(t, follower, g, 20)
	// Applies after the install keep the index (and the mirror) right.
	for i := 0; i < 100; i++ {
		follower.do(g.request(follower))
	}
	checkCounts(t, follower, g, 20)
	if err := follower.reader.CheckConsistency(); err != nil {
		t.Fatal(err)
	}
}

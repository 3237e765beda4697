package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/metastore/metastore/e2e/watchcheck"
)

// TestWatchGuarantee runs a random concurrent write workload under many
// concurrent watchers (clientv3 and raw gRPC streams; from now and from the
// past; prefix, range, single-key and all-key; prev_kv, filters, fragment,
// progress notifications; fast, slow, stalled, canceled and resumed) with a
// compaction in the middle, and checks every watcher with watchcheck. The
// reference etcd runs the same workload to calibrate the checker.
func TestWatchGuarantee(t *testing.T) {
	cfg := wgConfig{ops: 3000, writers: 8, keys: 50, seed: 1}
	if os.Getenv("METASTORE_LONG") == "1" {
		cfg.ops = 20000
	}
	flags := WithFlags("--watch-progress-notify-interval=300ms")
	t.Run("metastore", func(t *testing.T) { runWatchGuarantee(t, StartMetaStore(t, flags), cfg) })
	t.Run("etcd", func(t *testing.T) { runWatchGuarantee(t, StartEtcd(t, flags), cfg) })
}

type wgConfig struct {
	ops, writers, keys int
	seed               int64
}

const wgPrefix = "wg/"

// wgWatcher is one watcher of the workload and how the test treats it.
type wgWatcher struct {
	rec *watchcheck.Recording
	// complete: it must have seen the last revision by the end. Otherwise
	// it is expected to be compacted (compacted) or is judged as it comes.
	complete, compacted bool
}

// rawConn dials the server with fixed 64 KiB HTTP/2 windows (no BDP
// growth), so that a stream that is read slowly, or not at all, pushes back
// on the server quickly.
func rawConn(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.Endpoint(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func prefixEnd(p string) string { return p[:len(p)-1] + string(p[len(p)-1]+1) }

func wgKey(i int) string { return fmt.Sprintf("%sk%02d", wgPrefix, i) }

func runWatchGuarantee(t *testing.T, s *Server, cfg wgConfig) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := s.Client(t)  // writers
	wcli := s.Client(t) // clientv3 watchers
	g0, err := cli.Get(ctx, "wg-none")
	if err != nil {
		t.Fatal(err)
	}
	from := g0.Header.Revision + 1
	truth := watchcheck.CollectTruth(ctx, cli, from)

	var (
		mu       sync.Mutex
		watchers []*wgWatcher
	)
	add := func(name string, spec watchcheck.Spec, complete bool) *wgWatcher {
		w := &wgWatcher{rec: watchcheck.NewRecording(name, spec), complete: complete}
		mu.Lock()
		watchers = append(watchers, w)
		mu.Unlock()
		return w
	}
	prefix := watchcheck.Spec{Key: wgPrefix, End: prefixEnd(wgPrefix), StartRev: from}
	with := func(f func(*watchcheck.Spec)) watchcheck.Spec { s := prefix; f(&s); return s }

	// clientv3 watchers on three streams.
	streamA, streamB, streamC, streamD := watchcheck.StreamCtx(ctx, "A"), watchcheck.StreamCtx(ctx, "B"),
		watchcheck.StreamCtx(ctx, "C"), watchcheck.StreamCtx(ctx, "D")
	clientStreams := []context.Context{streamA, streamB, streamC, streamD}
	var clientWatchers []*watchcheck.ClientWatcher
	cwatch := func(sctx context.Context, w *wgWatcher) {
		clientWatchers = append(clientWatchers, watchcheck.ClientWatch(sctx, wcli, w.rec))
	}
	cwatch(streamA, add("c-prefix-now", with(func(s *watchcheck.Spec) { s.StartRev = 0 }), true))
	cwatch(streamA, add("c-single", watchcheck.Spec{Key: wgKey(7), StartRev: from}, true))
	cwatch(streamB, add("c-range-prev", watchcheck.Spec{Key: wgKey(10), End: wgKey(30), StartRev: from, PrevKV: true}, true))
	cwatch(streamB, add("c-noput", with(func(s *watchcheck.Spec) { s.NoPut = true }), true))
	cwatch(streamB, add("c-nodelete-prev", with(func(s *watchcheck.Spec) { s.NoDelete, s.PrevKV = true, true }), true))
	cwatch(streamC, add("c-progress-notify", with(func(s *watchcheck.Spec) { s.ProgressNotify = true }), true))
	cwatch(streamC, add("c-all-fragment", watchcheck.Spec{Key: "\x00", End: "\x00", Fragment: true}, true))
	cResume := add("c-resume", prefix, true)
	cResumeW := watchcheck.ClientWatch(streamD, wcli, cResume.rec)

	// Raw streams: fast (R1), slow (R2), stalled until after the compaction
	// (R3), and one whose watcher is canceled and resumed again and again (R4).
	conn := rawConn(t, s)
	openRaw := func() *watchcheck.RawStream {
		rs, err := watchcheck.OpenRawStream(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	rwatch := func(rs *watchcheck.RawStream, w *wgWatcher) int64 {
		id, err := rs.Watch(w.rec)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	r1, r2, r3, r4 := openRaw(), openRaw(), openRaw(), openRaw()
	rwatch(r1, add("r-prefix-now", with(func(s *watchcheck.Spec) { s.StartRev = 0 }), true))
	rwatch(r1, add("r-single", watchcheck.Spec{Key: wgKey(3), StartRev: from}, true))
	rwatch(r1, add("r-range-fragment-prev", watchcheck.Spec{Key: wgKey(20), End: wgKey(40), StartRev: from, Fragment: true, PrevKV: true}, true))
	rwatch(r2, add("r-slow-prefix-prev-fragment", with(func(s *watchcheck.Spec) { s.PrevKV, s.Fragment = true, true }), true))
	rwatch(r2, add("r-slow-all-nodelete", watchcheck.Spec{Key: "\x00", End: "\x00", StartRev: from, NoDelete: true}, true))
	stalled := add("r-stalled", prefix, false)
	rwatch(r3, stalled)
	rResume := add("r-resume", prefix, true)
	rResumeID := rwatch(r4, rResume)
	rawStreams := []*watchcheck.RawStream{r1, r2, r4} // r3 is never asked for progress

	var readers sync.WaitGroup
	readErrs := make(chan error, 8)
	read := func(rs *watchcheck.RawStream, pace func()) {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := rs.RecvLoop(pace); err != nil && ctx.Err() == nil {
				readErrs <- err
			}
		}()
	}
	read(r1, nil)
	read(r4, nil)
	slowN := 0
	read(r2, func() { // slow: 1ms a response, and a 300ms pause every 200
		slowN++
		time.Sleep(time.Millisecond)
		if slowN%200 == 0 {
			time.Sleep(300 * time.Millisecond)
		}
	})

	// quiesce: writers and resume cycles hold it shared; the compaction
	// takes it exclusively, so that it can wait for every watcher that must
	// survive it to be past the compaction point.
	var quiesce sync.RWMutex
	done := make(chan struct{})
	var bg sync.WaitGroup
	every := func(d time.Duration, f func()) {
		bg.Add(1)
		go func() {
			defer bg.Done()
			tick := time.NewTicker(d)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					f()
				}
			}
		}()
	}
	requestProgress := func() {
		for _, sctx := range clientStreams {
			_ = wcli.RequestProgress(sctx)
		}
		for _, rs := range rawStreams {
			_ = rs.RequestProgress()
		}
	}
	every(100*time.Millisecond, requestProgress)
	every(200*time.Millisecond, func() { // resume the clientv3 watcher from last+1
		quiesce.RLock()
		defer quiesce.RUnlock()
		cResumeW.Stop()
		cResume.rec.Resume()
		cResumeW = watchcheck.ClientWatch(streamD, wcli, cResume.rec)
	})
	every(150*time.Millisecond, func() { // resume the raw watcher from last+1
		quiesce.RLock()
		defer quiesce.RUnlock()
		if err := r4.Cancel(rResumeID); err != nil {
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for canceled, _ := rResume.rec.Ended(); !canceled; canceled, _ = rResume.rec.Ended() {
			if time.Now().After(deadline) {
				readErrs <- fmt.Errorf("r-resume: no canceled response within 5s")
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		rResume.rec.Resume()
		rResumeID = rwatch(r4, rResume)
	})

	// The writers.
	var (
		writesMu sync.Mutex
		writes   []watchcheck.Write
		opsDone  atomic.Int64
		wErrs    = make(chan error, cfg.writers+1)
	)
	record := func(w watchcheck.Write) {
		writesMu.Lock()
		writes = append(writes, w)
		writesMu.Unlock()
	}
	var writers sync.WaitGroup
	for wi := range cfg.writers {
		writers.Add(1)
		go func() {
			defer writers.Done()
			r := rand.New(rand.NewSource(cfg.seed*1000 + int64(wi)))
			for i := 0; i < cfg.ops/cfg.writers; i++ {
				quiesce.RLock()
				w, err := wgOp(ctx, cli, r, cfg.keys, fmt.Sprintf("w%d-%d", wi, i))
				quiesce.RUnlock()
				if err != nil {
					wErrs <- err
					return
				}
				record(w)
				opsDone.Add(1)
			}
		}()
	}

	// Mid-way: a watcher from the past; then ballast, compaction, and
	// watchers from before and at the compaction point.
	var compactRev int64
	var pastEarly, pastCompacted, pastAtCompact *wgWatcher
	writers.Add(1)
	go func() {
		defer writers.Done()
		for opsDone.Load() < int64(cfg.ops/4) {
			time.Sleep(5 * time.Millisecond)
		}
		pastEarly = add("c-past-early", watchcheck.Spec{Key: wgPrefix, End: prefixEnd(wgPrefix), StartRev: from + 5, PrevKV: true}, true)
		cwatch(streamA, pastEarly)
		for opsDone.Load() < int64(cfg.ops/2) {
			time.Sleep(5 * time.Millisecond)
		}
		// 6 MiB for the stalled stream: far more than its budget and windows.
		for i := range 12 {
			v := strings.Repeat(strconv.Itoa(i%10), 512<<10)
			resp, err := cli.Put(ctx, wgPrefix+"ballast", v)
			if err != nil {
				wErrs <- err
				return
			}
			record(watchcheck.Write{Rev: resp.Header.Revision, Puts: []watchcheck.KV{{Key: wgPrefix + "ballast", Value: v}}})
		}
		quiesce.Lock()
		g, err := cli.Get(ctx, "wg-none")
		if err == nil {
			compactRev = g.Header.Revision
			err = waitSeen(ctx, watchersOf(&mu, &watchers, truth.Recording()), compactRev, requestProgress)
		}
		if err == nil {
			_, err = cli.Compact(ctx, compactRev)
		}
		quiesce.Unlock()
		if err != nil {
			wErrs <- fmt.Errorf("compaction: %w", err)
			return
		}
		pastCompacted = add("c-past-compacted", watchcheck.Spec{Key: wgPrefix, End: prefixEnd(wgPrefix), StartRev: compactRev - 1}, false)
		pastCompacted.compacted = true
		cwatch(streamC, pastCompacted)
		pastAtCompact = add("r-past-at-compact", watchcheck.Spec{Key: wgPrefix, End: prefixEnd(wgPrefix), StartRev: compactRev}, true)
		rwatch(r1, pastAtCompact)
		read(r3, nil) // the stalled stream starts reading
	}()
	writers.Wait()
	close(wErrs)
	for err := range wErrs {
		t.Fatalf("write: %v", err)
	}
	end, err := cli.Put(ctx, wgPrefix+"zz-end", "end")
	if err != nil {
		t.Fatal(err)
	}
	last := end.Header.Revision
	record(watchcheck.Write{Rev: last, Puts: []watchcheck.KV{{Key: wgPrefix + "zz-end", Value: "end"}}})

	// Every watcher that must survive sees the last revision.
	waitCtx, waitCancel := context.WithTimeout(ctx, 20*time.Second)
	err = waitSeen(waitCtx, watchersOf(&mu, &watchers, nil), last, requestProgress)
	waitCancel()
	close(done)
	bg.Wait()
	if err != nil {
		t.Error(err)
	}
	h, herr := truth.History(ctx, last)
	for _, cw := range clientWatchers {
		cw.Stop()
	}
	cResumeW.Stop()
	cancel()
	readers.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Errorf("raw stream: %v", err)
	}
	if herr != nil {
		t.Fatalf("truth: %v", herr)
	}
	if err := h.Consistent(nil); err != nil {
		t.Errorf("history is not self-consistent: %v", err)
	}
	if err := h.CheckWrites(writes, true); err != nil {
		t.Errorf("history does not match the acknowledged writes: %v", err)
	}
	for _, rs := range []*watchcheck.RawStream{r1, r2, r3, r4} {
		for _, r := range rs.Unrouted {
			t.Errorf("raw stream: response for no live watcher: %v", r)
		}
	}

	var recs []*watchcheck.Recording
	for _, w := range watchers {
		recs = append(recs, w.rec)
		st := w.rec.Stats()
		canceled, compact := w.rec.Ended()
		t.Logf("%-22s %+v seen=%d canceled=%v compact=%d", w.rec.Name, st, w.rec.LastSeen(), canceled, compact)
		switch {
		case w.compacted && compact != compactRev:
			t.Errorf("%s: started before the compaction at %d, want a compacted response with that revision; canceled=%v compact_revision=%d",
				w.rec.Name, compactRev, canceled, compact)
		case w.complete && compact != 0:
			t.Errorf("%s: compacted (at %d) although it kept up", w.rec.Name, compact)
		case compact != 0 && compact != compactRev:
			t.Errorf("%s: compacted at %d, the compaction was at %d", w.rec.Name, compact, compactRev)
		}
	}
	// The stalled stream's watcher was megabytes behind at the compaction.
	// MetaStore holds at most a stream's budget for it, so it must be
	// compacted; etcd buffers more per stream, so either outcome is valid.
	if canceled, compact := stalled.rec.Ended(); s.Kind == KindMetaStore && compact != compactRev {
		t.Errorf("r-stalled: want compacted at %d (it was stalled since before), got canceled=%v compact_revision=%d seen=%d",
			compactRev, canceled, compact, stalled.rec.LastSeen())
	} else if !canceled && stalled.rec.LastSeen() < last {
		t.Errorf("r-stalled: neither compacted nor complete: seen up to %d of %d", stalled.rec.LastSeen(), last)
	}
	if err := watchcheck.CheckAll(h, recs...); err != nil {
		if s.Kind == KindEtcd {
			// etcd 3.7.3 itself, rarely (once in many CI runs), answers a
			// stream's progress request (watch id -1) ahead of the created
			// response of a watcher it is creating, and then sends that
			// watcher events below the notified revision. The reference's
			// races are logged, not MetaStore's to fix; MetaStore's fail.
			t.Logf("etcd broke a watch guarantee: %v", err)
		} else {
			t.Error(err)
		}
	}
	t.Logf("%d writes, revisions %d..%d (%d events), compacted at %d", len(writes), from, last, h.Len(), compactRev)
}

// watchersOf returns the recordings of the watchers that must be complete,
// plus extra if not nil.
func watchersOf(mu *sync.Mutex, ws *[]*wgWatcher, extra *watchcheck.Recording) []*watchcheck.Recording {
	mu.Lock()
	defer mu.Unlock()
	var out []*watchcheck.Recording
	for _, w := range *ws {
		if w.complete {
			out = append(out, w.rec)
		}
	}
	if extra != nil {
		out = append(out, extra)
	}
	return out
}

// waitSeen waits until every recording has seen revision rev, calling
// progress (to ask the streams for progress notifications) meanwhile.
func waitSeen(ctx context.Context, recs []*watchcheck.Recording, rev int64, progress func()) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var behind []string
		for _, r := range recs {
			if seen := r.LastSeen(); seen < rev {
				behind = append(behind, fmt.Sprintf("%s@%d", r.Name, seen))
			}
		}
		if len(behind) == 0 {
			return nil
		}
		progress()
		select {
		case <-ctx.Done():
			return fmt.Errorf("watchers still behind revision %d: %v", rev, behind)
		case <-tick.C:
		}
	}
}

// wgOp runs one random write over keys wg/k00.. and returns what it did.
func wgOp(ctx context.Context, cli *clientv3.Client, r *rand.Rand, keys int, tag string) (watchcheck.Write, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	value := func() string {
		n := 8 + r.Intn(200)
		if r.Intn(10) == 0 {
			n = 1000 + r.Intn(3000)
		}
		v := tag + "-" + strings.Repeat("x", n)
		return v
	}
	switch p := r.Intn(100); {
	case p < 40:
		k, v := wgKey(r.Intn(keys)), value()
		resp, err := cli.Put(ctx, k, v)
		if err != nil {
			return watchcheck.Write{}, err
		}
		return watchcheck.Write{Rev: resp.Header.Revision, Puts: []watchcheck.KV{{Key: k, Value: v}}}, nil
	case p < 55:
		k := wgKey(r.Intn(keys))
		resp, err := cli.Delete(ctx, k)
		if err != nil {
			return watchcheck.Write{}, err
		}
		return watchcheck.Write{Rev: resp.Header.Revision, Deletes: []watchcheck.Deletion{{Key: k, Deleted: resp.Deleted}}}, nil
	case p < 65:
		a := r.Intn(keys)
		b := a + 1 + r.Intn(6)
		resp, err := cli.Delete(ctx, wgKey(a), clientv3.WithRange(wgKey(b)))
		if err != nil {
			return watchcheck.Write{}, err
		}
		return watchcheck.Write{Rev: resp.Header.Revision, Deletes: []watchcheck.Deletion{{Key: wgKey(a), End: wgKey(b), Deleted: resp.Deleted}}}, nil
	default:
		// A txn over 2-4 distinct keys, each put or deleted, in both branches.
		perm := r.Perm(keys)
		type op struct {
			key, value string // value "" = delete
		}
		branch := func(ks []int) []op {
			var ops []op
			for _, k := range ks {
				if r.Intn(4) == 0 {
					ops = append(ops, op{key: wgKey(k)})
				} else {
					ops = append(ops, op{key: wgKey(k), value: value()})
				}
			}
			return ops
		}
		n := 2 + r.Intn(3)
		thenOps, elseOps := branch(perm[:n]), branch(perm[n:n+2])
		toClient := func(ops []op) []clientv3.Op {
			var out []clientv3.Op
			for _, o := range ops {
				if o.value == "" {
					out = append(out, clientv3.OpDelete(o.key))
				} else {
					out = append(out, clientv3.OpPut(o.key, o.value))
				}
			}
			return out
		}
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Version(wgKey(perm[0])), ">", 0)).
			Then(toClient(thenOps)...).Else(toClient(elseOps)...).Commit()
		if err != nil {
			return watchcheck.Write{}, err
		}
		ran := elseOps
		if resp.Succeeded {
			ran = thenOps
		}
		w := watchcheck.Write{Rev: resp.Header.Revision}
		for i, o := range ran {
			if o.value != "" {
				w.Puts = append(w.Puts, watchcheck.KV{Key: o.key, Value: o.value})
			} else {
				w.Deletes = append(w.Deletes, watchcheck.Deletion{Key: o.key, Deleted: resp.Responses[i].GetResponseDeleteRange().Deleted})
			}
		}
		return w, nil
	}
}

// TestWatchGuaranteeNonReadingClient opens a raw watch stream with watchers
// on a prefix and does not read it while ~60 MB (200 MB with
// METASTORE_LONG=1) of values are written there. MetaStore's resident set
// must stay under a fixed cap over its baseline (the stream's budget, not
// the backlog, is what it holds); then the stream is read and every event
// must arrive, in order and without gaps.
func TestWatchGuaranteeNonReadingClient(t *testing.T) {
	total := 60 << 20
	if os.Getenv("METASTORE_LONG") == "1" {
		total = 200 << 20
	}
	const (
		valueSize = 8 << 10
		writers   = 8
		keys      = 16
		rssCap    = 100 << 20 // over a control run's growth
		prefix    = "big/"
	)
	// The write path alone (raft's in-memory log, pebble's memtables, Go's
	// heap growth) takes hundreds of MB for these writes, in etcd too; so
	// the cap is on the growth beyond a control run without watchers.
	control := StartMetaStore(t)
	controlGrowth := nonReadingWrites(t, control, prefix, total, valueSize, writers, keys, nil)
	control.Kill()

	s := StartMetaStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cli := s.Client(t)
	g0, err := cli.Get(ctx, "none")
	if err != nil {
		t.Fatal(err)
	}
	from := g0.Header.Revision + 1

	rs, err := watchcheck.OpenRawStream(ctx, rawConn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	pfx := watchcheck.Spec{Key: prefix, End: prefixEnd(prefix), StartRev: from}
	var recs []*watchcheck.Recording
	for _, r := range []*watchcheck.Recording{
		watchcheck.NewRecording("prefix", pfx),
		watchcheck.NewRecording("prefix-prev-kv", func() watchcheck.Spec { s := pfx; s.PrevKV = true; return s }()),
		watchcheck.NewRecording("prefix-now-fragment", func() watchcheck.Spec { s := pfx; s.StartRev, s.Fragment = 0, true; return s }()),
		watchcheck.NewRecording("single", watchcheck.Spec{Key: prefix + "k03", StartRev: from}),
	} {
		if _, err := rs.Watch(r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}

	var writes []watchcheck.Write
	growth := nonReadingWrites(t, s, prefix, total, valueSize, writers, keys, &writes)
	last := from + int64(len(writes)) - 1
	if extra := growth - controlGrowth; extra > rssCap {
		t.Errorf("MetaStore's RSS grew by %d MB under a stream that does not read, %d MB more than without watchers (cap %d MB)",
			growth>>20, extra>>20, rssCap>>20)
	}

	// Now read: everything must arrive.
	readDone := make(chan error, 1)
	go func() { readDone <- rs.RecvLoop(nil) }()
	waitCtx, waitCancel := context.WithTimeout(ctx, 60*time.Second)
	err = waitSeen(waitCtx, recs, last, func() { _ = rs.RequestProgress() })
	waitCancel()
	if err != nil {
		t.Error(err)
	}
	truth := watchcheck.CollectTruth(ctx, cli, from)
	h, err := truth.History(ctx, last)
	cancel()
	if rerr := <-readDone; rerr != nil {
		t.Errorf("raw stream: %v", rerr)
	}
	if err != nil {
		t.Fatalf("truth: %v", err)
	}
	if err := h.Consistent(nil); err != nil {
		t.Errorf("history is not self-consistent: %v", err)
	}
	if err := h.CheckWrites(writes, true); err != nil {
		t.Errorf("history does not match the acknowledged writes: %v", err)
	}
	for _, r := range rs.Unrouted {
		t.Errorf("response for no watcher: %v", r)
	}
	for _, r := range recs {
		t.Logf("%-20s %+v seen=%d", r.Name, r.Stats(), r.LastSeen())
	}
	if err := watchcheck.CheckAll(h, recs...); err != nil {
		t.Error(err)
	}
}

// nonReadingWrites writes total bytes of values of valueSize to keys of
// prefix from concurrent writers, samples the server's VmRSS meanwhile, and
// returns its growth over the baseline; with writes not nil, it records
// the acknowledged puts there.
func nonReadingWrites(t *testing.T, s *Server, prefix string, total, valueSize, writers, keys int, writes *[]watchcheck.Write) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := s.Client(t)
	time.Sleep(300 * time.Millisecond)
	base, err := vmRSS(s.Pid())
	if err != nil {
		t.Fatal(err)
	}
	var peak atomic.Int64
	peak.Store(base)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if rss, err := vmRSS(s.Pid()); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs = make(chan error, writers)
	)
	n := total / valueSize
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				k := fmt.Sprintf("%sk%02d", prefix, i%keys)
				v := fmt.Sprintf("%06d", i) + strings.Repeat(string(rune('a'+i%26)), valueSize-6)
				resp, err := cli.Put(ctx, k, v)
				if err != nil {
					errs <- err
					return
				}
				if writes != nil {
					mu.Lock()
					*writes = append(*writes, watchcheck.Write{Rev: resp.Header.Revision, Puts: []watchcheck.KV{{Key: k, Value: v}}})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("put: %v", err)
	}
	close(stopSampling)
	<-sampled
	t.Logf("%s: wrote %d MB in %d puts in %v (watchers: %v); VmRSS baseline %d MB, peak %d MB",
		s.Name, total>>20, n, time.Since(start).Round(time.Millisecond), writes != nil, base>>20, peak.Load()>>20)
	return peak.Load() - base
}

// vmRSS returns a process's resident set size in bytes (Linux).
func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

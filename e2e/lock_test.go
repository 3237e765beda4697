package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	lpb "go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The tests here run one scenario against MetaStore and against the
// reference etcd, side by side, and compare the transcripts (lease ids
// normalised to L1, L2, ... in order of appearance, headers' cluster and
// member ids and raft term zeroed); properties that must hold whatever the
// server (mutual exclusion, blocking, hand-over) are checked on each.
//
// Waits are for an observable state (a key count, an output line, an exit),
// bounded by lockWait only so that a broken server fails instead of hanging.

const lockWait = 20 * time.Second

// bothServers runs scenario on a fresh MetaStore and a fresh etcd in
// parallel and requires the same transcript from both.
func bothServers(t *testing.T, scenario func(t *testing.T, s *Server) string) {
	t.Helper()
	var out [2]string
	kinds := [2]Kind{KindMetaStore, KindEtcd}
	t.Run("run", func(t *testing.T) {
		for i, kind := range kinds {
			t.Run(string(kind), func(t *testing.T) {
				t.Parallel()
				var s *Server
				if kind == KindEtcd {
					s = StartEtcd(t)
				} else {
					s = StartMetaStore(t)
				}
				out[i] = scenario(t, s)
			})
		}
	})
	if t.Failed() {
		t.Logf("metastore transcript:\n%s\n\netcd transcript:\n%s", out[0], out[1])
		return
	}
	ms, ref := strings.Split(out[0], "\n"), strings.Split(out[1], "\n")
	for i := 0; i < len(ms) || i < len(ref); i++ {
		var m, r string
		if i < len(ms) {
			m = ms[i]
		}
		if i < len(ref) {
			r = ref[i]
		}
		if m != r {
			t.Errorf("transcript line %d differs:\n  etcd:      %s\n  metastore: %s", i+1, r, m)
		}
	}
	if t.Failed() {
		t.Logf("metastore transcript:\n%s\n\netcd transcript:\n%s", out[0], out[1])
	} else if testing.Verbose() {
		t.Logf("transcript (both servers):\n%s", out[1])
	}
}

// transcript collects one scenario's observable results.
type transcript struct{ lines []string }

func (tr *transcript) add(format string, args ...any) {
	tr.lines = append(tr.lines, fmt.Sprintf(format, args...))
}

func (tr *transcript) String() string { return strings.Join(tr.lines, "\n") }

// leaseKeyRE matches the keys etcd's recipes make: <name>/<lease in %x>.
var leaseKeyRE = regexp.MustCompile(`\b([A-Za-z]+)/([0-9a-f]{4,16})\b`)

// normLeaseKeys replaces the lease part of every <name>/<hex> key by Ln,
// numbered in order of first appearance.
func normLeaseKeys(s string) string {
	seen := map[string]string{}
	return leaseKeyRE.ReplaceAllStringFunc(s, func(m string) string {
		sm := leaseKeyRE.FindStringSubmatch(m)
		n, ok := seen[sm[2]]
		if !ok {
			n = fmt.Sprintf("L%d", len(seen)+1)
			seen[sm[2]] = n
		}
		return sm[1] + "/" + n
	})
}

// waitUntil polls cond until it holds; it fails the test after lockWait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(lockWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%v) for %s", lockWait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// prefixKeys lists the keys under prefix, in create order.
func prefixKeys(t *testing.T, cli *clientv3.Client, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		t.Fatalf("get %q --prefix: %v", prefix, err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

func waitKeys(t *testing.T, cli *clientv3.Client, prefix string, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d keys under %q", n, prefix), func() bool {
		return len(prefixKeys(t, cli, prefix)) == n
	})
}

// grantedTTL is the granted TTL of lease id (-1 if it does not exist).
func grantedTTL(t *testing.T, cli *clientv3.Client, id int64) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.TimeToLive(ctx, clientv3.LeaseID(id))
	if err != nil {
		t.Fatalf("timetolive %x: %v", id, err)
	}
	if resp.TTL < 0 {
		return -1
	}
	return resp.GrantedTTL
}

// keyLease is the lease a key is attached to (0 if none or no key).
func keyLease(t *testing.T, cli *clientv3.Client, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].Lease
}

// ---------------------------------------------------------------------------
// Background etcdctl processes

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ctlProc is an etcdctl process running in the background.
type ctlProc struct {
	desc   string
	cmd    *exec.Cmd
	stdout syncBuf
	stderr syncBuf
	done   chan struct{}
	code   int // exit code once done; -1 if killed by a signal
}

func startCtl(t *testing.T, s *Server, env []string, args ...string) *ctlProc {
	t.Helper()
	p := &ctlProc{desc: "etcdctl " + strings.Join(args, " "), done: make(chan struct{})}
	p.cmd = exec.Command(RefBin(t, "etcdctl"), append([]string{"--endpoints=" + s.Endpoint()}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", p.desc, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *ctlProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitLines waits until the process has written n lines to stdout.
func (p *ctlProc) waitLines(t *testing.T, n int) string {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d lines from %s (has %q, stderr %q)", n, p.desc, p.stdout.String(), p.stderr.String()), func() bool {
		return strings.Count(p.stdout.String(), "\n") >= n
	})
	return p.stdout.String()
}

func (p *ctlProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.desc, err)
	}
}

// wait waits for the exit and describes it as "exit N, stdout ..., stderr ...".
func (p *ctlProc) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(lockWait):
		t.Fatalf("%s did not exit within %v (stdout %q, stderr %q)", p.desc, lockWait, p.stdout.String(), p.stderr.String())
	}
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", p.code, p.stdout.String(), errText(p.stderr.String()))
}

// ---------------------------------------------------------------------------
// etcdctl lock

var csStartRE = regexp.MustCompile(`^start (\d) (mx/[0-9a-f]+) (\d+)$`)

// TestLockEtcdctl: `etcdctl lock` excludes concurrent critical sections,
// holds until interrupted, honours --ttl, and hands over when its holder is
// killed (after the lease TTL) or its session is lost.
func TestLockEtcdctl(t *testing.T) {
	t.Parallel()
	bothServers(t, func(t *testing.T, s *Server) string {
		cli := s.Client(t)
		var tr transcript

		// Four concurrent critical sections on one lock.
		log := filepath.Join(t.TempDir(), "cs.log")
		script := `echo "start $N $ETCD_LOCK_KEY $ETCD_LOCK_REV" >> "$F"; sleep 0.1; echo "end $N" >> "$F"`
		var procs []*ctlProc
		for i := range 4 {
			procs = append(procs, startCtl(t, s, []string{"N=" + strconv.Itoa(i), "F=" + log}, "lock", "mx", "--", "sh", "-c", script))
		}
		for i, p := range procs {
			tr.add("mx %d: %s", i, p.wait(t))
		}
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) != 8 {
			t.Errorf("critical sections wrote %d lines, want 8:\n%s", len(lines), data)
		}
		seenN, seenKey := map[string]bool{}, map[string]bool{}
		lastRev := int64(0)
		for i := 0; i+1 < len(lines); i += 2 {
			m := csStartRE.FindStringSubmatch(lines[i])
			if m == nil || lines[i+1] != "end "+m[1] {
				t.Errorf("critical sections overlap or are malformed at line %d:\n%s", i+1, data)
				break
			}
			rev, _ := strconv.ParseInt(m[3], 10, 64)
			if seenN[m[1]] || seenKey[m[2]] || rev <= lastRev {
				t.Errorf("section %s: repeated process or key, or ETCD_LOCK_REV not increasing:\n%s", m[1], data)
			}
			seenN[m[1]], seenKey[m[2]], lastRev = true, true, rev
		}
		tr.add("mx: %d sections, %d processes, %d keys", len(lines)/2, len(seenN), len(seenKey))
		if keys := prefixKeys(t, cli, "mx/"); len(keys) != 0 {
			t.Errorf("keys left under mx/: %q", keys)
		}

		// Without a command: print the key, hold until SIGINT.
		h1 := startCtl(t, s, nil, "lock", "hold")
		out := h1.waitLines(t, 2)
		tr.add("hold: stdout %q", out)
		key := strings.SplitN(out, "\n", 2)[0]
		if m := regexp.MustCompile(`^hold/([0-9a-f]+)$`).FindStringSubmatch(key); m == nil {
			t.Errorf("lock key %q is not hold/<hex lease>", key)
		} else if l := keyLease(t, cli, key); fmt.Sprintf("%x", l) != m[1] {
			t.Errorf("lock key %q has lease %x", key, l)
		} else {
			tr.add("hold: key's lease granted TTL %d", grantedTTL(t, cli, l))
		}
		h2 := startCtl(t, s, nil, "lock", "hold", "--", "echo", "got hold")
		waitKeys(t, cli, "hold/", 2)
		if h2.exited() || h2.stdout.String() != "" {
			t.Errorf("second lock holder ran while the first held: %s", h2.wait(t))
		}
		tr.add("hold: keys while contended %q", prefixKeys(t, cli, "hold/"))
		h1.signal(t, syscall.SIGINT)
		tr.add("hold: holder after SIGINT: %s", h1.wait(t))
		tr.add("hold: waiter: %s", h2.wait(t))
		tr.add("hold: keys after: %q", prefixKeys(t, cli, "hold/"))

		// --ttl, and a holder killed with SIGKILL: the waiter gets the
		// lock once the holder's lease expires.
		t1 := startCtl(t, s, nil, "lock", "--ttl", "2", "ttl")
		out = t1.waitLines(t, 2)
		tr.add("ttl: stdout %q", out)
		key = strings.SplitN(out, "\n", 2)[0]
		tr.add("ttl: key's lease granted TTL %d", grantedTTL(t, cli, keyLease(t, cli, key)))
		t2 := startCtl(t, s, nil, "lock", "ttl", "--", "echo", "got ttl")
		waitKeys(t, cli, "ttl/", 2)
		if t2.exited() {
			t.Errorf("second lock holder ran while the first held: %s", t2.wait(t))
		}
		t1.signal(t, syscall.SIGKILL)
		tr.add("ttl: holder after SIGKILL: %s", t1.wait(t))
		tr.add("ttl: waiter: %s", t2.wait(t))
		tr.add("ttl: keys after: %q", prefixKeys(t, cli, "ttl/"))

		// The holder's lease is revoked: etcdctl reports its session lost.
		s1 := startCtl(t, s, nil, "lock", "--ttl", "3", "sess")
		key = strings.SplitN(s1.waitLines(t, 2), "\n", 2)[0]
		if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(keyLease(t, cli, key))); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		tr.add("sess: holder after its lease is revoked: %s", s1.wait(t))

		return normLeaseKeys(tr.String())
	})
}

// ---------------------------------------------------------------------------
// etcdctl elect

// TestElectEtcdctl: `etcdctl elect` campaigns, `elect -l` observes every
// leader, and leadership passes on when the leader resigns (SIGTERM,
// SIGINT), when a killed leader's lease goes, and when a crashed leader's
// lease expires.
func TestElectEtcdctl(t *testing.T) {
	t.Parallel()
	bothServers(t, func(t *testing.T, s *Server) string {
		cli := s.Client(t)
		var tr transcript
		notLeader := func(p *ctlProc) {
			t.Helper()
			if p.exited() || p.stdout.String() != "" {
				t.Errorf("%s elected while another leads: stdout %q stderr %q", p.desc, p.stdout.String(), p.stderr.String())
			}
		}

		obs := startCtl(t, s, nil, "elect", "-l", "el")
		p1 := startCtl(t, s, nil, "elect", "el", "p1")
		tr.add("p1 elected: %q", p1.waitLines(t, 2))
		obs.waitLines(t, 2)

		// SIGTERM: etcdctl resigns, the next campaigner leads.
		p2 := startCtl(t, s, nil, "elect", "el", "p2")
		waitKeys(t, cli, "el/", 2)
		notLeader(p2)
		p1.signal(t, syscall.SIGTERM)
		tr.add("p1 after SIGTERM: %s", p1.wait(t))
		tr.add("p2 elected: %q", p2.waitLines(t, 2))
		obs.waitLines(t, 4)

		// SIGKILL: no resignation; the dead leader stays until its lease
		// (etcdctl elect's fixed 60 s session) goes, here by revocation.
		p3 := startCtl(t, s, nil, "elect", "el", "p3")
		waitKeys(t, cli, "el/", 2)
		notLeader(p3)
		p2.signal(t, syscall.SIGKILL)
		tr.add("p2 after SIGKILL: %s", p2.wait(t))
		keys := prefixKeys(t, cli, "el/")
		tr.add("after SIGKILL: keys %q", keys)
		notLeader(p3)
		p2Lease := keyLease(t, cli, keys[0])
		tr.add("p2's lease granted TTL %d", grantedTTL(t, cli, p2Lease))
		if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(p2Lease)); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		tr.add("p3 elected: %q", p3.waitLines(t, 2))
		obs.waitLines(t, 6)

		// A leader with a 2 s session that crashes (its keep-alives stop):
		// the waiting etcdctl leads once that lease expires.
		c4 := s.Client(t)
		sess, err := concurrency.NewSession(c4, concurrency.WithTTL(2))
		if err != nil {
			t.Fatal(err)
		}
		e4 := concurrency.NewElection(sess, "el")
		e4c := make(chan error, 1)
		go func() { e4c <- e4.Campaign(context.Background(), "p4") }()
		waitKeys(t, cli, "el/", 2)
		p3.signal(t, syscall.SIGINT)
		tr.add("p3 after SIGINT: %s", p3.wait(t))
		select {
		case err := <-e4c:
			tr.add("p4 (clientv3, TTL 2) campaign: %v", err)
		case <-time.After(lockWait):
			t.Fatal("p4 not elected")
		}
		obs.waitLines(t, 8)
		p5 := startCtl(t, s, nil, "elect", "el", "p5")
		waitKeys(t, cli, "el/", 2)
		notLeader(p5)
		_ = c4.Close() // "crash": no more keep-alives, no revocation
		tr.add("p5 elected: %q", p5.waitLines(t, 2))
		obs.waitLines(t, 10)
		p5.signal(t, syscall.SIGTERM)
		tr.add("p5 after SIGTERM: %s", p5.wait(t))
		tr.add("keys after: %q", prefixKeys(t, cli, "el/"))
		obs.signal(t, syscall.SIGINT)
		tr.add("observer: %s", obs.wait(t))
		return normLeaseKeys(tr.String())
	})
}

// ---------------------------------------------------------------------------
// gRPC v3lockpb / v3electionpb

// normLE zeroes the cluster and member ids and raft term of a Lock or
// Election response's header.
func normLE(m proto.Message) {
	switch r := m.(type) {
	case *lpb.LockResponse:
		zeroHeader(r.GetHeader())
	case *lpb.UnlockResponse:
		zeroHeader(r.GetHeader())
	case *epb.CampaignResponse:
		zeroHeader(r.GetHeader())
	case *epb.ProclaimResponse:
		zeroHeader(r.GetHeader())
	case *epb.ResignResponse:
		zeroHeader(r.GetHeader())
	case *epb.LeaderResponse:
		zeroHeader(r.GetHeader())
	}
}

// grpcTranscript records responses and errors, lease ids normalised.
type grpcTranscript struct {
	transcript
	ids leaseIDs
}

func (g *grpcTranscript) rec(step string, m proto.Message, err error) {
	if err == nil {
		normLE(m)
	}
	g.add("%s: %s", step, fmtRes(m, err))
}

func (g *grpcTranscript) String() string { return g.ids.norm(g.transcript.String()) }

func grantLease(t *testing.T, cli *clientv3.Client, g *grpcTranscript, ttl int64) int64 {
	t.Helper()
	resp, err := cli.Grant(context.Background(), ttl)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	g.ids.add(int64(resp.ID))
	return int64(resp.ID)
}

// result is a blocking call's outcome.
type result[T any] struct {
	resp T
	err  error
}

func await[T any](t *testing.T, what string, c <-chan result[T]) (T, error) {
	t.Helper()
	select {
	case r := <-c:
		return r.resp, r.err
	case <-time.After(lockWait):
		t.Fatalf("%s: no answer within %v", what, lockWait)
	}
	panic("unreachable")
}

func stillBlocked[T any](t *testing.T, what string, c chan result[T]) {
	t.Helper()
	select {
	case r := <-c:
		t.Errorf("%s returned while it should block: %v %v", what, r.resp, r.err)
		c <- r
	default:
	}
}

// TestLockGRPC drives v3lockpb.Lock/Unlock directly.
func TestLockGRPC(t *testing.T) {
	t.Parallel()
	bothServers(t, func(t *testing.T, s *Server) string {
		cli := s.Client(t)
		lc := lpb.NewLockClient(cli.ActiveConnection())
		ctx := context.Background()
		g := &grpcTranscript{}
		l1, l2, l3 := grantLease(t, cli, g, 30), grantLease(t, cli, g, 30), grantLease(t, cli, g, 30)

		r1, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("g"), Lease: l1})
		g.rec("lock g L1", r1, err)
		if err != nil {
			t.Fatal(err)
		}
		if string(r1.Key) != fmt.Sprintf("g/%x", l1) {
			t.Errorf("lock key %q, want g/%x", r1.Key, l1)
		}
		if gr, err := cli.Get(ctx, string(r1.Key)); err != nil || len(gr.Kvs) != 1 ||
			gr.Kvs[0].CreateRevision != r1.Header.Revision || gr.Kvs[0].Lease != l1 {
			t.Errorf("lock key %q after Lock (header revision %d): %v %v", r1.Key, r1.Header.Revision, gr, err)
		}

		// A second Lock waits for the first's Unlock.
		wc := make(chan result[*lpb.LockResponse], 1)
		go func() {
			r, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("g"), Lease: l2})
			wc <- result[*lpb.LockResponse]{r, err}
		}()
		waitKeys(t, cli, "g/", 2)
		stillBlocked(t, "Lock g L2", wc)
		u, err := lc.Unlock(ctx, &lpb.UnlockRequest{Key: r1.Key})
		g.rec("unlock g/L1", u, err)
		r2, err := await(t, "Lock g L2", wc)
		g.rec("lock g L2 (after unlock)", r2, err)

		// Lock again with the holder's lease: already held.
		r3, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("g"), Lease: l2})
		g.rec("lock g L2 again", r3, err)
		u, err = lc.Unlock(ctx, &lpb.UnlockRequest{Key: []byte("g/nosuchkey")})
		g.rec("unlock g/nosuchkey", u, err)
		u, err = lc.Unlock(ctx, &lpb.UnlockRequest{})
		g.rec("unlock no key", u, err)
		u, err = lc.Unlock(ctx, &lpb.UnlockRequest{Key: []byte(fmt.Sprintf("g/%x", l2))})
		g.rec("unlock g/L2", u, err)

		// Unknown and missing leases.
		r, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("g"), Lease: 0x1234abcd})
		g.rec("lock g unknown lease", r, err)
		r, err = lc.Lock(ctx, &lpb.LockRequest{Name: []byte("nolease")})
		if err == nil {
			if id, perr := strconv.ParseUint(strings.TrimPrefix(string(r.Key), "nolease/"), 16, 64); perr == nil {
				g.ids.add(int64(id))
				g.add("lock without lease: key's lease %d, granted TTL %d", keyLease(t, cli, string(r.Key)), grantedTTL(t, cli, int64(id)))
			}
		}
		g.rec("lock nolease no lease", r, err)
		r, err = lc.Lock(ctx, &lpb.LockRequest{Lease: l3})
		g.rec("lock empty name", r, err)
		g.add("keys: %q", prefixKeys(t, cli, ""))

		// A waiter whose client gives up leaves no key behind.
		ra, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("c"), Lease: l1})
		g.rec("lock c L1", ra, err)
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			r, err := lc.Lock(cctx, &lpb.LockRequest{Name: []byte("c"), Lease: l2})
			wc <- result[*lpb.LockResponse]{r, err}
		}()
		waitKeys(t, cli, "c/", 2)
		stillBlocked(t, "Lock c L2", wc)
		cancel()
		r, err = await(t, "canceled Lock c L2", wc)
		g.rec("canceled lock c L2", r, err)
		waitKeys(t, cli, "c/", 1)
		g.add("keys after cancel: %q", prefixKeys(t, cli, "c/"))

		// A waiter whose lease is revoked: its key goes, and when the
		// holder unlocks it finds its session expired.
		go func() {
			r, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("c"), Lease: l3})
			wc <- result[*lpb.LockResponse]{r, err}
		}()
		waitKeys(t, cli, "c/", 2)
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(l3)); err != nil {
			t.Fatal(err)
		}
		waitKeys(t, cli, "c/", 1)
		stillBlocked(t, "Lock c L3", wc)
		u, err = lc.Unlock(ctx, &lpb.UnlockRequest{Key: ra.Key})
		g.rec("unlock c/L1", u, err)
		r, err = await(t, "Lock c L3", wc)
		g.rec("lock c L3 (lease revoked while waiting)", r, err)
		g.add("keys at end: %q", prefixKeys(t, cli, ""))
		return g.String()
	})
}

// observer collects an Observe stream's messages.
type observer struct {
	c      chan result[*epb.LeaderResponse]
	cancel context.CancelFunc
}

func observe(t *testing.T, ec epb.ElectionClient, name string) *observer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := ec.Observe(ctx, &epb.LeaderRequest{Name: []byte(name)})
	if err != nil {
		t.Fatalf("observe %q: %v", name, err)
	}
	o := &observer{c: make(chan result[*epb.LeaderResponse], 100), cancel: cancel}
	go func() {
		for {
			r, err := st.Recv()
			o.c <- result[*epb.LeaderResponse]{r, err}
			if err != nil {
				return
			}
		}
	}()
	return o
}

func (o *observer) next(t *testing.T, g *grpcTranscript, step string) {
	t.Helper()
	r, err := await(t, step, o.c)
	g.rec(step, r, err)
}

// TestElectionGRPC drives v3electionpb Campaign, Leader, Proclaim, Resign
// and Observe directly, including their errors.
func TestElectionGRPC(t *testing.T) {
	t.Parallel()
	bothServers(t, func(t *testing.T, s *Server) string {
		cli := s.Client(t)
		ec := epb.NewElectionClient(cli.ActiveConnection())
		ctx := context.Background()
		g := &grpcTranscript{}
		e1, e2, e3 := grantLease(t, cli, g, 30), grantLease(t, cli, g, 30), grantLease(t, cli, g, 30)
		name := []byte("e")

		lr, err := ec.Leader(ctx, &epb.LeaderRequest{Name: name})
		g.rec("leader (none)", lr, err)
		obs := observe(t, ec, "e")

		c1, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: name, Lease: e1, Value: []byte("v1")})
		g.rec("campaign E1 v1", c1, err)
		if err != nil {
			t.Fatal(err)
		}
		obs.next(t, g, "observe")
		lr, err = ec.Leader(ctx, &epb.LeaderRequest{Name: name})
		g.rec("leader", lr, err)
		pr, err := ec.Proclaim(ctx, &epb.ProclaimRequest{Leader: c1.Leader, Value: []byte("v2")})
		g.rec("proclaim v2", pr, err)
		obs.next(t, g, "observe")
		lr, err = ec.Leader(ctx, &epb.LeaderRequest{Name: name})
		g.rec("leader", lr, err)

		// Bad leader keys.
		pr, err = ec.Proclaim(ctx, &epb.ProclaimRequest{Value: []byte("x")})
		g.rec("proclaim no leader field", pr, err)
		rr, err := ec.Resign(ctx, &epb.ResignRequest{})
		g.rec("resign no leader field", rr, err)
		foreign := &epb.LeaderKey{Name: name, Key: []byte("e/bogus"), Rev: c1.Leader.Rev, Lease: e1}
		pr, err = ec.Proclaim(ctx, &epb.ProclaimRequest{Leader: foreign, Value: []byte("x")})
		g.rec("proclaim foreign key", pr, err)
		stale := &epb.LeaderKey{Name: name, Key: c1.Leader.Key, Rev: c1.Leader.Rev + 100, Lease: e1}
		pr, err = ec.Proclaim(ctx, &epb.ProclaimRequest{Leader: stale, Value: []byte("x")})
		g.rec("proclaim stale rev", pr, err)
		rr, err = ec.Resign(ctx, &epb.ResignRequest{Leader: foreign})
		g.rec("resign foreign key", rr, err)
		rr, err = ec.Resign(ctx, &epb.ResignRequest{Leader: stale})
		g.rec("resign stale rev", rr, err)
		lr, err = ec.Leader(ctx, &epb.LeaderRequest{Name: name})
		g.rec("leader after bad proclaims/resigns", lr, err)
		cr, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: name, Lease: 0x1234abcd, Value: []byte("x")})
		g.rec("campaign unknown lease", cr, err)

		// Campaigning again with the leader's lease re-proclaims.
		cr, err = ec.Campaign(ctx, &epb.CampaignRequest{Name: name, Lease: e1, Value: []byte("v3")})
		g.rec("campaign E1 v3 (already leader)", cr, err)
		obs.next(t, g, "observe")

		// Hand-over on Resign.
		wc := make(chan result[*epb.CampaignResponse], 1)
		go func() {
			r, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: name, Lease: e2, Value: []byte("w")})
			wc <- result[*epb.CampaignResponse]{r, err}
		}()
		waitKeys(t, cli, "e/", 2)
		stillBlocked(t, "Campaign E2", wc)
		rr, err = ec.Resign(ctx, &epb.ResignRequest{Leader: c1.Leader})
		g.rec("resign E1", rr, err)
		c2, err := await(t, "Campaign E2", wc)
		g.rec("campaign E2 w (after resign)", c2, err)
		obs.next(t, g, "observe")

		// Hand-over on lease revocation.
		go func() {
			r, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: name, Lease: e3, Value: []byte("z")})
			wc <- result[*epb.CampaignResponse]{r, err}
		}()
		waitKeys(t, cli, "e/", 2)
		stillBlocked(t, "Campaign E3", wc)
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(e2)); err != nil {
			t.Fatal(err)
		}
		c3, err := await(t, "Campaign E3", wc)
		g.rec("campaign E3 z (after revoke E2)", c3, err)
		obs.next(t, g, "observe")
		obs2 := observe(t, ec, "e")
		obs2.next(t, g, "second observer")

		// Hand-over on lease expiry: a leader that stops its keep-alives
		// once a successor waits.
		rr, err = ec.Resign(ctx, &epb.ResignRequest{Leader: c3.Leader})
		g.rec("resign E3", rr, err)
		lr, err = ec.Leader(ctx, &epb.LeaderRequest{Name: name})
		g.rec("leader after resign", lr, err)
		e4, e5 := grantLease(t, cli, g, 2), grantLease(t, cli, g, 30)
		c4, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: name, Lease: e4, Value: []byte("short")})
		g.rec("campaign E4 (TTL 2)", c4, err)
		obs.next(t, g, "observe")
		go func() {
			r, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: name, Lease: e5, Value: []byte("after")})
			wc <- result[*epb.CampaignResponse]{r, err}
		}()
		waitUntil(t, "E5 campaigning while E4 leads", func() bool {
			if _, err := cli.KeepAliveOnce(ctx, clientv3.LeaseID(e4)); err != nil {
				t.Fatalf("keepalive E4: %v", err)
			}
			return len(prefixKeys(t, cli, "e/")) == 2
		})
		stillBlocked(t, "Campaign E5", wc)
		c5, err := await(t, "Campaign E5", wc)
		g.rec("campaign E5 (after E4 expired)", c5, err)
		obs.next(t, g, "observe")

		// Campaign whose client gives up leaves no key behind.
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			r, err := ec.Campaign(cctx, &epb.CampaignRequest{Name: name, Lease: e1, Value: []byte("gaveup")})
			wc <- result[*epb.CampaignResponse]{r, err}
		}()
		waitKeys(t, cli, "e/", 2)
		cancel()
		cr, err = await(t, "canceled Campaign", wc)
		g.rec("canceled campaign E1", cr, err)
		waitKeys(t, cli, "e/", 1)

		// Proclaim with an empty leader key.
		pr, err = ec.Proclaim(ctx, &epb.ProclaimRequest{Leader: &epb.LeaderKey{}, Value: []byte("x")})
		g.rec("proclaim empty leader key", pr, err)
		lr, err = ec.Leader(ctx, &epb.LeaderRequest{})
		g.rec("leader empty name", lr, err)
		rr, err = ec.Resign(ctx, &epb.ResignRequest{Leader: c5.GetLeader()})
		g.rec("resign E5", rr, err)
		g.add("keys at end: %q", prefixKeys(t, cli, ""))

		obs.cancel()
		var tail []string
		for r := range obs.c {
			if r.err != nil {
				break
			}
			normLE(r.resp)
			tail = append(tail, fmtRes(r.resp, nil))
		}
		sort.Strings(tail)
		g.add("observer's last messages: %q", tail)
		return g.String()
	})
}

// TestLockGRPCContention: many clients locking one name through the Lock
// service never overlap, and waiters are served in the order they queued.
func TestLockGRPCContention(t *testing.T) {
	t.Parallel()
	bothServers(t, func(t *testing.T, s *Server) string {
		cli := s.Client(t)
		lc := lpb.NewLockClient(cli.ActiveConnection())
		ctx := context.Background()
		g := &grpcTranscript{}

		// FIFO: five waiters queued one after another.
		var ls []int64
		for range 6 {
			ls = append(ls, grantLease(t, cli, g, 30))
		}
		first, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("fifo"), Lease: ls[0]})
		if err != nil {
			t.Fatal(err)
		}
		order := make(chan int, 5)
		for i := 1; i <= 5; i++ {
			go func() {
				r, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("fifo"), Lease: ls[i]})
				if err != nil {
					t.Errorf("lock fifo L%d: %v", i+1, err)
					order <- -i
					return
				}
				order <- i
				if _, err := lc.Unlock(ctx, &lpb.UnlockRequest{Key: r.Key}); err != nil {
					t.Errorf("unlock: %v", err)
				}
			}()
			waitKeys(t, cli, "fifo/", i+1)
		}
		if _, err := lc.Unlock(ctx, &lpb.UnlockRequest{Key: first.Key}); err != nil {
			t.Fatal(err)
		}
		var got []int
		for range 5 {
			select {
			case i := <-order:
				got = append(got, i)
			case <-time.After(lockWait):
				t.Fatalf("fifo: only %v acquired", got)
			}
		}
		g.add("fifo: acquisition order %v", got)

		// Mutual exclusion under contention.
		const workers, rounds = 8, 8
		var mu sync.Mutex
		holders, entries, maxHolders := 0, 0, 0
		var revs []int64
		var wg sync.WaitGroup
		for range workers {
			id := grantLease(t, cli, g, 30)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					r, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("busy"), Lease: id})
					if err != nil {
						t.Errorf("lock busy: %v", err)
						return
					}
					mu.Lock()
					holders++
					entries++
					maxHolders = max(maxHolders, holders)
					revs = append(revs, r.Header.Revision)
					mu.Unlock()
					time.Sleep(time.Millisecond)
					mu.Lock()
					holders--
					mu.Unlock()
					if _, err := lc.Unlock(ctx, &lpb.UnlockRequest{Key: r.Key}); err != nil {
						t.Errorf("unlock busy: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if maxHolders != 1 {
			t.Errorf("up to %d clients held the lock at once", maxHolders)
		}
		for i := 1; i < len(revs); i++ {
			if revs[i] <= revs[i-1] {
				t.Errorf("lock header revisions not increasing in acquisition order: %v", revs)
				break
			}
		}
		g.add("busy: %d acquisitions, at most %d holder(s), keys left %q", entries, maxHolders, prefixKeys(t, cli, "busy/"))
		return g.String()
	})
}

// TestLockElectionLargeRequests: the recipes' internal requests are bound
// by the server's request size limit (etcd: "request is too large"), and
// reads of long election names work as on etcd.
func TestLockElectionLargeRequests(t *testing.T) {
	t.Parallel()
	bothServers(t, func(t *testing.T, s *Server) string {
		cli := s.Client(t)
		lc := lpb.NewLockClient(cli.ActiveConnection())
		ec := epb.NewElectionClient(cli.ActiveConnection())
		ctx := context.Background()
		g := &grpcTranscript{}
		l1 := grantLease(t, cli, g, 30)

		// The lock's txn holds the name about 7 times: too large for etcd.
		r, err := lc.Lock(ctx, &lpb.LockRequest{Name: bytes.Repeat([]byte("x"), 300<<10), Lease: l1})
		g.rec("lock, 300 KiB name", r, err)

		// A 1.1 MiB election name: a leader key can be put (under the
		// 1.5 MiB limit), and Leader/Observe read it.
		name := strings.Repeat("n", 1100<<10)
		if _, err := cli.Put(ctx, name+"/k", "v"); err != nil {
			t.Fatalf("put: %v", err)
		}
		lr, err := ec.Leader(ctx, &epb.LeaderRequest{Name: []byte(name)})
		if err == nil && lr.Kv != nil {
			lr.Kv.Key = []byte(fmt.Sprintf("<%d bytes>", len(lr.Kv.Key)))
		}
		g.rec("leader, 1.1 MiB name", lr, err)
		octx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := ec.Observe(octx, &epb.LeaderRequest{Name: []byte(name)})
		if err == nil {
			lr, err = st.Recv()
			if err == nil && lr.Kv != nil {
				lr.Kv.Key = []byte(fmt.Sprintf("<%d bytes>", len(lr.Kv.Key)))
			}
		}
		g.rec("observe, 1.1 MiB name", lr, err)
		lr, err = ec.Leader(ctx, &epb.LeaderRequest{Name: []byte(strings.Repeat("q", 1100<<10))})
		g.rec("leader, 1.1 MiB name without leader", lr, err)
		return g.String()
	})
}

// TestLockElectionServerStop: RPCs blocked in Lock, Campaign and Observe
// when the server is stopped (SIGTERM) end with an error, and with the same
// status code as etcd's (the messages are the transport's and vary).
func TestLockElectionServerStop(t *testing.T) {
	t.Parallel()
	bothServers(t, func(t *testing.T, s *Server) string {
		cli := s.Client(t)
		lc := lpb.NewLockClient(cli.ActiveConnection())
		ec := epb.NewElectionClient(cli.ActiveConnection())
		ctx := context.Background()
		g := &grpcTranscript{}
		l1, l2 := grantLease(t, cli, g, 30), grantLease(t, cli, g, 30)
		if _, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("a"), Lease: l1}); err != nil {
			t.Fatal(err)
		}
		if _, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: []byte("e"), Lease: l1, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		wl := make(chan result[*lpb.LockResponse], 1)
		go func() {
			r, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("a"), Lease: l2})
			wl <- result[*lpb.LockResponse]{r, err}
		}()
		wc := make(chan result[*epb.CampaignResponse], 1)
		go func() {
			r, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: []byte("e"), Lease: l2, Value: []byte("w")})
			wc <- result[*epb.CampaignResponse]{r, err}
		}()
		waitKeys(t, cli, "a/", 2)
		waitKeys(t, cli, "e/", 2)
		obs := observe(t, ec, "e")
		obs.next(t, g, "observe")
		s.Stop()
		code := func(err error) string {
			if err == nil {
				return "no error"
			}
			if err == io.EOF {
				return "stream ended with status OK"
			}
			return "error code " + status.Code(err).String()
		}
		_, err := await(t, "blocked Lock", wl)
		g.add("blocked lock: %s (%v)", code(err), err)
		_, err = await(t, "blocked Campaign", wc)
		g.add("blocked campaign: %s (%v)", code(err), err)
		_, err = await(t, "Observe", obs.c)
		g.add("observe: %s (%v)", code(err), err)
		// The messages are left out of the comparison.
		for i, l := range g.lines {
			if j := strings.Index(l, " ("); j >= 0 && i > 0 {
				t.Logf("%s", l)
				g.lines[i] = l[:j]
			}
		}
		return g.String()
	})
}

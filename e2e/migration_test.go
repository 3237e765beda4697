package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestMakeMirrorCutOver runs docs/migration.md's online cut-over from the
// reference etcd into MetaStore with the doc's own commands: the block
// that starts `etcdctl make-mirror` while a writer keeps changing etcd
// (puts, overwrites, deletes, range deletes, multi-key txns), then, once
// the mirror has copied keys and the writer has gone on for 1500 more
// changes, writes stop and the block that makes the final sync, stops the
// mirror and verifies runs. MetaStore then holds exactly etcd's keys and
// values, which are what the writer wrote.
func TestMakeMirrorCutOver(t *testing.T) {
	src, dst := StartEtcd(t), StartMetaStore(t)
	start, finish := cutoverScript(t, "e2e:cutover-start"), cutoverScript(t, "e2e:cutover-finish")
	dir := t.TempDir()
	srcC, dstC := src.Client(t), dst.Client(t)

	w := &mirrorWriter{c: srcC, r: rand.New(rand.NewSource(1)), want: map[string]string{}}
	for i := 0; i < 2000; i += 100 {
		var ops []clientv3.Op
		for j := i; j < i+100; j++ {
			k, v := fmt.Sprintf("/app/%04d", j), fmt.Sprint("initial-", j)
			ops, w.want[k] = append(ops, clientv3.OpPut(k, v)), v
		}
		if _, err := srcC.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.step(); err != nil {
				t.Errorf("write to etcd: %v", err)
				return
			}
		}
	}()

	out := runCutover(t, dir, start, src, dst)
	pid := mirrorPID(t, dir, out)
	t.Cleanup(func() { stopMirror(pid) })

	// Writes go on while the mirror copies and then follows etcd.
	if !pollFor(time.Minute, func() bool {
		resp, err := dstC.Get(context.Background(), "/app/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count > 0
	}) {
		t.Fatal("the mirror copied nothing in a minute")
	}
	from := w.ops.Load()
	if !pollFor(time.Minute, func() bool { return w.ops.Load() >= from+1500 || t.Failed() }) {
		t.Fatal("no 1500 more writes to etcd in a minute")
	}
	close(stop) // step 2: writes stop
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	out = runCutover(t, dir, finish, src, dst)
	if !strings.Contains(out, "verified: ") {
		t.Fatalf("the cut-over did not verify:\n%s", out)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("make-mirror (pid %d) still runs after the cut-over", pid)
	}
	got, want := allKeyValues(t, dstC), allKeyValues(t, srcC)
	if len(got) != len(want) || len(want) != len(w.want) {
		t.Fatalf("MetaStore has %d keys, etcd %d, the writer wrote %d", len(got), len(want), len(w.want))
	}
	for k, v := range w.want {
		if got[k] != v || want[k] != v {
			t.Fatalf("key %s: MetaStore %q, etcd %q, written %q", k, got[k], want[k], v)
		}
	}
	t.Logf("%d writes to etcd (1500 or more while the mirror ran); %d keys in both; %s", w.ops.Load(), len(got), outputTail(out, 1))
}

// cutoverScript is the sh block after marker in docs/migration.md, the
// example endpoints line left out (the test sets SRC and DST).
func cutoverScript(t *testing.T, marker string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(RepoRoot(), "docs", "migration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- "+marker+" -->\n```sh\n")
	block, _, closed := strings.Cut(after, "```")
	if !ok || !closed {
		t.Fatalf("docs/migration.md has no sh block after <!-- %s -->", marker)
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if !strings.HasPrefix(l, "export SRC=") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// runCutover runs a block of the cut-over with bash in dir, with the
// reference etcdctl first on the PATH; it fails the test unless the block
// succeeds.
func runCutover(t *testing.T, dir, script string, src, dst *Server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SRC="+src.ClientURL(), "DST="+dst.ClientURL(),
		"PATH="+filepath.Dir(RefBin(t, "etcdctl"))+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "mirror.log"))
		t.Fatalf("%v\n%s\nscript:\n%s\nmirror.log:\n%s", err, out, script, log)
	}
	return string(out)
}

// stopMirror kills the mirror the cut-over started, if it still runs (the
// test failed before the cut-over stopped it): the pid is checked to be a
// make-mirror still, not a process that took the number since.
func stopMirror(pid int) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && strings.Contains(string(cmdline), "make-mirror") {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func mirrorPID(t *testing.T, dir, out string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "mirror.pid"))
	if err != nil {
		t.Fatalf("the mirror did not start: %v\n%s", err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func allKeyValues(t *testing.T, c *clientv3.Client) map[string]string {
	t.Helper()
	resp, err := c.Get(context.Background(), "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m
}

// mirrorWriter changes etcd as an application would, and remembers what
// the keyspace should hold.
type mirrorWriter struct {
	c    *clientv3.Client
	r    *rand.Rand
	want map[string]string
	ops  atomic.Int64
}

func (w *mirrorWriter) key() string { return fmt.Sprintf("/app/%04d", w.r.Intn(2500)) }

func (w *mirrorWriter) put(k, v string) error {
	_, err := w.c.Put(context.Background(), k, v)
	if err == nil {
		w.want[k] = v
	}
	return err
}

// step makes one change: mostly puts (new keys and overwrites), some
// deletes, range deletes and txns that put several keys at one revision.
func (w *mirrorWriter) step() error {
	defer w.ops.Add(1)
	ctx := context.Background()
	n := w.ops.Load()
	switch p := w.r.Intn(100); {
	case p < 70:
		return w.put(w.key(), fmt.Sprint("v", n))
	case p < 85:
		k := w.key()
		_, err := w.c.Delete(ctx, k)
		delete(w.want, k)
		return err
	case p < 90:
		from := w.key()
		end := from[:len(from)-1] + "9" // a few keys
		_, err := w.c.Delete(ctx, from, clientv3.WithRange(end))
		for k := range w.want {
			if k >= from && k < end {
				delete(w.want, k)
			}
		}
		return err
	default:
		ops, vals := []clientv3.Op{}, map[string]string{}
		for range 5 {
			k := w.key()
			if _, dup := vals[k]; !dup {
				vals[k] = fmt.Sprint("txn", n)
				ops = append(ops, clientv3.OpPut(k, vals[k]))
			}
		}
		if _, err := w.c.Txn(ctx).Then(ops...).Commit(); err != nil {
			return err
		}
		for k, v := range vals {
			w.want[k] = v
		}
		return nil
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestAutoCompactPeriodic: with --auto-compaction-retention=2s, MetaStore
// and etcd both keep the last 2 s of history and then compact the rest
// without being asked. Startup timing differs between the two, so the
// comparison is of what a client sees once writes have stopped: the
// compaction point reaches the last write, reads and watches before it
// fail as compacted, and the server logged etcd's compaction lines.
func TestAutoCompactPeriodic(t *testing.T) {
	flags := WithFlags("--auto-compaction-mode=periodic", "--auto-compaction-retention=2s")
	ms := StartMetaStore(t, flags)
	ref := StartEtcd(t, flags)
	shape := func(s *Server) []string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cli := s.Client(t)
		var out []string
		var last int64
		for i := 0; i < 5; i++ {
			r, err := cli.Put(ctx, "k", fmt.Sprint("v", i))
			if err != nil {
				t.Fatal(err)
			}
			last = r.Header.Revision
		}
		first := last - 4
		// Any compaction so far used a revision sampled at least 2 s
		// ago, before these writes: the first of them is still there.
		o, e, err := Etcdctl(t, s.Endpoint(), "get", "k", "--print-value-only", "--rev="+strconv.FormatInt(first, 10))
		out = append(out, fmt.Sprintf("right after the writes, get at their first revision: %q %v %s", o, err, lastLine(e)))

		start := time.Now()
		compactRev := func() int64 {
			r, err := cli.HashKV(ctx, s.Endpoint(), 0)
			if err != nil {
				t.Fatalf("%s: hashkv: %v", s.Name, err)
			}
			return r.CompactRevision
		}
		for compactRev() != last {
			if time.Since(start) > 20*time.Second {
				t.Fatalf("%s: compaction revision %d 20s after the writes, want %d", s.Name, compactRev(), last)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Not before a retention has passed since the writes (the window's
		// oldest sample is 2 s old); generous upper bound for slow runs.
		waited := time.Since(start)
		out = append(out, fmt.Sprintf("compaction reached the last write: %v", waited > time.Second))

		o, e, err = Etcdctl(t, s.Endpoint(), "get", "k", "--print-value-only", "--rev="+strconv.FormatInt(last-1, 10))
		out = append(out, fmt.Sprintf("get before the last write: %q %v %s", o, err != nil, lastLine(e)))
		o, e, err = Etcdctl(t, s.Endpoint(), "get", "k", "--print-value-only", "--rev="+strconv.FormatInt(last, 10))
		out = append(out, fmt.Sprintf("get at the last write: %q %v %s", o, err, lastLine(e)))
		_, err = cli.Get(ctx, "k", clientv3.WithRev(first))
		out = append(out, fmt.Sprintf("clientv3 get at the first write: %v", err))

		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		wr := <-cli.Watch(wctx, "k", clientv3.WithRev(first))
		out = append(out, fmt.Sprintf("watch from the first write: compact revision is the last write %v, canceled %v, err %v",
			wr.CompactRevision == last, wr.Canceled, wr.Err()))

		log := s.Log()
		for _, msg := range []string{"starting auto periodic compaction", "completed auto periodic compaction"} {
			out = append(out, fmt.Sprintf("logged %q: %v", msg, strings.Contains(log, `"msg":"`+msg+`"`)))
		}
		out = append(out, fmt.Sprintf("logged a failure: %v", strings.Contains(log, "failed auto periodic compaction")))
		return out
	}
	got, want := strings.Join(shape(ms), "\n"), strings.Join(shape(ref), "\n")
	if got != want {
		t.Fatalf("differs from etcd\netcd:\n%s\nmetastore:\n%s", want, got)
	}
	t.Logf("both:\n%s", got)
}

// TestAutoCompactRevisionMode: revision mode is accepted, and like etcd's
// it does not compact before its first check, five minutes after start.
// (Its compactions themselves are tested at the actor level, on a fake
// clock: waiting five minutes here is not practical.)
func TestAutoCompactRevisionMode(t *testing.T) {
	flags := WithFlags("--auto-compaction-mode=revision", "--auto-compaction-retention=10")
	ms := StartMetaStore(t, flags)
	ref := StartEtcd(t, flags)
	shape := func(s *Server) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cli := s.Client(t)
		for i := 0; i < 30; i++ {
			if _, err := cli.Put(ctx, fmt.Sprint("k", i%3), "v"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(500 * time.Millisecond)
		r, err := cli.HashKV(ctx, s.Endpoint(), 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cli.Get(ctx, "k0", clientv3.WithRev(2))
		return fmt.Sprintf("compact revision %d, get at 2: %v", r.CompactRevision, err)
	}
	got, want := shape(ms), shape(ref)
	if got != want {
		t.Fatalf("differs from etcd\netcd:      %s\nmetastore: %s", want, got)
	}
	t.Logf("both: %s", got)
}

// TestAutoCompactBadFlags: invalid values make both servers exit 1 with
// etcd's message and error.
func TestAutoCompactBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--auto-compaction-mode=hourly"},
		{"--auto-compaction-mode=hourly", "--auto-compaction-retention=0"},
		{"--auto-compaction-mode="},
		{"--auto-compaction-retention=abc"},
		{"--auto-compaction-retention=-1"},
		{"--auto-compaction-mode=revision", "--auto-compaction-retention=10x"},
	} {
		sameFailedStart(t, fmt.Sprint(args), args)
	}
}

// failedStart runs a server binary that should refuse to start, and
// describes how: its exit code and the msg and error of its last
// warn-or-worse JSON log line.
func failedStart(t *testing.T, bin string, args []string) string {
	t.Helper()
	return failedStartEnv(t, bin, args, nil)
}

// failedStartEnv is failedStart with ETCD_* variables env set (and
// none of this process's). A fatal line counts without an error field;
// when there is no log line at all (the flag package refused the command
// line), the first line of output says why.
func failedStartEnv(t *testing.T, bin string, args, env []string) string {
	t.Helper()
	dir := t.TempDir()
	client := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{
		"--name=bad", "--data-dir=" + filepath.Join(dir, "data"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=bad=" + peer,
	}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v kept running (killed after 20s):\n%s", filepath.Base(bin), args, out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var last, first string
	for _, line := range strings.Split(string(out), "\n") {
		var e struct{ Level, Msg, Error string }
		switch {
		case json.Unmarshal([]byte(line), &e) != nil:
			if first == "" {
				first = strings.ReplaceAll(line, filepath.Base(bin), "<bin>")
			}
		case e.Level == "fatal" || e.Level != "info" && e.Level != "debug" && e.Error != "":
			last = fmt.Sprintf("%q: %s", e.Msg, e.Error)
		}
	}
	if last == "" {
		last = first
	}
	return fmt.Sprintf("exit %d, %s", code, last)
}

// sameFailedStart checks that MetaStore and etcd both refuse to start
// with args, the same way (exit code, message and error).
func sameFailedStart(t *testing.T, what string, args []string) {
	t.Helper()
	ms := failedStart(t, MetaStoreBin(t), args)
	ref := failedStart(t, RefBin(t, "etcd"), args)
	if ms != ref {
		t.Errorf("%s: differs from etcd\netcd:      %s\nmetastore: %s", what, ref, ms)
	} else {
		t.Logf("%s: both %s", what, ms)
	}
}

// lastLine is the last non-empty line of s (etcdctl's error, after any
// client retry logs).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// `etcdctl check datascale` against MetaStore: its 10k puts of 1 KiB from
// 50 clients all succeed, it reads the member's resident memory from
// /metrics on the client URL before and after, reports it, and leaves its
// prefix empty (with --auto-compact and --auto-defrag, which it runs too).
func TestEtcdctlCheckDatascale(t *testing.T) {
	ms := StartMetaStore(t)
	out, stderr, err := Etcdctl(t, ms.Endpoint(), "check", "datascale", "--load", "s", "--auto-compact", "--auto-defrag")
	t.Logf("etcdctl check datascale --load s:\n%s", outputTail(out, 4))
	if err != nil || strings.Contains(out, "FAIL") {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	for _, want := range []string{
		"Start data scale check for work load [10000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients].",
		"PASS: Approximate system memory used : ",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in\n%s", want, out)
		}
	}
	requireNoKeysUnder(t, ms.Client(t), "/etcdctl-check-datascale/")
}

// `etcdctl check perf` against MetaStore, shortened: etcdctl's only load
// runs 60 s, so it is interrupted (as a user's Ctrl-C) once a thousand of
// its puts have landed; it then reports on what it did. Every put
// succeeded (no "FAIL: too many errors"), the three verdict lines are
// printed and the prefix is left empty. Whether the throughput and
// latencies PASS depends on the machine, not on MetaStore's behaviour, so
// they are logged, not required; METASTORE_LONG=1 runs the full minute.
func TestEtcdctlCheckPerf(t *testing.T) {
	ms := StartMetaStore(t)
	cmd := exec.Command(RefBin(t, "etcdctl"), "--endpoints="+ms.Endpoint(), "check", "perf", "--load", "s")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	var err error
	if os.Getenv("METASTORE_LONG") == "1" {
		err = <-done
	} else {
		c := ms.Client(t)
		for {
			resp, gerr := c.Get(context.Background(), "/etcdctl-check-perf/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if gerr != nil {
				t.Fatal(gerr)
			}
			if resp.Count >= 1000 {
				break
			}
			select {
			case err = <-done:
				t.Fatalf("check perf ended early: %v\n%s%s", err, out.String(), stderr.String())
			case <-time.After(200 * time.Millisecond):
			}
		}
		if serr := cmd.Process.Signal(os.Interrupt); serr != nil {
			t.Fatal(serr)
		}
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			t.Fatalf("check perf did not end after its interrupt\n%s%s", out.String(), stderr.String())
		}
	}
	t.Logf("etcdctl check perf --load s (exit: %v):\n%s", err, outputTail(out.String(), 5))
	if strings.Contains(out.String(), "too many errors") || strings.Contains(out.String(), "Cleanup failed") {
		t.Fatalf("requests failed:\n%s%s", out.String(), stderr.String())
	}
	for _, want := range []string{"Throughput", "Slowest request took", "Stddev"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("no %q line in\n%s%s", want, out.String(), stderr.String())
		}
	}
	requireNoKeysUnder(t, ms.Client(t), "/etcdctl-check-perf/")
}

func requireNoKeysUnder(t *testing.T, c *clientv3.Client, prefix string) {
	t.Helper()
	resp, err := c.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("keys left under %s: %v, %v", prefix, resp, err)
	}
}

// outputTail is the last n lines of s (etcdctl's progress bar aside).
func outputTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

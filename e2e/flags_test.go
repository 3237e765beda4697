package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEtcdFlagsAccepted: a typical etcd command line, with flags MetaStore
// does not implement, in both "--f=v" and "--f v" forms, still serves.
func TestEtcdFlagsAccepted(t *testing.T) {
	s := StartMetaStore(t, WithFlags(
		"--auto-compaction-retention=1",
		"--auto-compaction-mode", "periodic",
		"--enable-pprof",
		"--quota-backend-bytes=8589934592",
		"--snapshot-count", "5000",
		"--heartbeat-interval=100", "--election-timeout=1000",
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "tok",
		"--logger", "zap",
	))
	if out, stderr, err := Etcdctl(t, s.Endpoint(), "put", "k", "v"); err != nil || out != "OK\n" {
		t.Fatalf("put: %q %v %s", out, err, stderr)
	}
	if out, _, err := Etcdctl(t, s.Endpoint(), "get", "k", "--print-value-only"); err != nil || out != "v\n" {
		t.Fatalf("get: %q %v", out, err)
	}
	s.Stop()
}

func TestEtcdFlagsVersion(t *testing.T) {
	out, err := exec.Command(MetaStoreBin(t), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "etcd Version: 3.7.") {
			found = true
		}
	}
	if !found {
		t.Fatalf("--version output has no line \"etcd Version: 3.7.*\":\n%s", out)
	}
}

func TestEtcdFlagsUnknownRejected(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, MetaStoreBin(t), "--no-such-flag",
		"--data-dir="+filepath.Join(dir, "d"),
		"--listen-client-urls=http://127.0.0.1:"+strconv.Itoa(FreePort(t)),
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(FreePort(t)))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("metastore --no-such-flag kept running (killed after 20s):\n%s", out)
	}
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("metastore --no-such-flag: err %v, want a non-zero exit\n%s", err, out)
	}
	if !strings.Contains(string(out), "no-such-flag") {
		t.Errorf("error output does not name the flag:\n%s", out)
	}
}

// TestEtcdFlagsDefaultDataDir: without --data-dir the data goes to
// <name>.metastore in the working directory.
func TestEtcdFlagsDefaultDataDir(t *testing.T) {
	wd := t.TempDir()
	cport, pport := FreePort(t), FreePort(t)
	client := "http://127.0.0.1:" + strconv.Itoa(cport)
	peer := "http://127.0.0.1:" + strconv.Itoa(pport)
	cmd := exec.Command(MetaStoreBin(t), "--name=dd",
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=dd="+peer)
	cmd.Dir = wd
	logPath := filepath.Join(t.TempDir(), "log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	endpoint := "127.0.0.1:" + strconv.Itoa(cport)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if out, _, err := Etcdctl(t, endpoint, "--command-timeout=1s", "put", "k", "v"); err == nil && out == "OK\n" {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("server without --data-dir did not serve within 20s; log:\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fi, err := os.Stat(filepath.Join(wd, "dd.metastore"))
	if err != nil || !fi.IsDir() {
		entries, _ := os.ReadDir(wd)
		t.Fatalf("no data dir dd.metastore in the working dir: %v (entries %v)", err, entries)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit status %d after SIGTERM, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("did not exit within 20s of SIGTERM")
	}
}

// --feature-gates is parsed as etcd parses it: InitialCorruptCheck makes a
// member with data check its store before serving (and log it as etcd
// does); an unknown gate stops the server with etcd's message.
func TestFeatureGates(t *testing.T) {
	ms := StartMetaStore(t)
	if _, errOut, err := Etcdctl(t, ms.Endpoint(), "put", "a", "1"); err != nil {
		t.Fatalf("put: %v %s", err, errOut)
	}
	ms.Stop()
	ms2 := StartMetaStore(t, WithDataDir(ms.DataDir), WithFlags("--feature-gates=InitialCorruptCheck=true"))
	if out, _, err := Etcdctl(t, ms2.Endpoint(), "get", "a", "--print-value-only"); err != nil || out != "1\n" {
		t.Fatalf("get after the check: %q %v", out, err)
	}
	if !strings.Contains(ms2.Log(), "initial corruption checking passed; no corruption") {
		t.Fatal("no initial corruption check in the log")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, MetaStoreBin(t), "--data-dir", t.TempDir(), "--feature-gates=NoSuchGate=true").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unrecognized feature gate: NoSuchGate") {
		t.Fatalf("unknown gate: %v %s", err, out)
	}
}

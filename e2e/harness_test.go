package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestRepoRoot(t *testing.T) {
	root := RepoRoot()
	for _, p := range []string{"go.mod", "scripts/build-ref.sh", "e2e/harness.go"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("RepoRoot() = %s, but: %v", root, err)
		}
	}
}

// TestHarnessWithReferenceEtcd checks the harness itself against the
// reference etcd: clientv3 and etcdctl round trips, kill -9 and restart on
// the same data dir and ports, and a clean stop.
func TestHarnessWithReferenceEtcd(t *testing.T) {
	s := StartEtcd(t)
	if !strings.HasPrefix(s.Endpoint(), "127.0.0.1:") || s.ClientPort == s.PeerPort {
		t.Fatalf("bad endpoint/ports: %s client=%d peer=%d", s.Endpoint(), s.ClientPort, s.PeerPort)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// clientv3 put, etcdctl get.
	cli := s.Client(t)
	if _, err := cli.Put(ctx, "from-client", "v1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	out, stderr, err := Etcdctl(t, s.Endpoint(), "get", "from-client", "--print-value-only")
	if err != nil || out != "v1\n" {
		t.Fatalf("etcdctl get = %q, %v (stderr %q); want \"v1\\n\"", out, err, stderr)
	}

	// etcdctl put, clientv3 get.
	if out, stderr, err := Etcdctl(t, s.Endpoint(), "put", "from-etcdctl", "v2"); err != nil || out != "OK\n" {
		t.Fatalf("etcdctl put = %q, %v (stderr %q)", out, err, stderr)
	}
	mustGet(ctx, t, s, "from-etcdctl", "v2")

	// etcdctl failures surface as errors.
	if _, _, err := Etcdctl(t, s.Endpoint(), "no-such-command"); err == nil {
		t.Errorf("etcdctl with a bogus command: want an error")
	}

	// kill -9, restart on the same data dir and ports: both values survive.
	oldPid, oldEndpoint := s.Pid(), s.Endpoint()
	s.Kill()
	if s.Running() {
		t.Fatalf("still running after Kill")
	}
	s.Restart(t)
	if s.Pid() == oldPid || s.Endpoint() != oldEndpoint {
		t.Fatalf("restart: pid %d->%d endpoint %s->%s", oldPid, s.Pid(), oldEndpoint, s.Endpoint())
	}
	mustGet(ctx, t, s, "from-client", "v1")
	mustGet(ctx, t, s, "from-etcdctl", "v2")
	// The first client reconnects by itself.
	if _, err := cli.Put(ctx, "after-restart", "v3"); err != nil {
		t.Fatalf("put through the old client after restart: %v", err)
	}

	s.Stop()
	if s.Running() || s.ExitState() == nil {
		t.Fatalf("still running after Stop")
	}
	if n := strings.Count(s.Log(), ReadyLine); n != 2 {
		t.Errorf("log has %d %q lines, want 2 (one per start)", n, ReadyLine)
	}

	// A graceful restart after Stop works too.
	s.Restart(t)
	mustGet(ctx, t, s, "after-restart", "v3")
}

func TestStartEtcdOptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "custom-data")
	s := StartEtcd(t, WithName("custom"), WithDataDir(dir), WithFlags("--snapshot-count=50"))
	if s.DataDir != dir || s.Name != "custom" {
		t.Fatalf("DataDir %q Name %q", s.DataDir, s.Name)
	}
	out, _, err := Etcdctl(t, s.Endpoint(), "member", "list")
	if err != nil || !strings.Contains(out, "custom") {
		t.Fatalf("member list = %q, %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "member")); err != nil {
		t.Fatalf("data dir not used: %v", err)
	}
	s.Stop()
	if out, stderr, err := Etcdutl(t, "snapshot", "status", filepath.Join(dir, "member", "snap", "db"), "-w", "json"); err != nil {
		t.Fatalf("etcdutl snapshot status: %v (%q %q)", err, out, stderr)
	}
}

func mustGet(ctx context.Context, t *testing.T, s *Server, key, want string) {
	t.Helper()
	resp, err := s.Client(t).Get(ctx, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != want {
		t.Fatalf("get %q = %v, want %q", key, resp.Kvs, want)
	}
}

// With --log-level=error etcd never logs ReadyLine; readiness then comes
// from the Status probe.
func TestReadyWithoutReadyLine(t *testing.T) {
	s := StartEtcd(t, WithFlags("--log-level=error"))
	if strings.Contains(s.Log(), ReadyLine) {
		t.Fatalf("log unexpectedly has %q", ReadyLine)
	}
	if _, _, err := Etcdctl(t, s.Endpoint(), "put", "k", "v"); err != nil {
		t.Fatal(err)
	}
}

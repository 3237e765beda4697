package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// launched is a server process started by the configuration tests, with
// its combined output in a file.
type launched struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// launch starts bin with args and env (on top of this process's
// environment, minus any ETCD_* of its own) in dir.
func launch(t *testing.T, bin, dir string, args, env []string) *launched {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	l := &launched{cmd: cmd, log: filepath.Join(dir, filepath.Base(bin)+".log"), done: make(chan struct{})}
	f, err := os.Create(l.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); f.Close(); close(l.done) }()
	t.Cleanup(l.stop)
	return l
}

func (l *launched) stop() {
	select {
	case <-l.done:
		return
	default:
	}
	_ = l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.done:
	case <-time.After(20 * time.Second):
		_ = l.cmd.Process.Kill()
		<-l.done
	}
}

func (l *launched) output() string {
	b, _ := os.ReadFile(l.log)
	return string(b)
}

// waitServing waits until a put through endpoint succeeds.
func (l *launched) waitServing(t *testing.T, endpoint string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out, _, err := Etcdctl(t, endpoint, "--command-timeout=1s", "put", "k", "v"); err == nil && out == "OK\n" {
			return
		}
		select {
		case <-l.done:
			t.Fatalf("exited before serving:\n%s", l.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving within 30s:\n%s", l.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startLine is the settings of the "starting an etcd server" line, minus
// where they came from and what differs between binaries.
func startLine(t *testing.T, log string) map[string]string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil || m["msg"] != "starting an etcd server" {
			continue
		}
		out := map[string]string{}
		for k, v := range m {
			switch k {
			case "ts", "caller", "config-file", "level", "msg":
				continue
			}
			b, _ := json.Marshal(v)
			out[k] = string(b)
		}
		return out
	}
	t.Fatalf("no \"starting an etcd server\" line:\n%s", log)
	return nil
}

// memberView is what `etcdctl member list` and `endpoint status` show of a
// one-member cluster, in a form two servers can be compared by.
func memberView(t *testing.T, endpoint string) string {
	t.Helper()
	out, errOut, err := Etcdctl(t, endpoint, "member", "list", "-w", "json")
	if err != nil {
		t.Fatalf("member list: %v %s", err, errOut)
	}
	var ml struct {
		Header struct {
			ClusterID uint64 `json:"cluster_id"`
		}
		Members []struct {
			ID         uint64   `json:"ID"`
			Name       string   `json:"name"`
			PeerURLs   []string `json:"peerURLs"`
			ClientURLs []string `json:"clientURLs"`
			IsLearner  bool     `json:"isLearner"`
		}
	}
	if err := json.Unmarshal([]byte(out), &ml); err != nil {
		t.Fatalf("member list: %v\n%s", err, out)
	}
	st, errOut, err := Etcdctl(t, endpoint, "endpoint", "status", "-w", "json")
	if err != nil {
		t.Fatalf("endpoint status: %v %s", err, errOut)
	}
	var es []struct {
		Status struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
			}
			Version string `json:"version"`
			Leader  uint64 `json:"leader"`
		}
	}
	if err := json.Unmarshal([]byte(st), &es); err != nil || len(es) != 1 {
		t.Fatalf("endpoint status: %v\n%s", err, st)
	}
	b, _ := json.Marshal(ml)
	return fmt.Sprintf("%s status: member=%x leader=%x version=%s", b, es[0].Status.Header.MemberID, es[0].Status.Leader, es[0].Status.Version)
}

// TestConfigFourWays: one member's configuration given as flags, as a
// config file, as ETCD_* variables, and as etcd's own sample config file
// (etcd.conf.yml.sample as etcd ships it, only its name, data dir and URLs
// changed) starts MetaStore with the same settings — the whole logged
// start line — and the same member and cluster ids; the reference etcd
// started with that sample file reports the same member list.
func TestConfigFourWays(t *testing.T) {
	sample, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "testdata", "etcd.conf.yml.sample"))
	if err != nil {
		t.Fatal(err)
	}
	cport, pport := FreePort(t), FreePort(t)
	client := "http://127.0.0.1:" + strconv.Itoa(cport)
	peer := "http://127.0.0.1:" + strconv.Itoa(pport)
	endpoint := "127.0.0.1:" + strconv.Itoa(cport)
	base := t.TempDir()
	dataDir := func(way string) string { return filepath.Join(base, way, "data") }

	// The sample, pointed at this test's name, dir and ports.
	sampleFor := func(dir string) string {
		s := string(sample)
		for _, r := range []struct{ key, val string }{
			{"name", "'cfg'"}, {"data-dir", dir},
			{"listen-peer-urls", peer}, {"initial-advertise-peer-urls", peer},
			{"listen-client-urls", client}, {"advertise-client-urls", client},
			{"initial-cluster", "cfg=" + peer},
		} {
			re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(r.key) + `:.*$`)
			if !re.MatchString(s) {
				t.Fatalf("sample has no %s key", r.key)
			}
			s = re.ReplaceAllString(s, r.key+": "+r.val)
		}
		return s
	}
	// The sample's settings as flags (what differs from the defaults, and
	// some defaults too).
	flagsFor := func(dir string) []string {
		return []string{
			"--name=cfg", "--data-dir=" + dir,
			"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
			"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
			"--initial-cluster=cfg=" + peer, "--initial-cluster-token=etcd-cluster", "--initial-cluster-state=new",
			"--snapshot-count=10000", "--heartbeat-interval=100", "--election-timeout=1000",
			"--quota-backend-bytes=0", "--max-snapshots=5", "--max-wals=5",
			"--strict-reconfig-check=false", "--enable-pprof=true", "--self-signed-cert-validity=1",
			"--log-level=debug", "--logger=zap", "--log-outputs=stderr", "--force-new-cluster=false",
			"--auto-compaction-mode=periodic", "--auto-compaction-retention=1",
			"--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
			"--tls-min-version=TLS1.2", "--tls-max-version=TLS1.3",
		}
	}
	envOf := func(flags []string) []string {
		var env []string
		for _, f := range flags {
			k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
			env = append(env, "ETCD_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))+"="+v)
		}
		return env
	}
	// The same as a config file of MetaStore's writing (not etcd's sample).
	fileFor := func(dir string) string {
		return fmt.Sprintf(`name: cfg
data-dir: %s
listen-peer-urls: %s
initial-advertise-peer-urls: %s
listen-client-urls: %s
advertise-client-urls: %s
initial-cluster: cfg=%s
initial-cluster-token: etcd-cluster
initial-cluster-state: new
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
max-snapshots: 5
max-wals: 5
strict-reconfig-check: false
enable-pprof: true
self-signed-cert-validity: 1
log-level: debug
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
tls-min-version: TLS1.2
tls-max-version: TLS1.3
`, dir, peer, peer, client, client, peer)
	}
	write := func(name, body string) string {
		p := filepath.Join(base, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	type way struct {
		name      string
		bin       string
		args, env []string
	}
	ms := MetaStoreBin(t)
	ways := []way{
		{"flags", ms, flagsFor(dataDir("flags")), nil},
		{"file", ms, []string{"--config-file", write("metastore.yaml", fileFor(dataDir("file")))}, nil},
		{"env", ms, nil, envOf(flagsFor(dataDir("env")))},
		{"sample", ms, nil, []string{"ETCD_CONFIG_FILE=" + write("sample.yaml", sampleFor(dataDir("sample")))}},
		{"etcd-sample", RefBin(t, "etcd"), []string{"--config-file", write("etcd-sample.yaml", sampleFor(dataDir("etcd")))}, nil},
	}
	lines := map[string]map[string]string{}
	views := map[string]string{}
	for _, w := range ways {
		dir := filepath.Join(base, w.name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		l := launch(t, w.bin, dir, w.args, w.env)
		l.waitServing(t, endpoint)
		views[w.name] = memberView(t, endpoint)
		// The sample sets enable-pprof: the profiling endpoint serves.
		if out, err := exec.Command("curl", "-sf", "-o", "/dev/null", "-w", "%{http_code}", client+"/debug/pprof/").Output(); err != nil || string(out) != "200" {
			t.Errorf("%s: /debug/pprof/ answered %q %v (enable-pprof is set)", w.name, out, err)
		}
		l.stop()
		out := l.output()
		if w.bin == ms {
			lines[w.name] = startLine(t, out)
			// log-level debug is in effect.
			if !strings.Contains(out, `"level":"debug"`) {
				t.Errorf("%s: no debug line though log-level is debug", w.name)
			}
		}
		if err := os.RemoveAll(dataDir(w.name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"file", "env", "sample"} {
		for k, v := range lines["flags"] {
			if k == "data-dir" {
				continue
			}
			if lines[name][k] != v {
				t.Errorf("%s: %s = %s, with flags %s", name, k, lines[name][k], v)
			}
		}
		if len(lines[name]) != len(lines["flags"]) {
			t.Errorf("%s logs %d settings, flags %d", name, len(lines[name]), len(lines["flags"]))
		}
	}
	var names []string
	for n := range views {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if views[n] != views["flags"] {
			t.Errorf("%s: %s\nflags: %s", n, views[n], views["flags"])
		}
	}
	t.Logf("every way: %s", views["flags"])
}

// TestConfigRefusalsAsEtcd: command lines and variables etcd 3.7 refuses
// are refused by MetaStore the same way: exit code, message and error.
func TestConfigRefusalsAsEtcd(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
	}{
		{args: []string{"--experimental-initial-corrupt-check"}},
		{args: []string{"--initial-cluster-state=maybe"}},
		{args: []string{"--discovery"}},
		{args: []string{"--heartbeat-interval=0"}},
		{args: []string{"--election-timeout=400", "--heartbeat-interval=100"}},
		{args: []string{"--election-timeout=60000"}},
		{args: []string{"--listen-client-urls=http://example.com:2379"}},
		{args: []string{"--listen-peer-urls=http://127.0.0.1"}},
		{args: []string{"--discovery-token=abc"}},
		{args: []string{"--discovery-token=abc", "--discovery-endpoints=127.0.0.1:1"}},
		{args: []string{"--discovery-fallback=proxy"}},
		{args: []string{"--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"}},
		{args: []string{"--tls-min-version=TLS1.3", "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}},
		{args: []string{"--tls-min-version=TLS1.0"}},
		{args: []string{"--logger=capnslog"}},
		{args: []string{"--log-outputs=default,stderr"}},
		{args: []string{"--log-format=xml"}},
		{args: []string{"--enable-log-rotation"}},
		{args: []string{"--compact-hash-check-time=0s"}},
		{args: []string{"--feature-gates=LeaseCheckpointPersist=true"}},
		{env: []string{"ETCD_INITIAL_CLUSTER_STATE=bar", "ETCD_NO_SUCH_THING=1"}},
		{env: []string{"ETCD_NAME=other"}},
		{env: []string{"ETCD_SNAPSHOT_COUNT=many"}},
	} {
		what := fmt.Sprint(tc.args, tc.env)
		ms := failedStartEnv(t, MetaStoreBin(t), tc.args, tc.env)
		ref := failedStartEnv(t, RefBin(t, "etcd"), tc.args, tc.env)
		if ms != ref {
			t.Errorf("%s: differs from etcd\netcd:      %s\nmetastore: %s", what, ref, ms)
		} else {
			t.Logf("%s: both %s", what, ms)
		}
	}
}

// TestConfigNotBuiltRefused: settings etcd acts on and MetaStore does not
// build refuse the start, naming the setting, whether given as a flag, a
// variable or in a config file; left at etcd's default they are accepted.
func TestConfigNotBuiltRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		file string
		want string
	}{
		{args: []string{"--memory-mlock"}, want: "--memory-mlock is not supported by MetaStore"},
		{env: []string{"ETCD_ENABLE_DISTRIBUTED_TRACING=true"}, want: "--enable-distributed-tracing is not supported by MetaStore"},
		{file: "discovery-srv: example.com\n", want: "--discovery-srv is not supported by MetaStore"},
		{args: []string{"--feature-gates=CompactHashCheck=true"}, want: "--feature-gates=CompactHashCheck=true is not supported by MetaStore"},
		{file: "discovery: https://discovery.etcd.io/abc\n", want: "v2 discovery is not supported"},
		{file: "memory-mlock: true\n", want: "--memory-mlock is not supported by MetaStore"},
	} {
		args := tc.args
		if tc.file != "" {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			args = []string{"--config-file=" + p}
		}
		got := failedStartEnv(t, MetaStoreBin(t), args, tc.env)
		if !strings.HasPrefix(got, "exit 1, ") || !strings.Contains(got, tc.want) {
			t.Errorf("%v %v %q: %s, want exit 1 and %q", tc.args, tc.env, tc.file, got, tc.want)
		}
	}
}

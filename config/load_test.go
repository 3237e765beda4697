package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// load runs Load and returns what it logged, one "level msg key=value"
// line per entry.
func load(t *testing.T, args, env []string) (*Config, []string, error) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	c, err := Load(args, env, zap.New(core))
	var lines []string
	for _, e := range logs.All() {
		line := e.Level.String() + " " + e.Message
		ctx := e.ContextMap()
		keys := make([]string, 0, len(ctx))
		for k := range ctx {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			line += " " + k + "=" + strings.TrimSpace(strings.ReplaceAll(toString(ctx[k]), "\n", " "))
		}
		lines = append(lines, line)
	}
	return c, lines, err
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return strings.Trim(strings.ReplaceAll(reflect.ValueOf(v).String(), "<", ""), ">")
}

func hasLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// cluster is the same member's settings three ways.
var (
	clusterArgs = []string{
		"--name=m1", "--data-dir=/var/lib/m1",
		"--listen-peer-urls=http://127.0.0.1:12380", "--initial-advertise-peer-urls=http://127.0.0.1:12380",
		"--listen-client-urls=http://127.0.0.1:12379", "--advertise-client-urls=http://127.0.0.1:12379",
		"--initial-cluster=m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380",
		"--initial-cluster-token=tok", "--initial-cluster-state=existing",
		"--heartbeat-interval=50", "--election-timeout=500", "--snapshot-count=1234",
		"--auto-compaction-mode=revision", "--auto-compaction-retention=100",
		"--log-level=warn", "--enable-pprof", "--strict-reconfig-check=false",
		"--cors=http://a.example:8080", "--corrupt-check-time=3m",
		"--peer-cert-allowed-cn=peer", "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	}
	clusterEnv = []string{
		"ETCD_NAME=m1", "ETCD_DATA_DIR=/var/lib/m1",
		"ETCD_LISTEN_PEER_URLS=http://127.0.0.1:12380", "ETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:12380",
		"ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:12379", "ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:12379",
		"ETCD_INITIAL_CLUSTER=m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380",
		"ETCD_INITIAL_CLUSTER_TOKEN=tok", "ETCD_INITIAL_CLUSTER_STATE=existing",
		"ETCD_HEARTBEAT_INTERVAL=50", "ETCD_ELECTION_TIMEOUT=500", "ETCD_SNAPSHOT_COUNT=1234",
		"ETCD_AUTO_COMPACTION_MODE=revision", "ETCD_AUTO_COMPACTION_RETENTION=100",
		"ETCD_LOG_LEVEL=warn", "ETCD_ENABLE_PPROF=true", "ETCD_STRICT_RECONFIG_CHECK=false",
		"ETCD_CORS=http://a.example:8080", "ETCD_CORRUPT_CHECK_TIME=3m",
		"ETCD_PEER_CERT_ALLOWED_CN=peer", "ETCD_CIPHER_SUITES=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	}
	// Durations in etcd's file are nanoseconds (JSON numbers into
	// time.Duration), as etcd reads them.
	clusterFile = `
name: m1
data-dir: /var/lib/m1
listen-peer-urls: http://127.0.0.1:12380
initial-advertise-peer-urls: http://127.0.0.1:12380
listen-client-urls: http://127.0.0.1:12379
advertise-client-urls: http://127.0.0.1:12379
initial-cluster: m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380
initial-cluster-token: tok
initial-cluster-state: existing
heartbeat-interval: 50
election-timeout: 500
snapshot-count: 1234
auto-compaction-mode: revision
auto-compaction-retention: "100"
log-level: warn
enable-pprof: true
strict-reconfig-check: false
cors: http://a.example:8080
corrupt-check-time: 180000000000
peer-transport-security:
  allowed-cn: [peer]
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
`
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "etcd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// effective is a Config as the start line logs it, without where it came
// from.
func effective(c *Config) map[string]string {
	m := map[string]string{}
	for _, f := range c.LogFields() {
		if f.Key == "config-file" {
			continue
		}
		m[f.Key] = fieldString(f)
	}
	return m
}

// Flags, ETCD_* variables and a config file give the same configuration,
// down to every logged setting.
func TestSameConfigurationThreeWays(t *testing.T) {
	fromFlags, _, err := load(t, clusterArgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	fromEnv, envLog, err := load(t, nil, clusterEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(envLog, "info recognized and used environment variable") {
		t.Errorf("no line for the variables used: %v", envLog)
	}
	fromFile, fileLog, err := load(t, []string{"--config-file", writeFile(t, clusterFile)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !hasLine(fileLog, "info loaded server configuration, other configuration command line flags and environment variables will be ignored if provided") {
		t.Errorf("no line for the file: %v", fileLog)
	}
	want := effective(fromFlags)
	for name, c := range map[string]*Config{"env": fromEnv, "file": fromFile} {
		got := effective(c)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, flags give %q", name, k, got[k], v)
			}
		}
	}
	if fromFlags.CorruptCheckTime != 3*time.Minute || fromFlags.ElectionMs != 500 || !fromFlags.EnablePprof || fromFlags.StrictReconfigCheck {
		t.Errorf("flags not taken: %+v", fromFlags)
	}
}

// A variable for a flag given on the command line stops the start (etcd
// exits with a fatal line); one naming no flag is warned about; with a
// config file, neither flags nor variables apply.
func TestPrecedence(t *testing.T) {
	_, _, err := load(t, []string{"--name=a"}, []string{"ETCD_NAME=b"})
	var conflict *EnvConflictError
	if !errors.As(err, &conflict) || conflict.Variable != "ETCD_NAME" {
		t.Fatalf("flag and variable for --name: %v", err)
	}
	c, log, err := load(t, []string{"--name=a"}, []string{"ETCD_SNAPSHOT_COUNT=7", "ETCD_NO_SUCH=1"})
	if err != nil || c.Name != "a" || c.SnapshotCount != 7 {
		t.Fatalf("flag plus variable: %v %+v", err, c)
	}
	if !hasLine(log, "warn unrecognized environment variable environment-variable=ETCD_NO_SUCH=1") {
		t.Errorf("unknown variable not warned about: %v", log)
	}
	file := writeFile(t, "name: fromfile\n")
	for _, how := range []struct {
		args []string
		env  []string
	}{
		{[]string{"--config-file", file, "--name=flag"}, []string{"ETCD_SNAPSHOT_COUNT=7"}},
		{[]string{"--name=flag"}, []string{"ETCD_CONFIG_FILE=" + file, "ETCD_SNAPSHOT_COUNT=7"}},
	} {
		c, _, err := load(t, how.args, how.env)
		if err != nil || c.Name != "fromfile" || c.SnapshotCount != 10000 || c.ConfigFile != file {
			t.Errorf("%v %v: %v name=%q snapshot-count=%d", how.args, how.env, err, c.Name, c.SnapshotCount)
		}
	}
	if _, _, err := load(t, nil, []string{"ETCD_INITIAL_CLUSTER_STATE=bar"}); err == nil ||
		err.Error() != `invalid value "bar" for ETCD_INITIAL_CLUSTER_STATE: invalid value` {
		t.Errorf("bad variable value: %v", err)
	}
	if _, _, err := load(t, []string{"--bogus"}, nil); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown flag: %v", err)
	}
	if _, _, err := load(t, []string{"--version"}, nil); !errors.Is(err, ErrVersion) {
		t.Errorf("--version: %v", err)
	}
}

// etcd's sample config file (etcd.conf.yml.sample, as shipped) loads with
// its settings, v2-only keys skipped as etcd skips them.
func TestEtcdSampleConfig(t *testing.T) {
	c, log, err := load(t, []string{"--config-file", "testdata/etcd.conf.yml.sample"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "debug" || !c.EnablePprof || c.StrictReconfigCheck || c.AutoCompactionRetention != "1" ||
		c.TLSMaxVersion != "TLS1.3" || len(c.CipherSuites) != 2 || c.SnapshotCount != 10000 ||
		!reflect.DeepEqual(c.ListenClientURLs, []string{"http://localhost:2379"}) {
		t.Errorf("sample config read as %+v", c)
	}
	if hasLine(log, "warn unknown key") {
		t.Errorf("a key of etcd's sample is called unknown: %v", log)
	}
}

func TestConfigFileChecks(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"discovery: https://discovery.etcd.io/abc\n", "v2 discovery is not supported"},
		{"proxy: on\n", "the v2 proxy is not supported"},
		{"listen-client-urls: 127.0.0.1:2379\n", "unexpected error setting up listen-client-urls"},
		{"initial-cluster-state: maybe\n", `unexpected clusterState "maybe"`},
		{"memory-mlock: true\n", "--memory-mlock is not supported by MetaStore"},
		{"name: [a\n", "yaml"},
	} {
		_, _, err := load(t, []string{"--config-file", writeFile(t, tc.file)}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.file, err, tc.want)
		}
	}
	_, log, err := load(t, []string{"--config-file", writeFile(t, "nmae: typo\n")}, nil)
	if err != nil || !hasLine(log, "warn unknown key in the configuration file; ignored") {
		t.Errorf("unknown key: %v %v", err, log)
	}
}

// Settings MetaStore does not build refuse the start unless left at
// etcd's default; settings about etcd's own files are accepted and said
// so.
func TestNotBuiltAndNotApplicable(t *testing.T) {
	for _, args := range [][]string{
		{"--memory-mlock"},
		{"--enable-distributed-tracing"},
		{"--discovery-srv=example.com"},
		{"--raft-read-timeout=10s"},
		{"--feature-gates=CompactHashCheck=true"},
	} {
		name := strings.TrimPrefix(strings.SplitN(args[0], "=", 2)[0], "--")
		if _, _, err := load(t, args, nil); err == nil || !strings.Contains(err.Error(), "--"+name) ||
			!strings.Contains(err.Error(), "not supported by MetaStore") {
			t.Errorf("%v: %v", args, err)
		}
	}
	for _, args := range [][]string{
		{"--pre-vote=true", "--raft-read-timeout=5s", "--memory-mlock=false"},
	} {
		if _, _, err := load(t, args, nil); err != nil {
			t.Errorf("%v (etcd's defaults): %v", args, err)
		}
	}
	_, log, err := load(t, []string{"--max-wals=10", "--backend-batch-limit=5"}, nil)
	if err != nil || !hasLine(log, "info setting does not apply to MetaStore; accepted and without effect setting=max-wals") ||
		!hasLine(log, "info setting does not apply to MetaStore; accepted and without effect setting=backend-batch-limit") {
		t.Errorf("not applicable: %v %v", err, log)
	}
}

// The start line logs every setting but no secret.
func TestLogFieldsHideThePassword(t *testing.T) {
	c, _, err := load(t, []string{"--discovery-password=hunter2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := effective(c)
	if strings.Contains(m["discovery-config"], "hunter2") {
		t.Errorf("password logged: %s", m["discovery-config"])
	}
	for _, k := range []string{"snapshot-catchup-entries", "listen-client-urls", "heartbeat-interval", "log-outputs", "storage"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s in the start line", k)
		}
	}
}

// docs/operations.md lists every setting MetaStore refuses or does not
// need, so operators can read what a configuration will do.
func TestOperationsDocListsSettings(t *testing.T) {
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var names []string
	for _, s := range notBuilt {
		names = append(names, s.name)
	}
	for name := range notApplicable {
		names = append(names, name)
	}
	for _, name := range names {
		want := "`--" + name + "`"
		if gate, ok := strings.CutPrefix(name, "feature-gates="); ok {
			want = strings.TrimSuffix(gate, "=true")
		} else if strings.HasPrefix(name, "distributed-tracing-") {
			want = "`--distributed-tracing-*`"
		}
		if !strings.Contains(doc, want) {
			t.Errorf("docs/operations.md does not mention %s", want)
		}
	}
}

// --feature-gates=LeaseCheckpoint=true starts, with etcd's warning when
// LeaseCheckpointPersist is not on too; the interval is etcd's 5 minutes
// unless --lease-checkpoint-interval (MetaStore's) sets it, and must be
// positive.
func TestLeaseCheckpointSettings(t *testing.T) {
	const warn = "warn Detected that checkpointing is enabled without persistence. Consider enabling feature gate LeaseCheckpointPersist"
	c, log, err := load(t, []string{"--feature-gates=LeaseCheckpoint=true"}, nil)
	if err != nil || !hasLine(log, warn) || c.LeaseCheckpointInterval != 5*time.Minute {
		t.Fatalf("LeaseCheckpoint alone: %v, interval %v, log %v", err, c.LeaseCheckpointInterval, log)
	}
	c, log, err = load(t, []string{"--feature-gates=LeaseCheckpoint=true,LeaseCheckpointPersist=true"},
		[]string{"ETCD_LEASE_CHECKPOINT_INTERVAL=2s"})
	if err != nil || hasLine(log, warn) || c.LeaseCheckpointInterval != 2*time.Second {
		t.Fatalf("both gates, interval from the environment: %v, interval %v, log %v", err, c.LeaseCheckpointInterval, log)
	}
	if _, _, err := load(t, []string{"--lease-checkpoint-interval=0s"}, nil); err == nil ||
		err.Error() != "--lease-checkpoint-interval must be >0 (set to 0s)" {
		t.Fatalf("a zero interval: %v", err)
	}
}

// --memory-limit-bytes (MetaStore's) comes from a flag or ETCD_* and may
// not be negative.
func TestMemoryLimitSetting(t *testing.T) {
	c, _, err := load(t, nil, []string{"ETCD_MEMORY_LIMIT_BYTES=536870912"})
	if err != nil || c.MemoryLimitBytes != 512<<20 {
		t.Fatalf("from the environment: %v, %d", err, c.MemoryLimitBytes)
	}
	if _, _, err := load(t, []string{"--memory-limit-bytes=-1"}, nil); err == nil ||
		err.Error() != "--memory-limit-bytes must be >= 0 (set to -1)" {
		t.Fatalf("a negative limit: %v", err)
	}
}

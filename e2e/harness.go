// Package e2e drives real processes for end-to-end tests: the MetaStore
// server binary, and the reference etcd tools (etcd, etcdctl, etcdutl) built
// from the versions pinned in tools/ by scripts/build-ref.sh.
//
// It is an ordinary (non-test) package so that tests here and in other
// packages can import it. Typical use:
//
//	func TestMain(m *testing.M) { e2e.Main(m) } // optional: removes the temp MetaStore build
//
//	func TestPutSurvivesKill(t *testing.T) {
//		s := e2e.StartMetaStore(t)
//		cli := s.Client(t)
//		if _, err := cli.Put(ctx, "k", "v"); err != nil { t.Fatal(err) }
//		s.Kill()
//		s.Restart(t)
//		out, _, err := e2e.Etcdctl(t, s.Endpoint(), "get", "k", "--print-value-only")
//		...
//	}
//
// Environment:
//
//	METASTORE_BIN          use this MetaStore binary instead of building ./cmd/metastore
//	                       (a relative path is taken from the repository root)
//	METASTORE_BUILD_FLAGS  extra `go build` flags for that build, e.g. "-race"
//	REF_BIN                use this directory's etcd/etcdctl/etcdutl instead of
//	                       <repo>/.ref/bin (then nothing is built)
//
// Servers run on free loopback ports with a fresh data dir under t.TempDir(),
// their stdout and stderr go to a log file whose tail is shown when the test
// fails, and they are killed when the test ends.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/testkit"
)

// ModulePath is the import path of the repository's root module.
const ModulePath = "github.com/metastore/metastore"

// ReadyLine is the log message that etcd and MetaStore print once they serve
// client requests.
const ReadyLine = "ready to serve client requests"

const (
	defaultStartTimeout = 30 * time.Second
	defaultStopTimeout  = 30 * time.Second
	logTailLines        = 150
)

// ---------------------------------------------------------------------------
// Repository and binaries

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot returns the absolute path of the repository root: the nearest
// directory, from the working directory (or else this source file) upwards,
// whose go.mod declares ModulePath. It panics if there is none.
func RepoRoot() string {
	rootOnce.Do(func() {
		var starts []string
		if wd, err := os.Getwd(); err == nil {
			starts = append(starts, wd)
		}
		if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
			starts = append(starts, filepath.Dir(file))
		}
		for _, dir := range starts {
			if root, ok := findModuleRoot(dir); ok {
				rootDir = root
				return
			}
		}
		rootErr = fmt.Errorf("e2e: no go.mod declaring module %s above %v", ModulePath, starts)
	})
	if rootErr != nil {
		panic(rootErr)
	}
	return rootDir
}

func findModuleRoot(dir string) (string, bool) {
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePathOf(data) == ModulePath {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func modulePathOf(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`)
		}
	}
	return ""
}

var (
	msOnce sync.Once
	msBin  string
	msErr  error
	msDir  string // temp dir holding our own build, removed by Main
)

// MetaStoreBin returns the MetaStore server binary: $METASTORE_BIN if set,
// otherwise ./cmd/metastore built with `go build` once per test binary into a
// temp dir. It fails the test if the binary cannot be had.
func MetaStoreBin(t testing.TB) string {
	t.Helper()
	msOnce.Do(func() {
		if p := os.Getenv("METASTORE_BIN"); p != "" {
			if !filepath.IsAbs(p) {
				p = filepath.Join(RepoRoot(), p)
			}
			msBin, msErr = p, checkExecutable(p)
			return
		}
		dir, err := os.MkdirTemp("", "metastore-e2e-bin-")
		if err != nil {
			msErr = err
			return
		}
		msDir = dir
		out := filepath.Join(dir, "metastore")
		args := []string{"build", "-o", out}
		args = append(args, strings.Fields(os.Getenv("METASTORE_BUILD_FLAGS"))...)
		args = append(args, "./cmd/metastore")
		cmd := exec.Command("go", args...)
		cmd.Dir = RepoRoot()
		if output, err := cmd.CombinedOutput(); err != nil {
			msErr = fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), cmd.Dir, err, output)
			return
		}
		msBin = out
	})
	if msErr != nil {
		t.Fatalf("e2e: no MetaStore binary: %v", msErr)
	}
	return msBin
}

var (
	refOnce sync.Once
	refDir  string
	refErr  error
)

// RefDir returns the directory holding the reference tools: $REF_BIN if set,
// otherwise <repo>/.ref/bin after running scripts/build-ref.sh once per test
// binary (a no-op when the binaries are up to date with tools/*/go.mod).
func RefDir(t testing.TB) string {
	t.Helper()
	refOnce.Do(func() {
		if p := os.Getenv("REF_BIN"); p != "" {
			if !filepath.IsAbs(p) {
				p = filepath.Join(RepoRoot(), p)
			}
			refDir = p
			return
		}
		root := RepoRoot()
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "build-ref.sh"))
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			refErr = fmt.Errorf("scripts/build-ref.sh: %v\n%s", err, stderr.Bytes())
			return
		}
		refDir = strings.TrimSpace(string(out))
	})
	if refErr != nil {
		t.Fatalf("e2e: cannot build the reference tools: %v", refErr)
	}
	return refDir
}

// RefBin returns the path of a reference tool ("etcd", "etcdctl", "etcdutl"
// or "benchmark"), building the tools first if needed. It fails (never skips)
// the test if the tool cannot be had.
func RefBin(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(RefDir(t), name)
	if err := checkExecutable(p); err != nil {
		t.Fatalf("e2e: reference tool %q: %v", name, err)
	}
	return p
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// Main runs the tests and then removes the temp dir of the MetaStore build.
// Use it as `func TestMain(m *testing.M) { e2e.Main(m) }`; without it that
// build (one binary per test binary run) is left in the system temp dir.
func Main(m *testing.M) {
	code := m.Run()
	if msDir != "" {
		_ = os.RemoveAll(msDir)
	}
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Tools

// Etcdctl runs the reference etcdctl against endpoint ("127.0.0.1:port")
// with args, and returns its stdout and stderr. err is non-nil if it could
// not run or exited non-zero; it is given a minute.
func Etcdctl(t testing.TB, endpoint string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return run(RefBin(t, "etcdctl"), append([]string{"--endpoints=" + endpoint}, args...), time.Minute)
}

// Etcdutl runs the reference etcdutl with args (see Etcdctl).
func Etcdutl(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return run(RefBin(t, "etcdutl"), args, time.Minute)
}

func run(bin string, args []string, timeout time.Duration) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), err
}

// ---------------------------------------------------------------------------
// Ports

// FreePort returns a loopback TCP port that was free a moment ago, outside
// the ephemeral range, and that this process has not handed out before
// (testkit.FreePort).
func FreePort(t testing.TB) int {
	t.Helper()
	return testkit.FreePort(t)
}

// ---------------------------------------------------------------------------
// Servers

// Kind says which server a Server runs.
type Kind string

const (
	KindMetaStore Kind = "metastore"
	KindEtcd      Kind = "etcd"
)

// Option configures StartMetaStore and StartEtcd.
type Option func(*config)

type config struct {
	name            string
	dataDir         string
	bin             string
	flags           []string
	env             []string
	clientPort      int
	peerPort        int
	startTimeout    time.Duration
	allowSignalExit *bool
	initialCluster  string // --initial-cluster; default: this member alone
	clientTLS       bool   // https client URLs
	peerTLS         bool   // https peer URLs
	// peerFront, when set, is asked by StartCluster for the URL a member
	// advertises to its peers instead of its own peer URL (see
	// WithPeerFront).
	peerFront func(name string, peerPort int) string
	// discovery are the --discovery-* flags that replace
	// --initial-cluster (WithDiscovery).
	discovery []string
}

func (c *config) clientScheme() string {
	if c.clientTLS {
		return "https"
	}
	return "http"
}

func (c *config) peerScheme() string {
	if c.peerTLS {
		return "https"
	}
	return "http"
}

// WithHTTPS makes the client and/or peer URLs https (pass the certificate
// flags with WithFlags). Readiness is then seen in the log only.
func WithHTTPS(client, peer bool) Option {
	return func(c *config) { c.clientTLS, c.peerTLS = client, peer }
}

// WithName sets the member name (--name); by default "<kind>-<n>".
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithDataDir uses dir as the data dir instead of a fresh one in t.TempDir().
func WithDataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithFlags appends flags after the standard ones (so, with Go's flag
// parsing, they override them), e.g. WithFlags("--snapshot-count=100").
func WithFlags(flags ...string) Option {
	return func(c *config) { c.flags = append(c.flags, flags...) }
}

// WithEnv adds "KEY=value" entries to the server's environment.
func WithEnv(kv ...string) Option { return func(c *config) { c.env = append(c.env, kv...) } }

// WithBinary runs this binary instead of the default one for the kind.
func WithBinary(path string) Option { return func(c *config) { c.bin = path } }

// WithPorts uses these client and peer ports instead of free ones (e.g. to
// build a multi-member --initial-cluster with FreePort beforehand).
func WithPorts(client, peer int) Option {
	return func(c *config) { c.clientPort, c.peerPort = client, peer }
}

// WithPeerFront makes StartCluster ask front, once each member's ports are
// chosen, for the URL the member advertises to its peers (in
// --initial-advertise-peer-urls and everyone's --initial-cluster) while it
// still listens on its own peer port: e.g. a proxy that forwards to that
// port and can cut the link. PeerURL then returns the advertised URL.
func WithPeerFront(front func(name string, peerPort int) (url string)) Option {
	return func(c *config) { c.peerFront = front }
}

// WithDiscovery bootstraps the member through an etcd v3 discovery
// service instead of --initial-cluster (which etcd refuses alongside):
// --discovery-token=token --discovery-endpoints=endpoints.
func WithDiscovery(token string, endpoints ...string) Option {
	return func(c *config) {
		c.discovery = []string{"--discovery-token=" + token, "--discovery-endpoints=" + strings.Join(endpoints, ",")}
	}
}

// WithStartTimeout bounds the wait for readiness (default 30s).
func WithStartTimeout(d time.Duration) Option { return func(c *config) { c.startTimeout = d } }

// AllowSignalExit makes Stop accept death by the SIGTERM it sent as a clean
// exit, besides exit status 0. It is the default for etcd, which re-raises
// SIGTERM after its graceful shutdown; MetaStore must exit 0 unless given it.
func AllowSignalExit(allow bool) Option {
	return func(c *config) { c.allowSignalExit = &allow }
}

// Server is a running (or stopped) server process. Its methods are meant for
// the test goroutine.
type Server struct {
	Kind       Kind
	Name       string
	Bin        string
	DataDir    string
	ClientPort int
	PeerPort   int
	// LogFile receives the server's stdout and stderr, across restarts.
	LogFile string
	// advertisedPeer is the peer URL advertised instead of the listening
	// one (WithPeerFront); "" advertises the listening one.
	advertisedPeer string

	t      testing.TB
	cfg    config
	starts int

	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has been waited for
	state *os.ProcessState
}

var nameSeq struct {
	sync.Mutex
	n map[Kind]int
}

// StartMetaStore starts the MetaStore server (see MetaStoreBin) as a
// single-member cluster and waits until it serves clients.
func StartMetaStore(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return start(t, KindMetaStore, opts)
}

// StartEtcd starts the reference etcd as a single-member cluster and waits
// until it serves clients.
func StartEtcd(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return start(t, KindEtcd, opts)
}

func start(t testing.TB, kind Kind, opts []Option) *Server {
	t.Helper()
	s := newServer(t, kind, opts)
	autoPorts := s.cfg.clientPort == 0 && s.cfg.peerPort == 0
	for attempt := 1; ; attempt++ {
		s.ClientPort, s.PeerPort = s.cfg.clientPort, s.cfg.peerPort
		if s.ClientPort == 0 {
			s.ClientPort = FreePort(t)
		}
		if s.PeerPort == 0 {
			s.PeerPort = FreePort(t)
		}
		err := s.launch()
		if err == nil {
			return s
		}
		// Another process may have taken a port between FreePort and bind.
		if autoPorts && attempt < 3 && strings.Contains(s.Log(), "address already in use") {
			t.Logf("e2e: %s: port clash, retrying with new ports", s.Name)
			continue
		}
		t.Fatalf("e2e: start %s: %v (its log follows)", s.Name, err)
	}
}

// newServer prepares a Server (name, binary, data dir, cleanup) without
// starting it.
func newServer(t testing.TB, kind Kind, opts []Option) *Server {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.name == "" {
		nameSeq.Lock()
		if nameSeq.n == nil {
			nameSeq.n = map[Kind]int{}
		}
		nameSeq.n[kind]++
		cfg.name = fmt.Sprintf("%s-%d", kind, nameSeq.n[kind])
		nameSeq.Unlock()
	}
	if cfg.bin == "" {
		if kind == KindEtcd {
			cfg.bin = RefBin(t, "etcd")
		} else {
			cfg.bin = MetaStoreBin(t)
		}
	}
	if cfg.startTimeout <= 0 {
		cfg.startTimeout = defaultStartTimeout
	}
	if cfg.allowSignalExit == nil {
		allow := kind == KindEtcd
		cfg.allowSignalExit = &allow
	}
	tmp := t.TempDir()
	if cfg.dataDir == "" {
		cfg.dataDir = filepath.Join(tmp, "data")
	}
	s := &Server{
		Kind:    kind,
		Name:    cfg.name,
		Bin:     cfg.bin,
		DataDir: cfg.dataDir,
		LogFile: filepath.Join(tmp, cfg.name+".log"),
		t:       t,
		cfg:     cfg,
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("e2e: %s", s.logTail(logTailLines))
		}
	})
	return s
}

// Args returns the command-line arguments the server is started with.
func (s *Server) Args() []string {
	peer, client := s.PeerURL(), s.ClientURL()
	args := []string{
		"--name=" + s.Name,
		"--data-dir=" + s.DataDir,
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + s.listenPeerURL(),
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=" + s.Name + "=" + peer,
	}
	if s.cfg.initialCluster != "" {
		args[len(args)-1] = "--initial-cluster=" + s.cfg.initialCluster
	}
	if s.cfg.discovery != nil {
		args = append(args[:len(args)-1], s.cfg.discovery...)
	}
	return append(args, s.cfg.flags...)
}

// Endpoint is the client address, "127.0.0.1:port".
func (s *Server) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(s.ClientPort) }

// ClientURL is "http://127.0.0.1:<client port>".
func (s *Server) ClientURL() string { return s.cfg.clientScheme() + "://" + s.Endpoint() }

// PeerURL is the URL the member advertises to its peers:
// "http://127.0.0.1:<peer port>", or its front's (WithPeerFront).
func (s *Server) PeerURL() string {
	if s.advertisedPeer != "" {
		return s.advertisedPeer
	}
	return s.listenPeerURL()
}

func (s *Server) listenPeerURL() string {
	return s.cfg.peerScheme() + "://127.0.0.1:" + strconv.Itoa(s.PeerPort)
}

// Pid is the process id of the current run (0 if never started).
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the process of the current run is still alive.
func (s *Server) Running() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// ExitState is the state of the last run's process after it ended (nil while
// it runs).
func (s *Server) ExitState() *os.ProcessState {
	if s.Running() {
		return nil
	}
	return s.state
}

// Log returns everything the server has written so far, across restarts.
func (s *Server) Log() string {
	data, _ := os.ReadFile(s.LogFile)
	return string(data)
}

func (s *Server) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(s.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- last %d lines of %s (%s) ---\n%s\n--- end of log ---",
		len(lines), s.LogFile, s.Name, strings.Join(lines, "\n"))
}

// launch starts the process and waits for readiness.
func (s *Server) launch() error {
	s.starts++
	logf, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := s.Args()
	fmt.Fprintf(logf, "=== e2e: start #%d at %s: %s %s\n",
		s.starts, time.Now().Format(time.RFC3339Nano), s.Bin, strings.Join(args, " "))

	ready := make(chan struct{})
	var readyOnce sync.Once
	sink := &lineWatcher{w: logf, needle: []byte(ReadyLine), found: func() { readyOnce.Do(func() { close(ready) }) }}

	cmd := exec.Command(s.Bin, args...)
	cmd.Env = append(os.Environ(), s.cfg.env...)
	cmd.Stdout, cmd.Stderr = sink, sink
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return err
	}
	done := make(chan struct{})
	s.cmd, s.done, s.state = cmd, done, nil
	go func() {
		_ = cmd.Wait()
		s.state = cmd.ProcessState
		_ = logf.Close()
		close(done)
	}()

	// Ready when the log line shows up or, failing that, when the server
	// answers a Status call.
	probeDone := make(chan struct{})
	defer close(probeDone)
	if !s.cfg.clientTLS {
		go s.probeStatus(probeDone, func() { readyOnce.Do(func() { close(ready) }) })
	}

	timer := time.NewTimer(s.cfg.startTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return nil
	case <-done:
		return fmt.Errorf("%s exited during startup: %v", s.Bin, s.state)
	case <-timer.C:
		s.Kill()
		return fmt.Errorf("%s not ready after %v (killed)", s.Bin, s.cfg.startTimeout)
	}
}

func (s *Server) probeStatus(stop <-chan struct{}, ready func()) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.Endpoint()},
		DialTimeout: time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return
	}
	defer cli.Close()
	// Calls are called off once the server is ready (stop): a call still
	// on its way on a loaded host would reach a server the test has
	// since changed (auth on: a refused Status in its audit log).
	probing, called := context.WithCancel(context.Background())
	defer called()
	go func() {
		select {
		case <-stop:
			called()
		case <-probing.Done():
		}
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-probing.Done():
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(probing, 500*time.Millisecond)
		_, err := cli.Status(ctx, s.Endpoint())
		cancel()
		if err == nil {
			ready()
			return
		}
	}
}

// Stop sends SIGTERM, waits up to 30s, and fails the test unless the server
// exited with status 0 (or, with AllowSignalExit, died of that SIGTERM). A
// server still running after 30s is killed. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.t.Helper()
	if !s.Running() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(defaultStopTimeout)
	defer timer.Stop()
	select {
	case <-s.done:
	case <-timer.C:
		s.Kill()
		s.t.Errorf("e2e: %s did not exit within %v of SIGTERM; killed it (its log follows)",
			s.Name, defaultStopTimeout)
		return
	}
	if s.state.Success() || (*s.cfg.allowSignalExit && diedOf(s.state, syscall.SIGTERM)) {
		return
	}
	s.t.Errorf("e2e: %s did not exit cleanly on SIGTERM: %v (its log follows)", s.Name, s.state)
}

// Kill sends SIGKILL and waits for the process to go. Killing a stopped
// server does nothing.
func (s *Server) Kill() {
	if !s.Running() {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Restart starts the server again with the same name, flags, data dir and
// ports, stopping it first (as Stop does) if it still runs, and waits until
// it serves clients.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		t.Fatalf("e2e: restart %s: %v (its log follows)", s.Name, err)
	}
}

// Client returns a clientv3 client for this server, closed when the test ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.Endpoint()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("e2e: client for %s: %v", s.Name, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// lineWatcher copies a process's output to w and calls found once a line
// containing needle has been written.
type lineWatcher struct {
	mu     sync.Mutex
	w      *os.File
	needle []byte
	found  func()
	line   []byte // unfinished last line, while still watching
}

func (lw *lineWatcher) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	n, err := lw.w.Write(p)
	if errors.Is(err, os.ErrClosed) {
		n, err = len(p), nil // output after the process ended; nothing to keep it in
	}
	if lw.found != nil {
		lw.line = append(lw.line, p...)
		if bytes.Contains(lw.line, lw.needle) {
			lw.found()
			lw.found, lw.line = nil, nil
		} else if i := bytes.LastIndexByte(lw.line, '\n'); i >= 0 {
			lw.line = append(lw.line[:0], lw.line[i+1:]...)
		}
		if len(lw.line) > 1<<20 {
			lw.line = lw.line[len(lw.line)-len(lw.needle):]
		}
	}
	return n, err
}

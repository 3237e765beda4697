// Command metastore runs one MetaStore member. It takes etcd's server
// flags, under the same names and with the same defaults.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.uber.org/zap"

	"github.com/metastore/metastore/config"
	"github.com/metastore/metastore/discovery"
	"github.com/metastore/metastore/node"
)

// Version is MetaStore's own version.
const Version = "0.1.0"

func main() {
	if os.Getenv("GOGC") == "" {
		// The request paths allocate a lot: collecting at 3x the live heap
		// instead of 2x gave ~10 % more puts per CPU second. The soft
		// limit setUpMemory sets keeps the heap from growing to 3x once
		// it is large (docs/benchmarks.md).
		debug.SetGCPercent(gcPercent)
	}
	os.Exit(run(os.Args[1:]))
}

// gcPercent is the GOGC MetaStore runs with unless GOGC is set.
const gcPercent = 200

func run(args []string) int {
	// etcd's logger while the configuration is read (the configured one
	// does not exist yet).
	boot, err := logutil.CreateDefaultZapLogger(zap.InfoLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := config.Load(args, os.Environ(), boot)
	var conflict *config.EnvConflictError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, config.ErrUsage):
		return 2
	case errors.Is(err, config.ErrVersion):
		printVersion()
		return 0
	case errors.As(err, &conflict):
		boot.Fatal(conflict.Error(), zap.String("environment-variable", conflict.Variable))
	case err != nil:
		boot.Info("Running: ", zap.Strings("args", os.Args))
		boot.Warn("failed to verify flags", zap.Error(err))
		if errors.Is(err, config.ErrUnsetAdvertiseClientURLsFlag) {
			boot.Warn("advertise client URLs are not set", zap.Error(err))
		}
		return 1
	}
	logging, err := cfg.NewLogging()
	if err != nil {
		boot.Warn("failed to verify flags", zap.Error(err))
		return 1
	}
	lg := logging.Logger
	defer lg.Sync()
	lg.Info("Running: ", zap.Strings("args", os.Args))
	audit := lg.Named("audit")
	if cfg.AuditLogPath != "" {
		if audit, err = newAuditLogger(cfg.AuditLogPath); err != nil {
			lg.Error("cannot open --audit-log-path", zap.Error(err))
			return 1
		}
		defer audit.Sync()
	}
	ncfg, err := nodeConfig(cfg, lg, audit)
	if err != nil {
		// etcd refuses a bad retention when its server starts, under
		// these (odd, but etcd's) words.
		var retention retentionError
		if errors.As(err, &retention) {
			lg.Error("discovery failed", zap.Error(retention.error))
		} else {
			lg.Warn("failed to verify flags", zap.Error(err))
		}
		return 1
	}
	var stopMemory func()
	ncfg.Memory, stopMemory = setUpMemory(cfg.MemoryLimitBytes, lg)
	defer stopMemory()
	// Signals are taken from here on: a SIGHUP while the member starts
	// waits for it to serve instead of killing it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	lg.Info("starting an etcd server", append(versionFields(), cfg.LogFields()...)...)
	n, err := node.Start(ncfg)
	var derr *discovery.Error
	if errors.As(err, &derr) {
		lg.Warn("failed to bootstrap; discovery token was already used", zap.String("discovery-token", cfg.Discovery.Token),
			zap.Strings("discovery-endpoints", cfg.Discovery.Client.Endpoints), zap.Error(err))
		lg.Warn("do not reuse discovery token; generate a new one to bootstrap a cluster")
		return 1
	}
	if err != nil {
		// etcd's words for a server that cannot start: "failed to start"
		// when the error's text mentions both "include" and
		// "--initial-cluster" (etcd tests exactly that), "discovery
		// failed" for anything else.
		msg := "discovery failed"
		if strings.Contains(err.Error(), "include") && strings.Contains(err.Error(), "--initial-cluster") {
			msg = "failed to start"
		}
		lg.Error(msg, zap.Error(err))
		return 1
	}
	if addr := os.Getenv("METASTORE_PPROF_ADDR"); addr != "" {
		// Developer knob for profiling (go tool pprof http://ADDR/debug/pprof/profile).
		go func() { lg.Warn("pprof server stopped", zap.Error(http.ListenAndServe(addr, nil))) }()
	}
	reload := &reloader{args: args, running: cfg, logging: logging, node: n, lg: lg}
	for {
		select {
		case <-hup:
			reload.reload()
		case s := <-sigs:
			lg.Info("received signal; shutting down", zap.String("signal", s.String()))
			n.Stop()
			return 0
		case <-n.Removed():
			n.Stop()
			return 0
		case err := <-n.Fatal():
			lg.Error("fatal failure; shutting down", zap.Error(err))
			n.Stop()
			return 1
		}
	}
}

// printVersion prints etcd's --version lines (scripts parse them: the
// etcd API version MetaStore implements comes first), then MetaStore's.
func printVersion() {
	fmt.Printf("etcd Version: %s\nGit SHA: %s\nGo Version: %s\nGo OS/Arch: %s/%s\nMetaStore Version: %s\n",
		node.APIVersion, gitSHA(), runtime.Version(), runtime.GOOS, runtime.GOARCH, Version)
}

// versionFields open the "starting an etcd server" line, as etcd's.
func versionFields() []zap.Field {
	return []zap.Field{
		zap.String("etcd-version", node.APIVersion), zap.String("metastore-version", Version),
		zap.String("git-sha", gitSHA()), zap.String("go-version", runtime.Version()),
		zap.String("go-os", runtime.GOOS), zap.String("go-arch", runtime.GOARCH),
		zap.Int("max-cpu-set", runtime.GOMAXPROCS(0)), zap.Int("max-cpu-available", runtime.NumCPU()),
	}
}

// gitSHA is the commit the binary was built from (Go records it when
// building in a git checkout), shortened as etcd's; etcd's words when
// there is none.
func gitSHA() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				return s.Value[:7]
			}
		}
	}
	return "Not provided (use ./build instead of go build)"
}

// newAuditLogger appends JSON audit records to path, every level kept.
func newAuditLogger(path string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Sampling = nil
	cfg.EncoderConfig = logutil.DefaultZapLoggerConfig.EncoderConfig
	cfg.OutputPaths = []string{path}
	cfg.ErrorOutputPaths = []string{"stderr"}
	lg, err := cfg.Build()
	if err != nil {
		return nil, err
	}
	return lg.Named("audit"), nil
}

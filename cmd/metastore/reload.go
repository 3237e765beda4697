package main

import (
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/metastore/metastore/actors"
	"github.com/metastore/metastore/config"
	"github.com/metastore/metastore/metrics"
	"github.com/metastore/metastore/node"
)

// reloadRequests counts configuration reloads (SIGHUP) by outcome:
// applied (something changed), unchanged, failed (the new configuration
// was refused; the member keeps its own).
var reloadRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "metastore", Subsystem: "config", Name: "reload_requests_total",
	Help: "Configuration reloads (SIGHUP) by result: applied, unchanged or failed.",
}, []string{"result"})

func init() { metrics.MustRegister(reloadRequests) }

// reloader re-reads a running member's configuration — the same command
// line, the environment and config file as they are now — and applies
// what can change while it runs. A setting that cannot change is logged
// and keeps its running value; a configuration that does not validate
// changes nothing. (etcd cannot reload at all.)
type reloader struct {
	args    []string
	running *config.Config
	logging *config.Logging
	node    *node.Node
	lg      *zap.Logger
}

func (r *reloader) reload() {
	r.lg.Info("reloading the configuration", zap.String("signal", "SIGHUP"), zap.String("config-file", r.running.ConfigFile))
	next, err := config.Load(r.args, os.Environ(), r.lg)
	if err != nil {
		reloadRequests.WithLabelValues("failed").Inc()
		r.lg.Error("configuration reload refused; the member keeps running with its configuration", zap.Error(err))
		return
	}
	changes := config.Changes(r.running, next)
	anyLive := false
	for _, ch := range changes {
		if !ch.Live {
			r.lg.Warn("setting cannot change while the member runs; keeping the running value until restart",
				zap.String("setting", ch.Setting), zap.String("running", ch.Old), zap.String("requested", ch.New))
			continue
		}
		anyLive = true
	}
	if !anyLive {
		reloadRequests.WithLabelValues("unchanged").Inc()
		r.lg.Info("configuration reloaded; no setting that can change while running changed")
		return
	}
	applied := config.WithLive(r.running, next, changes)
	live, err := liveOf(applied)
	if err == nil {
		// The member's parts put their settings in effect and log each
		// change; all or nothing.
		err = r.node.Reconfigure(live)
	}
	if err != nil {
		reloadRequests.WithLabelValues("failed").Inc()
		r.lg.Error("configuration reload refused; the member keeps running with its configuration", zap.Error(err))
		return
	}
	// The logger's own changes are logged before they take effect (a
	// higher level would hide them).
	for _, ch := range changes {
		if ch.Live && config.IsLogging(ch.Setting) {
			actors.SettingChanged(r.lg, ch.Setting, ch.Old, ch.New)
		}
	}
	if err := r.logging.Apply(applied); err != nil {
		reloadRequests.WithLabelValues("failed").Inc()
		r.lg.Error("configuration reload refused; the member keeps running with its configuration", zap.Error(err))
		return
	}
	r.running = applied
	reloadRequests.WithLabelValues("applied").Inc()
}

// Package health answers etcd's HTTP health endpoints — /health, /livez,
// /readyz and their per-check paths — with etcd 3.7's semantics, bodies
// and status codes, and keeps the gRPC health service's status
// (grpc.health.v1) in step with the member.
//
// What it decides lives here: which checks make up each endpoint, what
// fails them and how they read. What they look at is the Member: the
// node gives it the raft view, the store's alarms and membership, and a
// read through the gateway as the member itself (etcd runs these reads as
// root, past auth).
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/metastore/metastore/metrics"
)

// Member is what the checks look at.
type Member interface {
	// Alarms are the active alarms, as the store applied them, or why
	// they could not be read (every check that looks at them fails).
	Alarms() ([]*pb.AlarmMember, error)
	// HasLeader reports whether raft knows a leader.
	HasLeader() bool
	// IsLearner reports whether this member is a learner.
	IsLearner() bool
	// Read is etcd's probe read: a keys-only Range of one key, linearizable
	// unless serializable, made as the member itself (no auth).
	Read(ctx context.Context, serializable bool) error
}

// Paths are the endpoints Register installs.
const (
	PathHealth = "/health"
	PathLivez  = "/livez"
	PathReadyz = "/readyz"
)

// Checker runs the checks against one member.
type Checker struct {
	m  Member
	lg *zap.Logger
	// timeout bounds /health's read (etcd: its request timeout); /livez
	// and /readyz reads are bounded by the read path's own timeout.
	timeout time.Duration
	livez   registry
	readyz  registry
}

// New builds the checks: /livez is serializable_read; /readyz is
// data_corruption, serializable_read, linearizable_read and non_learner,
// as etcd 3.7 registers them.
func New(m Member, requestTimeout time.Duration, lg *zap.Logger) *Checker {
	if lg == nil {
		lg = zap.NewNop()
	}
	c := &Checker{m: m, lg: lg, timeout: requestTimeout}
	serializable := func(ctx context.Context) error { return m.Read(ctx, true) }
	c.livez = registry{kind: "livez", checks: []check{{"serializable_read", serializable}}}
	c.readyz = registry{kind: "readyz", checks: []check{
		{"data_corruption", func(context.Context) error { return alarmActive(m, pb.AlarmType_CORRUPT) }},
		{"serializable_read", serializable},
		{"linearizable_read", func(ctx context.Context) error { return m.Read(ctx, false) }},
		{"non_learner", func(context.Context) error {
			if m.IsLearner() {
				return fmt.Errorf("not supported for learner")
			}
			return nil
		}},
	}}
	return c
}

// Register installs /health, /livez, /readyz and the per-check paths.
func (c *Checker) Register(mux *http.ServeMux) {
	mux.HandleFunc(PathHealth, c.serveHealth)
	for _, reg := range []*registry{&c.livez, &c.readyz} {
		root := "/" + reg.kind
		mux.HandleFunc(root, func(w http.ResponseWriter, r *http.Request) {
			c.serveChecks(w, r, root, reg, reg.without(excluded(r), c.lg))
		})
		for _, chk := range reg.checks {
			p := root + "/" + chk.name
			mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
				c.serveChecks(w, r, p, reg, []check{chk})
			})
		}
	}
}

// Result is /health's body.
type Result struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

// Health is etcd's /health verdict: alarms not excluded, then a leader
// (unless serializable), then a read.
func (c *Checker) Health(ctx context.Context, exclude map[string]bool, serializable bool) Result {
	alarms, err := c.m.Alarms()
	if err != nil {
		c.lg.Warn("serving /health false; reading the alarms fails", zap.Error(err))
		return Result{Health: "false", Reason: "ALARM ERROR:" + err.Error()}
	}
	for _, a := range alarms {
		name := a.Alarm.String()
		if exclude[name] {
			c.lg.Debug("/health excluded alarm", zap.String("alarm", a.String()))
			continue
		}
		reason := "ALARM UNKNOWN"
		switch a.Alarm {
		case pb.AlarmType_NOSPACE:
			reason = "ALARM NOSPACE"
		case pb.AlarmType_CORRUPT:
			reason = "ALARM CORRUPT"
		}
		c.lg.Warn("serving /health false due to an alarm", zap.String("alarm", a.String()))
		return Result{Health: "false", Reason: reason}
	}
	if !serializable && !c.m.HasLeader() {
		c.lg.Warn("serving /health false; no leader")
		return Result{Health: "false", Reason: "RAFT NO LEADER"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	err = c.m.Read(ctx, serializable)
	cancel()
	if err != nil {
		c.lg.Warn("serving /health false; Range fails", zap.Error(err))
		return Result{Health: "false", Reason: "RANGE ERROR:" + err.Error()}
	}
	c.lg.Debug("serving /health true")
	return Result{Health: "true"}
}

func (c *Checker) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		c.lg.Warn("/health error", zap.Int("status-code", http.StatusMethodNotAllowed))
		return
	}
	h := c.Health(r.Context(), excluded(r), r.URL.Query().Get("serializable") == "true")
	body, _ := json.Marshal(h)
	if h.Health != "true" {
		healthFailures.Inc()
		http.Error(w, string(body), http.StatusServiceUnavailable)
		c.lg.Warn("/health error", zap.String("output", string(body)), zap.Int("status-code", http.StatusServiceUnavailable))
		return
	}
	healthSuccess.Inc()
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	c.lg.Debug("/health OK", zap.Int("status-code", http.StatusOK))
}

// serveChecks runs checks and answers as etcd's /livez and /readyz: 200
// "ok" (each check's line first with ?verbose), or 503 with every check's
// line when one fails.
func (c *Checker) serveChecks(w http.ResponseWriter, r *http.Request, path string, reg *registry, checks []check) {
	if !allowGet(w, r) {
		c.lg.Warn("Health request error", zap.String("path", path), zap.Int("status-code", http.StatusMethodNotAllowed))
		return
	}
	var out strings.Builder
	failed := false
	for _, chk := range checks {
		status := "success"
		if err := chk.run(r.Context()); err != nil {
			fmt.Fprintf(&out, "[-]%s failed: %v\n", chk.name, err)
			failed, status = true, "error"
		} else {
			fmt.Fprintf(&out, "[+]%s ok\n", chk.name)
		}
		reg.record(chk.name, status)
	}
	if failed {
		http.Error(w, out.String(), http.StatusServiceUnavailable)
		c.lg.Error("Health check error", zap.String("path", path), zap.String("reason", out.String()), zap.Int("status-code", http.StatusServiceUnavailable))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if _, verbose := r.URL.Query()["verbose"]; verbose {
		fmt.Fprint(w, out.String())
	}
	fmt.Fprint(w, "ok\n")
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	w.Header().Set("Allow", http.MethodGet)
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

// excluded is the request's ?exclude= values (empty ones ignored).
func excluded(r *http.Request) map[string]bool {
	out := map[string]bool{}
	for _, v := range r.URL.Query()["exclude"] {
		if v != "" {
			out[v] = true
		}
	}
	return out
}

// alarmActive fails when an alarm of type t is active, or when the alarms
// cannot be read: a member that cannot tell is not known to be healthy.
func alarmActive(m Member, t pb.AlarmType) error {
	alarms, err := m.Alarms()
	if err != nil {
		return fmt.Errorf("cannot read alarms: %w", err)
	}
	for _, a := range alarms {
		if a.Alarm == t {
			return fmt.Errorf("alarm activated: %s", t)
		}
	}
	return nil
}

type check struct {
	name string
	run  func(context.Context) error
}

// registry is one endpoint's checks, in the order they are run and shown.
type registry struct {
	kind   string // "livez" or "readyz": the path and the metrics' type label
	checks []check
}

// without drops the excluded checks; excluding one that does not exist is
// not an error (etcd: for version compatibility), only a warning.
func (reg *registry) without(ex map[string]bool, lg *zap.Logger) []check {
	var out []check
	for _, chk := range reg.checks {
		if ex[chk.name] {
			delete(ex, chk.name)
			continue
		}
		out = append(out, chk)
	}
	if len(ex) > 0 {
		var missing []string
		for name := range ex {
			missing = append(missing, fmt.Sprintf("%q", name))
		}
		lg.Warn("some health checks cannot be excluded", zap.String("missing-health-checks", strings.Join(missing, ",")))
	}
	return out
}

func (reg *registry) record(name, status string) {
	v := 0.0
	if status == "success" {
		v = 1
	}
	healthCheck.WithLabelValues(reg.kind, name).Set(v)
	healthChecks.WithLabelValues(reg.kind, name, status).Inc()
}

var (
	healthSuccess = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_success",
		Help: "The total number of successful health checks",
	})
	healthFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_failures",
		Help: "The total number of failed health checks",
	})
	healthCheck = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "server", Name: "healthcheck",
		Help: "The result of each kind of healthcheck.",
	}, []string{"type", "name"})
	healthChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "healthchecks_total",
		Help: "The total number of each kind of healthcheck.",
	}, []string{"type", "name", "status"})
)

func init() { metrics.MustRegister(healthSuccess, healthFailures, healthCheck, healthChecks) }

package actors

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/metastore/metastore/metrics"
)

// configReloads counts the settings changed while the member runs
// (node.Reconfigure), by setting name (the flag's, without dashes before).
var configReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "metastore_config_reloads_total",
	Help: "Settings changed while the member runs (a configuration reload), by setting.",
}, []string{"setting"})

func init() { metrics.MustRegister(configReloads) }

// SettingChanged is how the owner of a setting that can change while the
// member runs reports that it now runs with new instead of old: one log
// line an operator can grep for, and metastore_config_reloads_total
// {setting}. The owner calls it once the new value is in effect, and only
// when the value it runs with did change. A warning: the member now
// behaves otherwise than it started.
func SettingChanged(lg *zap.Logger, setting string, old, new any) {
	lg.Warn("changed setting", zap.String("setting", setting), zap.Any("old", old), zap.Any("new", new))
	configReloads.WithLabelValues(setting).Inc()
}

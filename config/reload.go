package config

import (
	"sort"
	"strings"
)

// IsLogging reports whether a setting is one of the logger's, which the
// caller's Logging applies (the member's own parts apply the others).
func IsLogging(setting string) bool {
	return strings.HasPrefix(setting, "log-") || setting == "enable-log-rotation"
}

// Change is one setting a reloaded configuration gives another value.
type Change struct {
	Setting  string
	Old, New string // as the start line logs them
	// Live: the member can take the new value while it runs; otherwise
	// it keeps the old one until restarted.
	Live bool
}

// liveSettings are the settings a running member takes from a reloaded
// configuration, each with how the new value is copied into the running
// configuration. Everything else — name, directories, URLs, cluster,
// TLS files' paths, storage — needs a restart (etcd cannot reload any).
var liveSettings = map[string]func(dst, src *Config){
	"log-level":                func(d, s *Config) { d.LogLevel = s.LogLevel },
	"log-outputs":              func(d, s *Config) { d.LogOutputs = s.LogOutputs },
	"log-format":               func(d, s *Config) { d.LogFormat = s.LogFormat },
	"enable-log-rotation":      func(d, s *Config) { d.EnableLogRotation = s.EnableLogRotation },
	"log-rotation-config-json": func(d, s *Config) { d.LogRotationConfigJSON = s.LogRotationConfigJSON },
	"auth-token-ttl":           func(d, s *Config) { d.AuthTokenTTL = s.AuthTokenTTL },
	"quota-backend-bytes":      func(d, s *Config) { d.QuotaBackendBytes = s.QuotaBackendBytes },
	"auto-compaction-mode":     func(d, s *Config) { d.AutoCompactionMode = s.AutoCompactionMode },
	"auto-compaction-retention": func(d, s *Config) {
		d.AutoCompactionRetention = s.AutoCompactionRetention
	},
	"defrag-rate-bytes":      func(d, s *Config) { d.DefragRateBytes = s.DefragRateBytes },
	"warning-apply-duration": func(d, s *Config) { d.WarningApplyDuration = s.WarningApplyDuration },
	"corrupt-check-time":     func(d, s *Config) { d.CorruptCheckTime = s.CorruptCheckTime },
	"warning-unary-request-duration": func(d, s *Config) {
		d.WarningUnaryRequestDuration = s.WarningUnaryRequestDuration
	},
}

// Changes lists the settings next gives other values than running does,
// by setting name.
func Changes(running, next *Config) []Change {
	a, b := fieldStrings(running), fieldStrings(next)
	var out []Change
	for k, v := range b {
		if k == "config-file" || a[k] == v {
			continue
		}
		_, live := liveSettings[k]
		out = append(out, Change{Setting: k, Old: a[k], New: v, Live: live})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Setting < out[j].Setting })
	return out
}

// WithLive is running with the live settings among changes taken from
// next: the configuration a member runs with after a reload.
func WithLive(running, next *Config, changes []Change) *Config {
	c := *running
	for _, ch := range changes {
		if ch.Live {
			liveSettings[ch.Setting](&c, next)
		}
	}
	return &c
}

// fieldStrings is each logged setting as its JSON text.
func fieldStrings(c *Config) map[string]string {
	m := map[string]string{}
	for _, f := range c.LogFields() {
		m[f.Key] = fieldString(f)
	}
	return m
}
